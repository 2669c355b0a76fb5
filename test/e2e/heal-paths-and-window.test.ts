/**
 * Healing with real QEMU 7.2 in two network namespaces, beyond a single
 * break (see heal-mid-migration.test.ts for those):
 *
 * - two paths: the route names path 0 then path 1; path 0 goes down for good
 *   mid-migration and every channel heals over path 1 (precopy, multifd 4,
 *   postcopy);
 * - past the window: the link stays down longer than channel.healWindowMs;
 *   the session (precopy, multifd 4) fails cleanly with `heal-expired` on
 *   both gateways and the source VM keeps running; a postcopy that loses its link so is then
 *   finished by QEMU's own recovery (migrate-recover / migrate resume=true)
 *   through the gateways.
 *
 * The 512 MiB guest (256 MiB of random data) is used.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GatewayLogLine } from '../helpers/gateway-process.js';
import { LOG_TIMEOUT_MS, PLANS, TIMEOUT_MS, assertCleanCompletion, assertHealed, channelsOf, isEvent, since, startMidMigration } from '../helpers/heal-migration.js';
import { MID_MIGRATION_BYTES, QEMU_PORT, QEMU_URI, SLOW_BANDWIDTH, isChannelClose, startNetnsGateways, waitForTransferred, type NetnsGateways } from '../helpers/netns-gateways.js';

const isExpired = (l: GatewayLogLine): boolean => isChannelClose(l) && l['cause'] === 'heal-expired';

describe('a channel whose first path dies heals over the second', { timeout: 4 * 60_000 }, () => {
  let stage: NetnsGateways;

  before(async () => {
    stage = await startNetnsGateways({
      subnet: '10.250.71.0/30',
      secondSubnet: '10.250.72.0/30',
      tag: 'heal-paths',
      channel: { linkTimeoutMs: 2_000, stallTimeoutMs: 4_000, healWindowMs: 60_000 },
      // Gateway B listens on 0.0.0.0 with a second subnet: both addresses answer.
      route: (paths, port) => ({ peer: paths.map((p) => `${p.addrB}:${port}`) }),
    });
  });
  after(async () => {
    await stage?.close();
  });

  for (const plan of PLANS) {
    test(`${plan.mode}: path 0 down for good mid-migration -> every channel heals over path 1, completes, RAM equal`, async (t) => {
      const m = await startMidMigration(stage, `paths-${plan.mode}`, plan);
      await stage.net.linkDown(0);
      try {
        await assertCleanCompletion(t, m, plan);
        const healed = await assertHealed(stage, m, channelsOf(plan));
        for (const l of healed) {
          assert.equal(l['path'], 1, `healed over path 1: ${JSON.stringify(l)}`);
          assert.equal(l['address'], `${stage.net.paths[1]?.addrB ?? ''}:7443`, JSON.stringify(l));
        }
      } finally {
        await stage.net.linkUp(0);
      }
      await Promise.all([m.src.kill(), m.dst.kill()]);
    });
  }
});

/** The route listens on QEMU_PORT and QEMU_PORT+1 (and B's target connects to the same port): the second is for the postcopy recovery. */
const RECOVER_URI = `tcp:127.0.0.1:${QEMU_PORT + 1}`;
const HEAL_WINDOW_MS = 3_000;

