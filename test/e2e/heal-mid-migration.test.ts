/**
 * The hop between the gateways breaks in the middle of a real migration and
 * heals: neither QEMU sees anything. Real QEMU 7.2 in two network namespaces,
 * each fault injected while the source is still sending (it is slowed with
 * max-bandwidth so that the fault lands mid-migration):
 *
 * - the hop's TCP connections destroyed with `ss -K` (as a NAT or firewall
 *   that loses its state would);
 * - the veth down for longer than channel.stallTimeoutMs, then back up;
 *
 * each for a precopy, a multifd 4 and a postcopy (the fault after
 * migrate-start-postcopy).
 *
 * Each migration completes, the destination's RAM equals the source's, and
 * query-migrate on both QEMUs never showed a failure (nor postcopy-paused).
 *
 * Guest size: the 512 MiB guest (256 MiB of it random data) is used;
 * each test stays well under 90 s under TCG on 2 cores.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LOG_TIMEOUT_MS, PLANS, assertCleanCompletion, assertHealed, channelsOf, isEvent, startMidMigration } from '../helpers/heal-migration.js';
import { startNetnsGateways, type NetnsGateways } from '../helpers/netns-gateways.js';

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

  for (const plan of PLANS) {
    const channels = channelsOf(plan);
    test(`${plan.mode}: every hop connection destroyed (ss -K) -> ${channels} channel(s) heal, completes, RAM equal, link-lost and link-healed on both gateways`, async (t) => {
      const m = await startMidMigration(stage, `ssk-${plan.mode}`, plan);
      const killed = await stage.killHop();
      assert.ok(killed.length >= channels, `ss -K destroyed ${killed.length} hop connections`);
      await assertCleanCompletion(t, m, plan);
      await assertHealed(stage, m, channels);
      for (const [gw, from] of [[stage.gwA, m.fromA], [stage.gwB, m.fromB]] as const) {
        const closes = await gw.waitForLogs(isEvent('channel-close'), channels, LOG_TIMEOUT_MS, from);
        for (const l of closes) assert.equal(l['cause'], 'ok', `${gw.name}: ${JSON.stringify(l)}`);
      }
      await Promise.all([m.src.kill(), m.dst.kill()]);
    });
  }

  for (const plan of PLANS) {
    test(`${plan.mode}: the veth down for longer than stallTimeoutMs, then up -> completes, RAM equal, no session-stalled`, async (t) => {
      const m = await startMidMigration(stage, `down-${plan.mode}`, plan);
      const { downAt, upAt } = await stage.net.linkDownFor(CHANNEL.stallTimeoutMs + 1_500);
      assert.ok(upAt - downAt > CHANNEL.stallTimeoutMs);
      await assertCleanCompletion(t, m, plan);
      const healed = await assertHealed(stage, m, channelsOf(plan));
      // The link was lost by silence (linkTimeoutMs after the cut) and could only heal once it was up again.
      for (const l of healed) {
        assert.ok(Number(l['outageMs']) > 0, JSON.stringify(l));
        assert.ok(Date.parse(String(l['time'])) >= upAt, `healed before the link came back: ${JSON.stringify(l)} up at ${upAt}`);
      }
      await Promise.all([m.src.kill(), m.dst.kill()]);
    });
  }
});
