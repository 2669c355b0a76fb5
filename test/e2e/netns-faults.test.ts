/**
 * The network faults the heal tests inject between two namespaces, each
 * shown to happen on a real TCP connection across the veth: `ss -K` resets
 * it (ECONNABORTED on the killing side, ECONNRESET at the peer); a link that
 * is down refuses connects (ENETUNREACH) and an established connection
 * survives it silently; a second path carries connections on its own, and
 * taking it down leaves the first working.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { createNetnsPair, type NetnsPair } from '../helpers/netns.js';
import { waitFor, within } from '../helpers/wait-for.js';

const PORT = 7000;

/** An echo server on every address of the namespace; prints one JSON line per event. */
const SERVER = `
const net = require('node:net');
net.createServer((s) => {
  console.log(JSON.stringify({ event: 'accept', peer: s.remoteAddress }));
  s.on('data', (d) => s.write(d));
  s.on('error', (e) => console.log(JSON.stringify({ event: 'error', code: e.code })));
}).listen(${PORT}, '0.0.0.0', () => console.log(JSON.stringify({ event: 'listening' })));`;

/** A client that stays connected, echoes stdin lines through the connection, and prints its events. */
const client = (host: string): string => `
const s = require('node:net').connect({ host: '${host}', port: ${PORT} });
s.on('connect', () => console.log(JSON.stringify({ event: 'connect' })));
s.on('data', (d) => console.log(JSON.stringify({ event: 'data', text: String(d) })));
s.on('error', (e) => console.log(JSON.stringify({ event: 'error', code: e.code })));
process.stdin.on('data', (d) => s.write(d));`;

/** One connect attempt; prints "connected" or the error code. */
const probe = (host: string): string => `
const s = require('node:net').connect({ host: '${host}', port: ${PORT} });
s.on('connect', () => { console.log('connected'); s.destroy(); });
s.on('error', (e) => console.log(e.code));`;

interface Events {
  readonly lines: Record<string, string>[];
  readonly child: ChildProcess;
}

function events(child: ChildProcess): Events {
  const lines: Record<string, string>[] = [];
  if (child.stdout) createInterface({ input: child.stdout }).on('line', (l) => lines.push(JSON.parse(l) as Record<string, string>));
  return { lines, child };
}
const seen = (e: Events, event: string): Record<string, string> | undefined => e.lines.find((l) => l['event'] === event);

async function withPair(body: (net: NetnsPair, server: Events) => Promise<void>, secondSubnet?: string): Promise<void> {
  const net = await createNetnsPair({ subnet: '10.250.61.0/30', ...(secondSubnet === undefined ? {} : { secondSubnet }) });
  const children: ChildProcess[] = [];
  try {
    const server = events(net.spawnIn(net.b, [process.execPath, '-e', SERVER]));
    children.push(server.child);
    await waitFor(() => seen(server, 'listening'), { what: 'the echo server in B to listen' });
    await body(net, server);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await net.destroy();
  }
}

async function connected(net: NetnsPair, host: string): Promise<Events> {
  const c = events(net.spawnIn(net.a, [process.execPath, '-e', client(host)], { stdio: ['pipe', 'pipe', 'pipe'] }));
  await waitFor(() => seen(c, 'connect') ?? seen(c, 'error'), { what: `a connection from A to ${host}` });
  assert.ok(seen(c, 'connect'), JSON.stringify(c.lines));
  return c;
}

const connectOnce = async (net: NetnsPair, host: string): Promise<string> =>
  (await net.exec(net.a, [process.execPath, '-e', probe(host)])).stdout.trim();

test('killConnections (ss -K) resets a connection across the veth: ECONNABORTED here, ECONNRESET at the peer', async () => {
  await withPair(async (net, server) => {
    const c = await connected(net, net.addrB);
    try {
      const killed = await net.killConnections(net.a, { dst: net.addrB, dport: PORT });
      assert.equal(killed.length, 1);
      assert.equal(killed[0]?.peer, `${net.addrB}:${PORT}`);
      assert.match(killed[0]?.local ?? '', new RegExp(`^${net.addrA.replaceAll('.', '\\.')}:\\d+$`));
      const mine = await waitFor(() => seen(c, 'error'), { what: "the client's error after ss -K" });
      assert.equal(mine['code'], 'ECONNABORTED');
      const theirs = await waitFor(() => seen(server, 'error'), { what: "the server's error after ss -K" });
      assert.equal(theirs['code'], 'ECONNRESET');
      assert.deepEqual(await net.killConnections(net.a, { dport: PORT }), [], 'nothing left to kill');
    } finally {
      c.child.kill('SIGKILL');
    }
  });
});

test('linkDownFor: no connect while the veth is down, an established connection survives it, connects work after', async () => {
  await withPair(async (net) => {
    const c = await connected(net, net.addrB);
    try {
      const outage = net.linkDownFor(2_000);
      await waitFor(async () => (await connectOnce(net, net.addrB)) === 'ENETUNREACH', { what: 'a connect to fail while the link is down', timeoutMs: 2_000 });
      const { downAt, upAt } = await within(outage, 10_000, 'the link to come back');
      assert.ok(upAt - downAt >= 2_000, `down for ${upAt - downAt} ms`);
      assert.equal(await connectOnce(net, net.addrB), 'connected');
      c.child.stdin?.write('still here');
      await waitFor(() => c.lines.find((l) => l['event'] === 'data' && l['text'] === 'still here'), { what: 'an echo over the connection that lived through the outage' });
      assert.equal(seen(c, 'error'), undefined, 'the outage reset nothing');
    } finally {
      c.child.kill('SIGKILL');
    }
  });
});

test('a second path carries its own connections; taking it down for good leaves the first working', async () => {
  await withPair(async (net, server) => {
    assert.equal(net.paths.length, 2);
    const [first, second] = net.paths;
    assert.ok(first !== undefined && second !== undefined);
    assert.deepEqual([first.addrA, first.addrB, second.addrA, second.addrB], ['10.250.61.1', '10.250.61.2', '10.250.62.1', '10.250.62.2']);
    assert.equal(await connectOnce(net, second.addrB), 'connected');
    await waitFor(() => server.lines.find((l) => l['peer'] === second.addrA), { what: 'B to see the connect from the second path address' });
    await net.linkDown(1);
    assert.equal(await connectOnce(net, second.addrB), 'ENETUNREACH');
    assert.equal(await connectOnce(net, first.addrB), 'connected');
    await assert.rejects(net.linkDown(2), /no path 2/);
  }, '10.250.62.0/30');
});