describe('a link down past channel.healWindowMs ends the session cleanly', { timeout: 4 * 60_000 }, () => {
  let stage: NetnsGateways;

  before(async () => {
    stage = await startNetnsGateways({
      subnet: '10.250.73.0/30',
      tag: 'heal-expire',
      ports: 2,
      channel: { linkTimeoutMs: 2_000, stallTimeoutMs: 4_000, healWindowMs: HEAL_WINDOW_MS },
    });
  });
  after(async () => {
    await stage?.close();
  });

  for (const plan of PLANS.filter((p) => p.mode !== 'postcopy')) {
    const channels = channelsOf(plan);
    test(`${plan.mode}: heal-expired on both gateways for all ${channels} channel(s), the source migration failed, its VM still running`, async () => {
      const { gwA, gwB, net } = stage;
      const src = await stage.source(`src-expire-${plan.mode}`, { plan, running: true });
      const dst = await stage.destination(`dst-expire-${plan.mode}`, { plan });
      const fromA = gwA.logs.length;
      const fromB = gwB.logs.length;
      await src.migrate(QEMU_URI);
      await waitForTransferred(src, MID_MIGRATION_BYTES, TIMEOUT_MS);
      await gwA.waitForLogs(isEvent('channel-open'), channels, LOG_TIMEOUT_MS, fromA);
      await net.linkDown();
      try {
        for (const [gw, from] of [[gwA, fromA], [gwB, fromB]] as const) {
          const closes = await gw.waitForLogs(isChannelClose, channels, LOG_TIMEOUT_MS, from);
          for (const l of closes) assert.equal(l['cause'], 'heal-expired', `${gw.name}: ${JSON.stringify(l)}\n${gw.diagnostics(20)}`);
          assert.ok(since(gw, from, 'link-lost').length >= 1, `${gw.name} logged no link-lost`);
          assert.deepEqual(since(gw, from, 'link-healed'), [], `${gw.name} healed a link that was down`);
          assert.deepEqual(since(gw, from, 'session-stalled'), [], `${gw.name}: the stall watch fired while healing`);
        }
        const info = await src.waitForMigration(['failed'], TIMEOUT_MS);
        assert.equal(info.status, 'failed');
        assert.equal(await src.runState(), 'running', 'the source VM keeps running');
      } finally {
        await net.linkUp();
      }
      await Promise.all([src.kill(), dst.kill()]);
    });
  }

  test('postcopy: heal-expired pauses both QEMUs; migrate-recover + migrate resume=true through the gateways completes, RAM equal', async (t) => {
    const { gwA, gwB, net } = stage;
    const m = await startMidMigration(stage, 'recover', { mode: 'postcopy', maxBandwidth: SLOW_BANDWIDTH });
    const { src, dst, srcHash, fromA, fromB, watch, started } = m;
    await net.linkDown();
    try {
      await gwA.waitForLogs(isExpired, 1, LOG_TIMEOUT_MS, fromA);
      await gwB.waitForLogs(isExpired, 1, LOG_TIMEOUT_MS, fromB);
      // Both QEMUs lost their socket: a postcopy cannot fail, it pauses.
      await src.waitForMigration(['postcopy-paused'], TIMEOUT_MS);
      await dst.waitForMigration(['postcopy-paused'], TIMEOUT_MS);
    } finally {
      await net.linkUp();
    }
    const fromA2 = gwA.logs.length;
    await dst.qmp.execute('migrate-recover', { uri: RECOVER_URI });
    await src.qmp.execute('migrate', { uri: RECOVER_URI, resume: true });
    const info = await src.waitForMigration(['completed'], TIMEOUT_MS);
    await dst.waitForMigration(['completed'], TIMEOUT_MS);
    await dst.qmp.waitForRunState(['paused'], TIMEOUT_MS);
    const [srcSeen, dstSeen] = await watch.stop();
    assert.equal(info['error-desc'], undefined, `source error: ${String(info['error-desc'])}`);
    assert.ok(srcSeen?.includes('postcopy-paused') && srcSeen.includes('postcopy-recover'), `source: ${srcSeen?.join('>')}`);
    for (const [side, seen] of [['source', srcSeen], ['destination', dstSeen]] as const) {
      assert.ok(!(seen ?? []).includes('failed'), `${side} failed: ${seen?.join('>')}`);
    }
    assert.equal(await dst.ramHash(), srcHash, 'destination guest RAM differs from the source');
    // The recovery went through the gateways: a new channel on the second port of the range.
    const opened = since(gwA, fromA2, 'channel-open');
    assert.ok(opened.length >= 1, `host-a opened no channel for the recovery\n${gwA.diagnostics(20)}`);
    const [closed] = await gwA.waitForLogs(isEvent('channel-close'), 1, LOG_TIMEOUT_MS, fromA2);
    assert.equal(closed?.['cause'], 'ok', `the recovery channel: ${JSON.stringify(closed)}`);
    t.diagnostic(`recovered postcopy completed ${Date.now() - started} ms after migrate; source ${srcSeen?.join('>')}, destination ${dstSeen?.join('>')}`);
    await Promise.all([src.kill(), dst.kill()]);
  });
});
