/**
 * An evacuation as operators run it: libvirt picks the destination QEMU's
 * port per migration (qemu.conf migration_port_min..max), the migrate URI
 * names no port, and several `virsh migrate` run at once. The vmgate route
 * listens on the whole range and each port carries its own migration to the
 * same port of the target's range on host B.
 *
 * Stage and facts: test/helpers/libvirt-stage.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GatewayLogLine } from '../helpers/gateway-process.js';
import { startLibvirtStage, type LibvirtStage } from '../helpers/libvirt-stage.js';

const FIRST = 49152;
const LAST = 49215;
const DOMAINS = ['fleet-1', 'fleet-2', 'fleet-3'];

describe('virsh migrate with libvirt choosing the port, several at once', { timeout: 8 * 60_000 }, () => {
  let stage: LibvirtStage;

  before(async () => {
    stage = await startLibvirtStage({
      subnet: '10.250.64.0/30',
      tag: 'fleet',
      // As docs/libvirt.md sets it up: host B's own loopback address, 127.0.0.2.
      local: `tcp:127.0.0.2:${FIRST}-${LAST}`,
      migrateUri: 'tcp://127.0.0.2',
      listenAddress: '127.0.0.2',
      qemu: { migrationPorts: { min: FIRST, max: LAST } },
    });
  });

  after(async () => {
    await stage?.close();
  });

  test(`three domains migrated at once by three concurrent virsh migrate, libvirt picking each port`, async (t) => {
    const { hostA, hostB, gwA, gwB } = stage;
    const before = await Promise.all(DOMAINS.map((name) => stage.startDomain(name)));
    for (const d of before) assert.equal(d.payload, stage.payload.sha256, 'the payload is not in a source guest');
    const fromA = gwA.logs.length;
    const fromB = gwB.logs.length;
    const started = Date.now();
    const results = await Promise.all(DOMAINS.map((name) => stage.migrate(name).done));
    for (const [i, r] of results.entries()) {
      assert.equal(r.code, 0, `virsh migrate ${DOMAINS[i] ?? ''} failed: ${r.stderr}\n${gwA.diagnostics()}\n${gwB.diagnostics()}`);
    }
    t.diagnostic(`3 concurrent migrations in ${Date.now() - started} ms`);
    assert.deepEqual((await hostB.domains()).sort(), [...DOMAINS].sort(), 'every domain runs on host B');
    assert.deepEqual(await hostA.domains(), []);
    for (const [i, name] of DOMAINS.entries()) {
      assert.deepEqual(await stage.digests(hostB, name), before[i], `guest RAM of ${name} on host B differs from the source`);
    }
    // Each migration had a port of its own, chosen by libvirt from the range, on both gateways.
    const opens = (gw: typeof gwA, from: number): GatewayLogLine[] => gw.logs.slice(from).filter((l) => l.event === 'channel-open');
    const portsA = new Set(opens(gwA, fromA).map((l) => Number(l['port'])));
    const sessionsA = new Set(opens(gwA, fromA).map((l) => String(l['session'])));
    assert.equal(sessionsA.size, DOMAINS.length, 'one session per migration');
    assert.equal(portsA.size, DOMAINS.length, `one port per migration, got ${[...portsA].join(', ')}`);
    for (const p of portsA) assert.ok(p >= FIRST && p <= LAST, `port ${p} outside the range`);
    assert.deepEqual(new Set(opens(gwB, fromB).map((l) => Number(l['port']))), portsA, 'host B connected the same ports');
    for (const l of gwA.logs.slice(fromA).filter((x) => x.event === 'channel-close')) assert.equal(l['cause'], 'ok', JSON.stringify(l));
    for (const name of DOMAINS) await hostB.virsh(['destroy', name]);
  });

  test('a single virsh migrate without a port in the URI goes through the range', async () => {
    const name = 'fleet-single';
    const before = await stage.startDomain(name);
    const r = await stage.migrate(name).done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await stage.digests(stage.hostB, name), before);
    await stage.hostB.virsh(['destroy', name]);
  });
});
