/**
 * An evacuation through one gateway pair: eight real QEMU migrations at the
 * same time, each on its own port of a port-range route and to its own
 * destination QEMU, mixing precopy, multifd 4 and postcopy. Every guest's
 * RAM must arrive bit for bit, every migration must be its own session on
 * both gateways, and `vmgate cancel` of one must leave the others intact.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { adminRequest } from '../../src/admin/admin-client.js';
import type { GatewayLogLine } from '../helpers/gateway-process.js';
import { QEMU_PORT, SLOW_BANDWIDTH, startNetnsGateways, waitForTransferred, type NetnsGateways } from '../helpers/netns-gateways.js';
import { migrateAndWait, type MigrationPlan, type QemuVm } from '../helpers/qemu.js';

const MiB = 1024 * 1024;
const MIGRATION_TIMEOUT_MS = 180_000;
const PLANS: MigrationPlan[] = [
  { mode: 'precopy' }, { mode: 'multifd', multifdChannels: 4 }, { mode: 'postcopy' }, { mode: 'precopy' },
  { mode: 'multifd', multifdChannels: 4 }, { mode: 'postcopy' }, { mode: 'precopy' }, { mode: 'multifd', multifdChannels: 4 },
];
/** QEMU's channels per migration: the main one, plus multifd's. */
const channelsOf = (p: MigrationPlan): number => (p.mode === 'multifd' ? 1 + (p.multifdChannels ?? 4) : 1);

const isEvent = (event: string) => (l: GatewayLogLine): boolean => l.event === event;

describe('eight migrations at once through one gateway pair', { timeout: 10 * 60_000 }, () => {
  let stage: NetnsGateways;

  before(async () => {
    stage = await startNetnsGateways({ subnet: '10.250.44.0/30', tag: 'evacuate', guestMiB: 96, imageMiB: 48, ports: PLANS.length + 1 });
  });

  after(async () => {
    await stage?.close();
  });

  test('precopy, multifd 4 and postcopy side by side, each on its own port: every guest intact', async (t) => {
    const { gwA, gwB } = stage;
    const fromA = gwA.logs.length;
    const fromB = gwB.logs.length;
    const pairs = await Promise.all(PLANS.map(async (plan, i) => {
      const port = QEMU_PORT + i;
      const src = await stage.source(`ev-src-${i}`, { plan });
      const dst = await stage.destination(`ev-dst-${i}`, { plan, port });
      return { plan, port, src, dst, hash: await src.ramHash() };
    }));
    const started = Date.now();
    const results = await Promise.all(pairs.map((p) => migrateAndWait(p.src, p.dst, `tcp:127.0.0.1:${p.port}`, p.plan, MIGRATION_TIMEOUT_MS))).catch(async (e: unknown) => {
      await Promise.all(pairs.flatMap((p) => [p.src.kill(), p.dst.kill()]));
      throw new Error(`${String(e)}\n${gwA.diagnostics(40)}\n${gwB.diagnostics(40)}`);
    });
    t.diagnostic(`${PLANS.length} migrations at once in ${Date.now() - started} ms`);
    for (const [i, p] of pairs.entries()) {
      assert.equal(await p.dst.ramHash(), p.hash, `guest ${i} (${p.plan.mode}, port ${p.port}): RAM differs`);
      if (p.plan.mode === 'postcopy') assert.ok(results[i]?.sourceStatuses.includes('postcopy-active'), `guest ${i} never went postcopy`);
    }
    const total = PLANS.reduce((n, p) => n + channelsOf(p), 0);
    const closesA = await gwA.waitForLogs(isEvent('channel-close'), total, 30_000, fromA);
    const closesB = await gwB.waitForLogs(isEvent('channel-close'), total, 30_000, fromB);
    await Promise.all(pairs.flatMap((p) => [p.src.kill(), p.dst.kill()]));
    for (const l of [...closesA, ...closesB]) assert.equal(l['cause'], 'ok', JSON.stringify(l));
    // One session per migration, keyed by its port, the same on both gateways.
    for (const closes of [closesA, closesB]) {
      const byPort = new Map<number, Set<unknown>>();
      for (const l of closes) byPort.set(Number(l['port']), (byPort.get(Number(l['port'])) ?? new Set()).add(l['session']));
      assert.equal(byPort.size, PLANS.length, 'every migration on its own port');
      for (const [port, sessions] of byPort) assert.equal(sessions.size, 1, `port ${port} carried more than one session`);
      for (const [i, p] of pairs.entries()) {
        assert.equal(closes.filter((l) => Number(l['port']) === p.port).length, channelsOf(p.plan), `guest ${i}: channel count`);
      }
    }
  });

  test('vmgate cancel of one migration ends it and leaves the one beside it intact', async () => {
    const slow: MigrationPlan = { mode: 'precopy', maxBandwidth: SLOW_BANDWIDTH / 8 };
    const [a, b] = [QEMU_PORT, QEMU_PORT + 1];
    const doomedSrc: QemuVm = await stage.source('cancel-src', { plan: slow });
    const doomedDst: QemuVm = await stage.destination('cancel-dst', { plan: slow, port: a });
    const keptSrc: QemuVm = await stage.source('kept-src', { plan: { mode: 'precopy' } });
    const keptDst: QemuVm = await stage.destination('kept-dst', { plan: { mode: 'precopy' }, port: b });
    const keptHash = await keptSrc.ramHash();
    await doomedSrc.migrate(`tcp:127.0.0.1:${a}`);
    await waitForTransferred(doomedSrc, 4 * MiB, 60_000);
    const kept = migrateAndWait(keptSrc, keptDst, `tcp:127.0.0.1:${b}`, { mode: 'precopy' }, MIGRATION_TIMEOUT_MS);
    const { sessions } = await adminRequest(stage.controlA, { op: 'sessions' });
    const victim = sessions.find((s) => s.port === a);
    assert.ok(victim, `no session on port ${a}: ${JSON.stringify(sessions)}`);
    assert.equal((await adminRequest(stage.controlA, { op: 'cancel', session: victim.session })).cancelled, 1);
    const failed = await doomedSrc.waitForMigration(['failed', 'cancelled'], 30_000);
    assert.equal(failed.status, 'failed');
    await kept;
    assert.equal(await keptDst.ramHash(), keptHash, 'the migration beside the cancelled one arrived intact');
    await Promise.all([doomedSrc, doomedDst, keptSrc, keptDst].map((vm) => vm.kill()));
  });
});
