/**
 * libvirt end to end, as operators run it: Debian 12's own libvirtd on two
 * "hosts" (network + mount namespaces), real `virsh migrate --live --p2p`,
 * the migration stream through a vmgate pair. Each migration must succeed in
 * virsh, leave the domain running on host B with the source's RAM, and cross
 * the link between the hosts only inside vmgate's TLS: a capture of the hop
 * carries the whole payload's worth of bytes and never a QEMU stream header.
 *
 * Stage and facts: test/helpers/libvirt-stage.ts, libvirt-daemon.ts, libvirt-config.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import type { VirshRun } from '../helpers/libvirt-daemon.js';
import { waitForJobData, type RamDigests } from '../helpers/libvirt-domain.js';
import { LifecycleEvents } from '../helpers/libvirt-events.js';
import { MiB, startLibvirtStage, type LibvirtStage } from '../helpers/libvirt-stage.js';
import { QEMU_STREAM_HEADER } from '../helpers/packet-capture.js';
import type { GatewayLogLine } from '../helpers/gateway-process.js';

const MIGRATION_TIMEOUT_MS = 120_000;

const isEvent = (event: string) => (l: GatewayLogLine): boolean => l.event === event;

describe('virsh migrate through vmgate', { timeout: 6 * 60_000 }, () => {
  let stage: LibvirtStage;

  before(async () => {
    // As operators run it (docs/libvirt.md): no port in --migrateuri, libvirt
    // picks one from qemu.conf's range, the route listens on the whole range.
    stage = await startLibvirtStage({
      subnet: '10.250.60.0/30',
      tag: 'migrate',
      local: 'tcp:127.0.0.1:49152-49215',
      migrateUri: 'tcp://127.0.0.1',
      qemu: { migrationPorts: { min: 49152, max: 49215 } },
    });
  });

  after(async () => {
    await stage?.close();
  });

  /**
   * Starts `name` on A, captures the hop while `drive` runs the migration,
   * then checks virsh's result, where the domain runs, its RAM, the capture
   * and both gateways' channel lines (`channels` of them, all closed "ok").
   */
  async function migrateAndCheck(
    t: TestContext,
    name: string,
    extra: readonly string[],
    channels: number,
    drive?: (name: string, run: VirshRun, events: LifecycleEvents) => Promise<void>,
  ): Promise<void> {
    const t0 = Date.now();
    const { hostA, hostB, gwA, gwB } = stage;
    const events = LifecycleEvents.watch(hostA);
    const before: RamDigests = await stage.startDomain(name);
    await events.waitFor(name, 'Started', 10_000);
    assert.equal(before.payload, stage.payload.sha256, 'the payload is not in the source guest RAM');
    const fromA = gwA.logs.length;
    const fromB = gwB.logs.length;
    const capture = await stage.capture(name);
    const tStart = Date.now();
    const run = stage.migrate(name, extra);
    if (drive !== undefined) await drive(name, run, events);
    const r = await run.done;
    const migrateMs = Date.now() - tStart;
    const scan = await capture.stop(QEMU_STREAM_HEADER);
    assert.equal(r.code, 0, `virsh migrate failed: ${r.stderr}\n${await hostA.diagnostics()}\n${await hostB.diagnostics()}\n${gwA.diagnostics()}\n${gwB.diagnostics()}`);
    // libvirt's own account on the source: the domain stopped because it migrated.
    await events.waitFor(name, 'Stopped Migrated', 10_000).finally(() => events.stop());

    assert.deepEqual(await hostB.domains(), [name], 'the domain must run on host B');
    assert.deepEqual(await hostA.domains(), [], 'the domain must be gone from host A');
    assert.equal((await hostB.virsh(['domstate', name])).trim(), 'running');
    const after = await stage.digests(hostB, name);
    assert.deepEqual(after, before, 'guest RAM on host B differs from the source');

    assert.deepEqual(scan.markerPackets, [], 'a QEMU migration stream header crossed the link in the clear');
    assert.ok(scan.wireBytes >= stage.payload.size, `only ${scan.wireBytes} bytes crossed the link (payload ${stage.payload.size}): the migration did not go through the captured hop`);

    const closesA = await gwA.waitForLogs(isEvent('channel-close'), channels, 10_000, fromA);
    const closesB = await gwB.waitForLogs(isEvent('channel-close'), channels, 10_000, fromB);
    for (const l of [...closesA, ...closesB]) assert.equal(l['cause'], 'ok', JSON.stringify(l));
    const sent = closesA.reduce((n, l) => n + Number(l['bytesOut']), 0);
    assert.ok(sent >= stage.payload.size, `only ${sent} bytes through host-a's gateway`);

    await hostB.virsh(['destroy', name]);
    t.diagnostic(
      `${name}: virsh migrate ${migrateMs} ms, ${(sent / MiB).toFixed(0)} MiB over ${channels} channel(s), ` +
        `capture ${scan.packets} packets / ${(scan.wireBytes / MiB).toFixed(0)} MiB on the wire; test ${Date.now() - t0} ms`,
    );
  }

  test('precopy: virsh migrate --live --p2p through vmgate', async (t) => {
    await migrateAndCheck(t, 'precopy', [], 1);
  });

  test('multifd: --parallel --parallel-connections 4 through vmgate', async (t) => {
    await migrateAndCheck(t, 'parallel', ['--parallel', '--parallel-connections', '4'], 5);
  });

  test('postcopy: --postcopy, then virsh migrate-postcopy while it runs', async (t) => {
    // Precopy capped at 16 MiB/s: it is still running when the switch comes.
    await migrateAndCheck(t, 'postcopy', ['--postcopy', '--bandwidth', '16'], 1, async (name, run, events) => {
      const info = await waitForJobData(stage.hostA, name, 16 * MiB, run, MIGRATION_TIMEOUT_MS);
      await stage.hostA.virsh(['migrate-postcopy', name]);
      // The source's own word that the switch happened: QEMU entered postcopy-active.
      await events.waitFor(name, 'Suspended Post-copy', MIGRATION_TIMEOUT_MS);
      t.diagnostic(`switched to postcopy after ${(info.dataProcessed / MiB).toFixed(0)} MiB`);
    });
  });
});
