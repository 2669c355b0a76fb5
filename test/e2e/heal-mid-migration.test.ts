/**
 * The hop between the gateways breaks in the middle of a real migration and
 * heals: neither QEMU sees anything. Real QEMU 7.2 in two network namespaces,
 * each fault injected while the source is still sending (it is slowed with
 * max-bandwidth so that the fault lands mid-migration):
 *
 * - the hop's TCP connection destroyed with `ss -K` (as a NAT or firewall
 *   that loses its state would), for a precopy, a multifd 4 and a postcopy;
 * - the veth down for longer than channel.stallTimeoutMs, then back up.
 *
 * Each migration completes, the destination's RAM equals the source's, and
 * query-migrate on both QEMUs never showed a failure (nor postcopy-paused).
 *
 * Guest size: the 512 MiB guest (256 MiB of it random data) is used;
 * each test stays well under 90 s under TCG on 2 cores.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LOG_TIMEOUT_MS, TIMEOUT_MS, assertCleanCompletion, assertHealed, isEvent, since, startMigration, waitForPostcopyTransferred, type Migration } from '../helpers/heal-migration.js';
import { MID_MIGRATION_BYTES, QEMU_URI, SLOW_BANDWIDTH, startNetnsGateways, waitForTransferred, type NetnsGateways } from '../helpers/netns-gateways.js';
import { watchMigration } from '../helpers/migration-watch.js';

/** Small, so that a silent link is noticed (and a stall would fire) within seconds. */
const CHANNEL = { linkTimeoutMs: 2_000, stallTimeoutMs: 4_000, healWindowMs: 60_000 } as const;

describe('a hop that breaks mid-migration heals; neither QEMU sees it', { timeout: 8 * 60_000 }, () => {
  let stage: NetnsGateways;

  before(async () => {
    stage = await startNetnsGateways({ subnet: '10.250.70.0/30', tag: 'heal', channel: CHANNEL });
  });
  after(async () => {
    await stage?.close();
  });

  test('precopy: the hop connection destroyed (ss -K) -> completes, RAM equal, link-lost and link-healed on both gateways', async (t) => {
    const plan = { mode: 'precopy', maxBandwidth: SLOW_BANDWIDTH } as const;
    const m = await startMigration(stage, 'ssk', plan);
    await waitForTransferred(m.src, MID_MIGRATION_BYTES, TIMEOUT_MS);
    const killed = await stage.killHop();
    assert.ok(killed.length >= 1, 'ss -K destroyed the hop connection');
    await assertCleanCompletion(t, m, 'prelaunch');
    await assertHealed(stage, m, 1);
    for (const [gw, from] of [[stage.gwA, m.fromA], [stage.gwB, m.fromB]] as const) {
      for (const l of since(gw, from, 'channel-close')) assert.equal(l['cause'], 'ok', `${gw.name}: ${JSON.stringify(l)}`);
    }
    await Promise.all([m.src.kill(), m.dst.kill()]);
  });

  test('precopy: the veth down for longer than stallTimeoutMs, then up -> completes, RAM equal, no session-stalled', async (t) => {
    const plan = { mode: 'precopy', maxBandwidth: SLOW_BANDWIDTH } as const;
    const m = await startMigration(stage, 'down', plan);
    await waitForTransferred(m.src, MID_MIGRATION_BYTES, TIMEOUT_MS);
    const { downAt, upAt } = await stage.net.linkDownFor(CHANNEL.stallTimeoutMs + 1_500);
    assert.ok(upAt - downAt > CHANNEL.stallTimeoutMs);
    await assertCleanCompletion(t, m, 'prelaunch');
    const [healed] = await assertHealed(stage, m, 1);
    // The link was lost by silence (linkTimeoutMs after the cut) and could only heal once it was up again.
    assert.ok(Number(healed?.['outageMs']) > 0, JSON.stringify(healed));
    assert.ok(Date.parse(String(healed?.['time'])) >= upAt, `healed before the link came back: ${JSON.stringify(healed)} up at ${upAt}`);
    await Promise.all([m.src.kill(), m.dst.kill()]);
  });

  test('multifd 4: every hop connection destroyed (ss -K) -> all five channels heal, completes, RAM equal', async (t) => {
    const plan = { mode: 'multifd', multifdChannels: 4, maxBandwidth: SLOW_BANDWIDTH } as const;
    const m = await startMigration(stage, 'multifd', plan);
    await waitForTransferred(m.src, MID_MIGRATION_BYTES, TIMEOUT_MS);
    // All five channels (main + 4 multifd) must be open before the cut.
    await stage.gwA.waitForLogs(isEvent('channel-open'), 5, LOG_TIMEOUT_MS, m.fromA);
    const killed = await stage.killHop();
    assert.ok(killed.length >= 5, `ss -K destroyed ${killed.length} hop connections`);
    await assertCleanCompletion(t, m, 'prelaunch');
    await assertHealed(stage, m, 5);
    await Promise.all([m.src.kill(), m.dst.kill()]);
  });

  test('postcopy: the hop connection destroyed (ss -K) after migrate-start-postcopy -> completes, RAM equal, never postcopy-paused', async (t) => {
    const plan = { mode: 'postcopy', maxBandwidth: SLOW_BANDWIDTH } as const;
    const src = await stage.source('src-postcopy', { plan });
    // Postcopy has its own rate limit (0: none); slowed too, the background transfer is still running at the cut.
    await src.setParameters({ 'max-postcopy-bandwidth': SLOW_BANDWIDTH });
    const dst = await stage.destination('dst-postcopy', { plan });
    const srcHash = await src.ramHash();
    const fromA = stage.gwA.logs.length;
    const fromB = stage.gwB.logs.length;
    const started = Date.now();
    await src.migrate(QEMU_URI);
    const watch = watchMigration([src, dst]);
    const m: Migration = { src, dst, srcHash, fromA, fromB, watch, started };
    await waitForTransferred(src, MID_MIGRATION_BYTES, TIMEOUT_MS);
    await src.startPostcopy();
    const before = await src.waitForMigration(['postcopy-active'], TIMEOUT_MS);
    await waitForPostcopyTransferred(src, (before.ram?.transferred ?? 0) + MID_MIGRATION_BYTES);
    const killed = await stage.killHop();
    assert.ok(killed.length >= 1, 'ss -K destroyed the hop connection');
    await assertCleanCompletion(t, m, 'paused');
    await assertHealed(stage, m, 1);
    assert.ok(watch.seen[0]?.includes('postcopy-active'), `the source never reached postcopy-active: ${watch.seen[0]?.join('>')}`);
    await Promise.all([src.kill(), dst.kill()]);
  });
});
