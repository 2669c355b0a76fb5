/**
 * The e2e stage's hop faults against real gateways: with a second veth path
 * and the route pointed at it, `killHop` finds and destroys the gateways'
 * connection on that path (from either side) and nothing on the other. The
 * QEMUs are stood in for by plain TCP programs: what is tested here is the
 * fault, not the migration.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { QEMU_PORT, startNetnsGateways } from '../helpers/netns-gateways.js';
import { waitFor } from '../helpers/wait-for.js';

const GATEWAY_PORT = 7443;

/** Stands in for the destination QEMU: accepts on QEMU_PORT in B, reads, prints a line per connection. */
const DESTINATION = `
require('node:net').createServer((s) => { console.log('accept'); s.resume(); s.on('error', () => {}); })
  .listen(${QEMU_PORT}, '127.0.0.1', () => console.log('listening'));`;
/** Stands in for the source QEMU: connects to the route in A and sends a little. */
const SOURCE = `
const s = require('node:net').connect({ host: '127.0.0.1', port: ${QEMU_PORT} }, () => s.write('migration stream'));
s.on('error', () => {});`;

function lines(child: ChildProcess): string[] {
  const out: string[] = [];
  if (child.stdout) createInterface({ input: child.stdout }).on('line', (l) => out.push(l));
  return out;
}

test('killHop destroys the gateways connection on the path the route uses, from either side, and nothing elsewhere', async () => {
  const stage = await startNetnsGateways({
    subnet: '10.250.63.0/30',
    secondSubnet: '10.250.64.0/30',
    tag: 'hop-faults',
    imageMiB: 1,
    route: (paths, port) => ({ peer: `${paths[1]?.addrB ?? ''}:${port}` }),
  });
  const children: ChildProcess[] = [];
  const spawn = (ns: string, script: string): string[] => {
    const c = stage.net.spawnIn(ns, [process.execPath, '-e', script]);
    children.push(c);
    return lines(c);
  };
  try {
    const second = stage.net.paths[1];
    assert.ok(second !== undefined);
    const dst = spawn(stage.net.b, DESTINATION);
    await waitFor(() => dst.includes('listening'), { what: 'the destination stand-in to listen' });

    spawn(stage.net.a, SOURCE);
    await waitFor(() => dst.includes('accept'), { what: 'a channel through both gateways' });
    assert.deepEqual(await stage.killHop({ path: 0 }), [], 'no hop connection on path 0');
    const fromB = await stage.killHop({ side: 'b', path: 1 });
    assert.ok(fromB.length >= 1, 'B destroyed the hop connection');
    for (const k of fromB) assert.equal(k.local, `${second.addrB}:${GATEWAY_PORT}`);

    spawn(stage.net.a, SOURCE);
    await waitFor(() => dst.filter((l) => l === 'accept').length === 2, { what: 'a second channel' });
    const fromA = await stage.killHop();
    assert.ok(fromA.length >= 1, 'A destroyed the hop connection');
    for (const k of fromA) assert.equal(k.peer, `${second.addrB}:${GATEWAY_PORT}`);
    await assert.rejects(stage.killHop({ path: 2 }), /no path 2/);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await stage.close();
  }
});
