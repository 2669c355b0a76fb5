/**
 * The product's main promise, end to end: a real QEMU in namespace A migrates
 * to its local gateway (route "to-b" on A's 127.0.0.1), the gateways carry the
 * stream over TLS 1.3 + SASL across the veth link, and the gateway in B
 * connects the destination QEMU listening on B's 127.0.0.1. Guest RAM must
 * arrive bit for bit, and both gateways must account for every channel.
 *
 * Compare the timings printed here with harness-direct.test.ts (same guest,
 * same link, no gateways).
 *
 * A second pair runs with `workers: 2` on both gateways: a multifd migration
 * whose channels are carried by different worker processes on each side
 * must arrive just as intact.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import type { GatewayLogLine, GatewayProcess } from '../helpers/gateway-process.js';
import { QEMU_URI, startNetnsGateways, type NetnsGateways } from '../helpers/netns-gateways.js';
import { migrateAndWait, type MigrationPlan } from '../helpers/qemu.js';

const MIGRATION_TIMEOUT_MS = 45_000;
const LOG_TIMEOUT_MS = 10_000;

const isEvent = (event: string) => (l: GatewayLogLine): boolean => l.event === event;

/** The channel-close lines of one migration on each gateway. */
interface Closes {
  closesA: GatewayLogLine[];
  closesB: GatewayLogLine[];
}

/**
 * Migrates a fresh source (random RAM) through the gateways to a fresh
 * destination, compares RAM hashes, then checks both gateways' channel
 * lines for this migration: `channels` channels, one session, all closed
 * "ok", and each channel's bytes equal on both sides (nothing lost).
 */
async function migrateThroughGateways(stage: NetnsGateways, t: TestContext, plan: MigrationPlan, channels: number): Promise<Closes> {
  const { gwA, gwB, image } = stage;
  const t0 = Date.now();
  const fromA = gwA.logs.length;
  const fromB = gwB.logs.length;
  const src = await stage.source(`src-${plan.mode}`, { plan });
  const dst = await stage.destination(`dst-${plan.mode}`, { plan });
  const srcHash = await src.ramHash();
  const tReady = Date.now();

  const result = await migrateAndWait(src, dst, QEMU_URI, plan, MIGRATION_TIMEOUT_MS);
  assert.equal(await dst.ramHash(), srcHash, 'destination guest RAM differs from the source');
  assert.equal(result.destinationState, plan.mode === 'postcopy' ? 'paused' : 'prelaunch');
  if (plan.mode === 'postcopy') {
    assert.ok(result.sourceStatuses.includes('postcopy-active'), `no postcopy-active: ${result.sourceStatuses.join('>')}`);
  }

  // Both QEMUs are still running: the channels must end by QEMU's own normal close.
  const closesA = await gwA.waitForLogs(isEvent('channel-close'), channels, LOG_TIMEOUT_MS, fromA);
  const closesB = await gwB.waitForLogs(isEvent('channel-close'), channels, LOG_TIMEOUT_MS, fromB);
  await Promise.all([src.kill(), dst.kill()]);
  const since = (gw: GatewayProcess, from: number, event: string): GatewayLogLine[] => gw.logs.slice(from).filter(isEvent(event));
  const diag = `\n${gwA.diagnostics(channels * 3)}\n${gwB.diagnostics(channels * 3)}`;
  assert.equal(since(gwA, fromA, 'channel-open').length, channels, `host-a channel-open lines${diag}`);
  assert.equal(since(gwB, fromB, 'channel-open').length, channels, `host-b channel-open lines${diag}`);
  assert.equal(closesA.length, channels, `host-a channel-close lines${diag}`);
  assert.equal(closesB.length, channels, `host-b channel-close lines${diag}`);
  assert.deepEqual(since(gwA, fromA, 'channel-refused'), [], 'host-a refused a channel');
  assert.deepEqual(since(gwB, fromB, 'channel-refused'), [], 'host-b refused a channel');

  // One session, the same id on both gateways, channels numbered 0..n-1 in arrival order.
  const sessions = new Set([...closesA, ...closesB].map((l) => l['session']));
  assert.equal(sessions.size, 1, `expected one session, got ${[...sessions].join(', ')}`);
  const byChannel = (lines: GatewayLogLine[]): Map<number, GatewayLogLine> => new Map(lines.map((l) => [Number(l['channel']), l]));
  const a = byChannel(closesA);
  const b = byChannel(closesB);
  const expected = Array.from({ length: channels }, (_, i) => i);
  assert.deepEqual([...a.keys()].sort((x, y) => x - y), expected);
  assert.deepEqual([...b.keys()].sort((x, y) => x - y), expected);

  let sent = 0;
  for (const k of expected) {
    const la = a.get(k);
    const lb = b.get(k);
    assert.ok(la !== undefined && lb !== undefined);
    assert.equal(la['cause'], 'ok', `host-a channel ${k}: ${JSON.stringify(la)}`);
    assert.equal(lb['cause'], 'ok', `host-b channel ${k}: ${JSON.stringify(lb)}`);
    assert.equal(typeof la['bytesOut'], 'number');
    // What A sent to its peer is what B received from its peer, and back.
    assert.equal(la['bytesOut'], lb['bytesIn'], `channel ${k} source->destination bytes differ`);
    assert.equal(la['bytesIn'], lb['bytesOut'], `channel ${k} destination->source bytes differ`);
    sent += Number(la['bytesOut']);
  }
  assert.ok(sent >= image.size, `only ${sent} bytes crossed the gateways`);

  const info = result.source;
  t.diagnostic(
    `${plan.mode} via gateways: ${result.elapsedMs} ms wall, total-time ${info['total-time']} ms, ` +
      `${(sent / 2 ** 20).toFixed(0)} MiB over ${channels} channel(s), ${info.ram?.mbps.toFixed(0)} Mbit/s, ` +
      `downtime ${info.downtime} ms, statuses ${result.sourceStatuses.join('>')}; ` +
      `set-up ${tReady - t0} ms, test ${Date.now() - t0} ms`,
  );
  return { closesA, closesB };
}

