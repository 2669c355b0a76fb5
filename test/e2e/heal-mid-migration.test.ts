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
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test, type TestContext } from 'node:test';
import type { GatewayLogLine, GatewayProcess } from '../helpers/gateway-process.js';
import { MID_MIGRATION_BYTES, QEMU_URI, SLOW_BANDWIDTH, startNetnsGateways, waitForTransferred, type NetnsGateways } from '../helpers/netns-gateways.js';
import { watchMigration, type MigrationWatch } from '../helpers/migration-watch.js';
import type { MigrationPlan, QemuVm } from '../helpers/qemu.js';

/** Small, so that a silent link is noticed (and a stall would fire) within seconds. */
const CHANNEL = { linkTimeoutMs: 2_000, stallTimeoutMs: 4_000, healWindowMs: 60_000 } as const;
const TIMEOUT_MS = 60_000;
const LOG_TIMEOUT_MS = 20_000;

const isEvent = (event: string) => (l: GatewayLogLine): boolean => l.event === event;
const since = (gw: GatewayProcess, from: number, event: string): GatewayLogLine[] => gw.logs.slice(from).filter(isEvent(event));

interface Migration {
  readonly src: QemuVm;
  readonly dst: QemuVm;
  readonly srcHash: string;
  readonly fromA: number;
  readonly fromB: number;
  readonly watch: MigrationWatch;
  readonly started: number;
}

/** A paused source (random RAM, hashed now) and a listening destination; `migrate` started, both watched. */
async function startMigration(stage: NetnsGateways, name: string, plan: MigrationPlan): Promise<Migration> {
  const src = await stage.source(`src-${name}`, { plan });
  const dst = await stage.destination(`dst-${name}`, { plan });
  const srcHash = await src.ramHash();
  const fromA = stage.gwA.logs.length;
  const fromB = stage.gwB.logs.length;
  const started = Date.now();
  await src.migrate(QEMU_URI);
  const watch = watchMigration([src, dst]);
  return { src, dst, srcHash, fromA, fromB, watch, started };
}

/**
 * The migration completes on both sides, neither QEMU ever reported a
 * failure or postcopy-paused, and the destination's RAM is the source's.
 */
async function assertCleanCompletion(t: TestContext, m: Migration, finalState: 'prelaunch' | 'paused'): Promise<void> {
  const info = await m.src.waitForMigration(['completed'], TIMEOUT_MS);
  await m.dst.waitForMigration(['completed'], TIMEOUT_MS);
  await m.dst.qmp.waitForRunState([finalState], TIMEOUT_MS);
  const seen = await m.watch.stop();
  assert.equal(info.status, 'completed');
  assert.equal(info['error-desc'], undefined, `source error: ${String(info['error-desc'])}`);
  for (const [i, statuses] of seen.entries()) {
    const side = i === 0 ? 'source' : 'destination';
    for (const bad of ['failed', 'cancelled', 'postcopy-paused', 'postcopy-recover']) {
      assert.ok(!statuses.includes(bad), `${side} went through "${bad}": ${statuses.join('>')}`);
    }
  }
  assert.equal(await m.dst.ramHash(), m.srcHash, 'destination guest RAM differs from the source');
  t.diagnostic(`completed in ${Date.now() - m.started} ms, source statuses ${seen[0]?.join('>')}, destination ${seen[1]?.join('>')}`);
}

/** Both gateways logged `link-lost` and then `link-healed` for at least `channels` channels, and ended nothing. */
async function assertHealed(stage: NetnsGateways, m: Migration, channels: number): Promise<GatewayLogLine[]> {
  const healedA = await stage.gwA.waitForLogs(isEvent('link-healed'), channels, LOG_TIMEOUT_MS, m.fromA);
  await stage.gwB.waitForLogs(isEvent('link-healed'), channels, LOG_TIMEOUT_MS, m.fromB);
  for (const [gw, from] of [[stage.gwA, m.fromA], [stage.gwB, m.fromB]] as const) {
    const diag = `\n${gw.diagnostics(20)}`;
    assert.ok(since(gw, from, 'link-lost').length >= channels, `${gw.name}: link-lost lines${diag}`);
    assert.deepEqual(since(gw, from, 'heal-failed'), [], `${gw.name}: heal-failed${diag}`);
    assert.deepEqual(since(gw, from, 'session-stalled'), [], `${gw.name}: session-stalled${diag}`);
  }
  return healedA;
}

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

/** Waits until the source is in postcopy-active with at least `bytes` sent. */
async function waitForPostcopyTransferred(vm: QemuVm, bytes: number): Promise<void> {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const info = await vm.qmp.queryMigrate();
    if (info.status !== 'postcopy-active') throw new Error(`migration is "${info.status ?? 'none'}" before ${bytes} bytes were sent in postcopy; slow it down further`);
    if ((info.ram?.transferred ?? 0) >= bytes) return;
    if (Date.now() > deadline) throw new Error(`only ${info.ram?.transferred ?? 0} bytes sent in postcopy after ${TIMEOUT_MS} ms`);
    await sleep(20);
  }
}
