/**
 * A libvirt migration the destination gateway refuses: host B's vmgate does
 * not have host-a on target "incoming"'s allow-list. virsh must fail within
 * seconds of the refusal (not hang until a timeout), both gateways must log
 * the cause code, and the domain must keep running on host A.
 *
 * Stage and facts: test/helpers/libvirt-stage.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GatewayLogLine } from '../helpers/gateway-process.js';
import { startLibvirtStage, type LibvirtStage } from '../helpers/libvirt-stage.js';

/** virsh has returned within this after the source gateway logged the refusal. */
const FAIL_WITHIN_MS = 5_000;

const isRefused = (l: GatewayLogLine): boolean => l.event === 'channel-refused';

describe('virsh migrate refused by the destination gateway', { timeout: 3 * 60_000 }, () => {
  let stage: LibvirtStage;

  before(async () => {
    stage = await startLibvirtStage({ subnet: '10.250.63.0/30', tag: 'refused', allow: [{ peer: 'host-z', user: 'migrate' }] });
  });

  after(async () => {
    await stage?.close();
  });

  test('source not on the allow-list: virsh fails within seconds, both gateways log target-forbidden', async (t) => {
    const { hostA, hostB, gwA, gwB } = stage;
    const name = 'refused';
    await stage.startDomain(name);
    const fromA = gwA.logs.length;
    const fromB = gwB.logs.length;
    const run = stage.migrate(name);
    const [refusedA] = await gwA.waitForLogs(isRefused, 1, 60_000, fromA);
    const tRefused = Date.now();
    const r = await run.done;
    const afterRefusalMs = Date.now() - tRefused;
    assert.notEqual(r.code, 0, 'virsh migrate succeeded through a gateway that refuses it');
    assert.ok(afterRefusalMs < FAIL_WITHIN_MS, `virsh took ${afterRefusalMs} ms to fail after the refusal`);
    const [refusedB] = await gwB.waitForLogs(isRefused, 1, 10_000, fromB);
    assert.equal(refusedA?.['cause'], 'target-forbidden', JSON.stringify(refusedA));
    assert.equal(refusedB?.['cause'], 'target-forbidden', JSON.stringify(refusedB));
    assert.deepEqual(gwB.logs.slice(fromB).filter((l) => l.event === 'channel-open'), [], 'host-b opened a channel it should refuse');
    assert.deepEqual(await hostA.domains(), [name], 'the domain must still run on host A');
    assert.equal((await hostA.virsh(['domstate', name])).trim(), 'running');
    assert.deepEqual(await hostB.domains(), [], 'nothing may be left on host B');
    t.diagnostic(`virsh failed after ${r.elapsedMs} ms in all, ${afterRefusalMs} ms after the refusal: ${r.stderr.trim()}`);
  });
});