describe('migration through a pair of gateways', { timeout: 5 * 60_000 }, () => {
  let stage: NetnsGateways;

  before(async () => {
    stage = await startNetnsGateways({ subnet: '10.250.2.0/30', tag: 'gw' });
  });

  after(async () => {
    await stage?.close();
  });

  test('precopy-through-gateways', async (t) => {
    await migrateThroughGateways(stage, t, { mode: 'precopy' }, 1);
  });

  test('multifd-4-channels-through-gateways-one-session-5-channels', async (t) => {
    await migrateThroughGateways(stage, t, { mode: 'multifd', multifdChannels: 4 }, 5);
  });

  test('postcopy-through-gateways', async (t) => {
    await migrateThroughGateways(stage, t, { mode: 'postcopy' }, 1);
  });

  // Last: it stops the gateways the tests above share.
  test('sigterm-stops-both-gateways-with-exit-0', async () => {
    const { gwA, gwB } = stage;
    const [exitA, exitB] = await Promise.all([gwA.stop(10_000), gwB.stop(10_000)]);
    assert.deepEqual(exitA, { code: 0, signal: null }, gwA.diagnostics());
    assert.deepEqual(exitB, { code: 0, signal: null }, gwB.diagnostics());
    for (const gw of [gwA, gwB]) {
      assert.ok(gw.logs.some(isEvent('stopped')), `${gw.name} logged no "stopped" line`);
      assert.deepEqual(gw.otherStdout, [], `${gw.name} wrote non-JSON lines to stdout`);
    }
  });
});

describe('migration through gateways with workers: 2', { timeout: 5 * 60_000 }, () => {
  let stage: NetnsGateways;

  before(async () => {
    stage = await startNetnsGateways({ subnet: '10.250.2.4/30', tag: 'gw-workers', workers: 2 });
  });

  after(async () => {
    await stage?.close();
  });

  test('multifd-4-through-gateway-workers: RAM intact, channels carried by two worker processes on each side', async (t) => {
    const { closesA, closesB } = await migrateThroughGateways(stage, t, { mode: 'multifd', multifdChannels: 4 }, 5);
    for (const [gw, closes] of [[stage.gwA, closesA], [stage.gwB, closesB]] as const) {
      const pids = new Set(closes.map((l) => l['pid']));
      assert.equal(pids.size, 2, `${gw.name}: channels were carried by ${[...pids].join(', ')}`);
      assert.ok(!pids.has(gw.pid), `${gw.name}: a channel was carried by the primary`);
    }
  });

  test('sigterm-stops-both-worker-gateways-with-exit-0', async () => {
    const { gwA, gwB } = stage;
    const [exitA, exitB] = await Promise.all([gwA.stop(10_000), gwB.stop(10_000)]);
    assert.deepEqual(exitA, { code: 0, signal: null }, gwA.diagnostics());
    assert.deepEqual(exitB, { code: 0, signal: null }, gwB.diagnostics());
    for (const gw of [gwA, gwB]) assert.ok(gw.logs.some(isEvent('stopped')), `${gw.name} logged no "stopped" line`);
  });
});
