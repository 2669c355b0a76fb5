/**
 * `virsh domjobabort` during a libvirt migration through vmgate: the job
 * ends at once, the domain keeps running on host A (nothing left on B), and
 * the same domain migrates again afterwards with its RAM intact.
 *
 * Stage and facts: test/helpers/libvirt-stage.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GatewayLogLine } from '../helpers/gateway-process.js';
import { jobInfo, waitForJobData } from '../helpers/libvirt-domain.js';
import { MiB, startLibvirtStage, type LibvirtStage } from '../helpers/libvirt-stage.js';

/** Precopy capped at this (MiB/s, virsh --bandwidth): the 256 MiB payload alone takes 30 s, so the abort lands mid-way. */
const SLOW_MIB_S = 8;
/** "Mid-way": libvirt reports this much sent and the job still running. */
const MID_WAY = 24 * MiB;
/** "At once": virsh migrate has returned within this after domjobabort returned. */
const ABORT_WITHIN_MS = 5_000;

const isChannelClose = (l: GatewayLogLine): boolean => l.event === 'channel-close';

describe('virsh domjobabort through vmgate', { timeout: 5 * 60_000 }, () => {
  let stage: LibvirtStage;

  before(async () => {
    stage = await startLibvirtStage({ subnet: '10.250.62.0/30', tag: 'abort' });
  });

  after(async () => {
    await stage?.close();
  });

  test('domjobabort mid-migration: job ends at once, domain stays on A, migrates again', async (t) => {
    const t0 = Date.now();
    const { hostA, hostB, gwA, gwB } = stage;
    const name = 'abort';
    const before = await stage.startDomain(name);
    const fromA = gwA.logs.length;
    const fromB = gwB.logs.length;

    const run = stage.migrate(name, ['--bandwidth', String(SLOW_MIB_S)]);
    const mid = await waitForJobData(hostA, name, MID_WAY, run, 60_000);
    const tAbort = Date.now();
    await hostA.virsh(['domjobabort', name]);
    const r = await run.done;
    const endedMs = Date.now() - tAbort;
    assert.notEqual(r.code, 0, `virsh migrate succeeded despite domjobabort: ${r.stdout}`);
    assert.ok(endedMs < ABORT_WITHIN_MS, `virsh migrate took ${endedMs} ms to end after domjobabort`);
    assert.equal((await jobInfo(hostA, name)).type, 'None', 'a job is still running on host A');
    assert.deepEqual(await hostA.domains(), [name], 'the domain must still run on host A');
    assert.equal((await hostA.virsh(['domstate', name])).trim(), 'running');
    assert.deepEqual(await hostB.domains(), [], 'nothing may be left on host B');
    // The aborted session's channel is closed on both gateways (nothing held open).
    const [closedA] = await gwA.waitForLogs(isChannelClose, 1, 10_000, fromA);
    const [closedB] = await gwB.waitForLogs(isChannelClose, 1, 10_000, fromB);
    t.diagnostic(`aborted after ${(mid.dataProcessed / MiB).toFixed(0)} MiB; virsh ended ${endedMs} ms after domjobabort; gateway causes: host-a ${String(closedA?.['cause'])}, host-b ${String(closedB?.['cause'])}`);

    const again = await stage.migrate(name).done;
    assert.equal(again.code, 0, `the second migration failed: ${again.stderr}\n${await hostA.diagnostics()}\n${gwA.diagnostics()}\n${gwB.diagnostics()}`);
    assert.deepEqual(await hostB.domains(), [name]);
    assert.deepEqual(await hostA.domains(), []);
    assert.deepEqual(await stage.digests(hostB, name), before, 'guest RAM on host B differs from the source');
    t.diagnostic(`second migration ${again.elapsedMs} ms; test ${Date.now() - t0} ms`);
  });
});
