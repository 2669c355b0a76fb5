/**
 * Shared steps of the end-to-end healing tests (test/e2e/heal-*.test.ts):
 * start a watched migration of a paused source with random RAM, then check
 * that it completed cleanly (no failure, no postcopy-paused, RAM equal) and
 * that both gateways healed the hop rather than ending anything.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { GatewayLogLine, GatewayProcess } from './gateway-process.js';
import { watchMigration, type MigrationWatch } from './migration-watch.js';
import { MID_MIGRATION_BYTES, QEMU_URI, SLOW_BANDWIDTH, waitForTransferred, type NetnsGateways } from './netns-gateways.js';
import type { MigrationPlan, QemuVm } from './qemu.js';

export const TIMEOUT_MS = 60_000;
export const LOG_TIMEOUT_MS = 20_000;

export const isEvent = (event: string) => (l: GatewayLogLine): boolean => l.event === event;
export const since = (gw: GatewayProcess, from: number, event: string): GatewayLogLine[] => gw.logs.slice(from).filter(isEvent(event));

/** Slowed (max-bandwidth; for postcopy max-postcopy-bandwidth too) so that each fault lands mid-migration. */
export const PLANS: readonly MigrationPlan[] = [
  { mode: 'precopy', maxBandwidth: SLOW_BANDWIDTH },
  { mode: 'multifd', multifdChannels: 4, maxBandwidth: SLOW_BANDWIDTH },
  { mode: 'postcopy', maxBandwidth: SLOW_BANDWIDTH },
];

export interface Migration {
  readonly src: QemuVm;
  readonly dst: QemuVm;
  readonly srcHash: string;
  readonly fromA: number;
  readonly fromB: number;
  readonly watch: MigrationWatch;
  readonly started: number;
}

/**
 * A paused source (random RAM, hashed now) and a listening destination;
 * `migrate` started, both watched. Postcopy's own rate limit
 * (max-postcopy-bandwidth, 0: none) is set to max-bandwidth too, so that the
 * background transfer is still running when a fault lands.
 */
async function startMigration(stage: NetnsGateways, name: string, plan: MigrationPlan): Promise<Migration> {
  const src = await stage.source(`src-${name}`, { plan });
  if (plan.mode === 'postcopy' && plan.maxBandwidth !== undefined) await src.setParameters({ 'max-postcopy-bandwidth': plan.maxBandwidth });
  const dst = await stage.destination(`dst-${name}`, { plan });
  const srcHash = await src.ramHash();
  const fromA = stage.gwA.logs.length;
  const fromB = stage.gwB.logs.length;
  const started = Date.now();
  await src.migrate(QEMU_URI);
  const watch = watchMigration([src, dst]);
  return { src, dst, srcHash, fromA, fromB, watch, started };
}

/** The hop channels a migration of this mode opens: the main channel, plus one per multifd channel. */
export function channelsOf(plan: MigrationPlan): number {
  return plan.mode === 'multifd' ? 1 + (plan.multifdChannels ?? 4) : 1;
}

/** The destination's run state once a migration of a paused guest has completed. */
function finalStateOf(plan: MigrationPlan): 'prelaunch' | 'paused' {
  return plan.mode === 'postcopy' ? 'paused' : 'prelaunch';
}

/**
 * `startMigration`, then waits until a fault would land in the middle of it:
 * MID_MIGRATION_BYTES sent and still active, every channel open on the source
 * gateway; for postcopy, switched (migrate-start-postcopy) and another
 * MID_MIGRATION_BYTES sent in postcopy-active.
 */
export async function startMidMigration(stage: NetnsGateways, name: string, plan: MigrationPlan): Promise<Migration> {
  const m = await startMigration(stage, name, plan);
  await waitForTransferred(m.src, MID_MIGRATION_BYTES, TIMEOUT_MS);
  await stage.gwA.waitForLogs(isEvent('channel-open'), channelsOf(plan), LOG_TIMEOUT_MS, m.fromA);
  if (plan.mode === 'postcopy') {
    await m.src.startPostcopy();
    const switched = await m.src.waitForMigration(['postcopy-active'], TIMEOUT_MS);
    await waitForPostcopyTransferred(m.src, (switched.ram?.transferred ?? 0) + MID_MIGRATION_BYTES);
  }
  return m;
}

/**
 * The migration completes on both sides, neither QEMU ever reported a
 * failure or postcopy-paused (a postcopy did reach postcopy-active), and the
 * destination's RAM is the source's.
 */
export async function assertCleanCompletion(t: TestContext, m: Migration, plan: MigrationPlan): Promise<void> {
  const finalState = finalStateOf(plan);
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
  if (plan.mode === 'postcopy') assert.ok(seen[0]?.includes('postcopy-active'), `the source never reached postcopy-active: ${seen[0]?.join('>')}`);
  assert.equal(await m.dst.ramHash(), m.srcHash, 'destination guest RAM differs from the source');
  t.diagnostic(`completed in ${Date.now() - m.started} ms, source statuses ${seen[0]?.join('>')}, destination ${seen[1]?.join('>')}`);
}

/** Both gateways logged `link-lost` and then `link-healed` for at least `channels` channels, and ended nothing. */
export async function assertHealed(stage: NetnsGateways, m: Migration, channels: number): Promise<GatewayLogLine[]> {
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
