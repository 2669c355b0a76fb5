/**
 * The breaking proxy is a test tool, and the heal tests trust what it says:
 * these tests show on real loopback sockets that it forwards both ways
 * intact, that a break at offset N delivers exactly N bytes and then resets
 * both ends, that a reset reaches every end, that a black hole passes nothing
 * and closes nothing until it is restored, and that a refusal is a real
 * ECONNREFUSED while carried connections go on.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { startBreakingProxy, type BreakingProxy, type Direction } from '../helpers/breaking-proxy.js';
import { quietFor, waitFor, within } from '../helpers/wait-for.js';

const MiB = 1 << 20;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** One end of a connection as the test sees it: what arrived, how it ended. */
interface End {
  readonly socket: Socket;
  readonly chunks: Buffer[];
  bytes: number;
  /** The first error's code (ECONNRESET for a reset). */
  error: string | undefined;
  ended: boolean;
  readonly closed: Promise<void>;
}

function track(socket: Socket): End {
  const end: End = {
    socket,
    chunks: [],
    bytes: 0,
    error: undefined,
    ended: false,
    closed: new Promise((resolve) => socket.once('close', () => resolve())),
  };
  socket.on('data', (d: Buffer) => {
    end.chunks.push(d);
    end.bytes += d.length;
  });
  socket.on('end', () => (end.ended = true));
  socket.on('error', (e: NodeJS.ErrnoException) => (end.error ??= e.code));
  return end;
}
const received = (e: End): Buffer => Buffer.concat(e.chunks);

/** The stand-in for the server gateway: records every accepted connection. */
let target: Server;
let targetPort: number;
const accepted: End[] = [];
/** What each accepted connection does first (set per test). */
let onAccept: (s: Socket) => void = () => undefined;

before(async () => {
  target = createServer({ allowHalfOpen: true }, (s) => {
    accepted.push(track(s));
    onAccept(s);
  });
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
  targetPort = (target.address() as { port: number }).port;
});
after(async () => {
  for (const e of accepted) e.socket.destroy();
  await new Promise((resolve) => target.close(resolve));
});

async function withProxy(body: (proxy: BreakingProxy) => Promise<void>): Promise<void> {
  accepted.length = 0;
  onAccept = () => undefined;
  const proxy = await startBreakingProxy({ target: { host: '127.0.0.1', port: targetPort } });
  try {
    await body(proxy);
  } finally {
    await proxy.close();
  }
}

/** A client connection through the proxy, connected, and the target's end of it. */
async function through(proxy: BreakingProxy): Promise<{ client: End; server: End }> {
  const before = accepted.length;
  const client = track(connect({ host: proxy.host, port: proxy.port, allowHalfOpen: true }));
  const server = await waitFor(() => accepted[before], { what: 'the target to accept the connection through the proxy' });
  return { client, server };
}

/** A reset end reports ECONNRESET; a writer may instead first see EPIPE on a socket that the RST already closed. */
const RESET_CODES = ['ECONNRESET', 'EPIPE'];

test('forwards both directions byte for byte, passes half-closes on, and counts', async () => {
  await withProxy(async (proxy) => {
    const up = randomBytes(6 * MiB);
    const down = randomBytes(5 * MiB + 17);
    onAccept = (s) => s.end(down);
    const { client, server } = await through(proxy);
    client.socket.end(up);
    await Promise.all([client.closed, server.closed]);
    assert.equal(sha256(received(server)), sha256(up));
    assert.equal(sha256(received(client)), sha256(down));
    assert.ok(client.ended && server.ended, 'both ends saw a FIN, no reset');
    assert.equal(client.error, undefined);
    assert.equal(server.error, undefined);
    assert.deepEqual(proxy.stats(), { accepted: 1, open: 0, held: 0, resets: 0, toServer: up.length, toClient: down.length });
    assert.deepEqual(proxy.connections(), [{ id: 1, toServer: up.length, toClient: down.length, state: 'closed' }]);
  });
});

test('a break at offset N forwards exactly N bytes in its direction, then resets both ends', async () => {
  await withProxy(async (proxy) => {
    const up = randomBytes(3 * MiB);
    const down = randomBytes(3 * MiB);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom<Direction>('toServer', 'toClient'), fc.integer({ min: 0, max: 3 * MiB }), async (direction, offset) => {
        const cut = proxy.breakAt({ direction, offset });
        onAccept = (s) => s.write(down);
        const { client, server } = await through(proxy);
        client.socket.write(up);
        const event = await within(cut, 10_000, `the break at ${direction} ${offset}`);
        await within(Promise.all([client.closed, server.closed]), 10_000, 'both ends to close after the break');
        const [sender, receiver, sent] = direction === 'toServer' ? [client, server, up] : [server, client, down];
        assert.equal(receiver.bytes, offset, 'the receiving end got exactly the bytes before the offset');
        assert.ok(received(receiver).equals(sent.subarray(0, offset)), 'and they are the first bytes sent');
        assert.ok(RESET_CODES.includes(receiver.error ?? ''), `receiver: ${receiver.error}`);
        assert.ok(RESET_CODES.includes(sender.error ?? ''), `sender: ${sender.error}`);
        assert.equal(receiver.ended, false, 'a reset, not a FIN');
        const conn = proxy.connections().find((c) => c.id === event.connection);
        assert.deepEqual(event, { connection: conn?.id, direction, offset });
        assert.equal(conn?.[direction], offset);
        assert.equal(conn?.state, 'reset');
      }),
      // Each run is a full connection of 3 MiB each way; the edges are the interesting offsets.
      { numRuns: 12, examples: [['toServer', 0], ['toClient', 0], ['toServer', 3 * MiB], ['toClient', 1]] },
    );
  });
});

test('a break fires once, on the connection it names or the first to reach its offset', async () => {
  await withProxy(async (proxy) => {
    const first = await through(proxy);
    const second = await through(proxy);
    const [idFirst, idSecond] = proxy.connections().map((c) => c.id);
    assert.ok(idFirst !== undefined && idSecond !== undefined);
    const cut = proxy.breakAt({ direction: 'toServer', offset: 1000, connection: idSecond });
    first.client.socket.write(randomBytes(4000));
    await waitFor(() => first.server.bytes === 4000, { what: 'the first connection to carry all 4000 bytes past the offset' });
    second.client.socket.write(randomBytes(4000));
    assert.deepEqual(await within(cut, 5_000, 'the break'), { connection: idSecond, direction: 'toServer', offset: 1000 });
    await second.server.closed;
    assert.equal(second.server.bytes, 1000);

    const once = proxy.breakAt({ direction: 'toClient', offset: 10 });
    first.server.socket.write(randomBytes(100));
    await within(once, 5_000, 'the second break');
    const third = await through(proxy);
    third.server.socket.write(randomBytes(100));
    await waitFor(() => third.client.bytes === 100, { what: 'a later connection to pass the spent offset intact' });
    assert.equal(proxy.connections().find((c) => c.id === idFirst)?.state, 'reset');
    assert.equal(proxy.stats().resets, 2);
    assert.equal(proxy.stats().open, 1);
  });
});

test('resetAll resets both ends of every carried connection', async () => {
  await withProxy(async (proxy) => {
    const pairs = [await through(proxy), await through(proxy)];
    pairs[0]?.client.socket.write('x');
    await waitFor(() => pairs[0]?.server.bytes === 1, { what: 'a byte through the first connection' });
    assert.equal(proxy.resetAll(), 2);
    await within(Promise.all(pairs.flatMap((p) => [p.client.closed, p.server.closed])), 5_000, 'all four ends to close');
    for (const end of pairs.flatMap((p) => [p.client, p.server])) {
      assert.equal(end.error, 'ECONNRESET');
      assert.equal(end.ended, false);
    }
    assert.deepEqual(proxy.stats(), { accepted: 2, open: 0, held: 0, resets: 2, toServer: 1, toClient: 0 });
    assert.equal(proxy.resetAll(), 0, 'nothing left to reset');
  });
});

test('a black hole passes nothing and closes nothing; restore delivers what waited and the connections held', async () => {
  await withProxy(async (proxy) => {
    const kept = await through(proxy);
    const dropped = await through(proxy);
    kept.client.socket.write('before');
    await waitFor(() => kept.server.bytes === 6, { what: 'bytes before the outage' });

    proxy.blackHole();
    assert.equal(proxy.mode, 'black-hole');
    const during = randomBytes(256 * 1024);
    kept.client.socket.write(during);
    kept.server.socket.write('down');
    // The server end of `dropped` goes away during the outage: its client must not hear of it yet.
    dropped.server.socket.resetAndDestroy();
    const late = track(connect({ host: proxy.host, port: proxy.port }));
    await new Promise<void>((resolve) => late.socket.once('connect', resolve));
    await waitFor(() => proxy.stats().held === 1, { what: 'the proxy to hold the connection made during the outage' });
    await quietFor(500); // nothing may pass, close or reach the target during the outage
    assert.equal(kept.server.bytes, 6, 'no byte reached the server');
    assert.equal(kept.client.bytes, 0, 'no byte reached the client');
    assert.equal(accepted.length, 2, 'the held connection did not reach the target');
    for (const end of [kept.client, kept.server, dropped.client, late]) assert.deepEqual([end.error, end.ended], [undefined, false], 'no end heard a FIN or RST');
    assert.equal(proxy.stats().open, 3);

    await proxy.restore();
    assert.equal(proxy.mode, 'forwarding');
    await waitFor(() => kept.server.bytes === 6 + during.length && kept.client.bytes === 4, { what: 'the bytes written during the outage' });
    assert.ok(received(kept.server).subarray(6).equals(during));
    await within(dropped.client.closed, 5_000, "the reset of the connection whose server end went away");
    assert.equal(dropped.client.error, 'ECONNRESET');
    const lateServer = await waitFor(() => accepted[2], { what: 'the held connection to reach the target' });
    late.socket.write('hello');
    await waitFor(() => lateServer.bytes === 5, { what: "the held connection's bytes" });
    assert.equal(kept.client.error ?? kept.server.error, undefined, 'the kept connection survived the outage');
  });
});

test('refuse: new connections get ECONNREFUSED while carried ones go on; restore accepts on the same port again', async () => {
  await withProxy(async (proxy) => {
    onAccept = (s) => s.on('data', (d: Buffer) => s.write(d));
    const kept = await through(proxy);
    await proxy.refuse();
    assert.equal(proxy.mode, 'refusing');
    const refused = track(connect({ host: proxy.host, port: proxy.port }));
    await within(refused.closed, 5_000, 'the refused connect to fail');
    assert.equal(refused.error, 'ECONNREFUSED');
    kept.client.socket.write('echo');
    await waitFor(() => kept.client.bytes === 4, { what: 'the carried connection to echo during the refusal' });

    await proxy.restore();
    const again = await through(proxy);
    again.client.socket.write('back');
    await waitFor(() => again.client.bytes === 4, { what: 'a new connection after restore' });
    assert.equal(proxy.stats().accepted, 2);
  });
});

test('a target that refuses shows as a reset to the client', async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as { port: number }).port;
  await new Promise((resolve) => closed.close(resolve));
  const proxy = await startBreakingProxy({ target: { host: '127.0.0.1', port } });
  try {
    const client = track(connect({ host: proxy.host, port: proxy.port }));
    await within(client.closed, 5_000, 'the client to be reset');
    assert.equal(client.error, 'ECONNRESET');
    assert.equal(proxy.stats().resets, 1);
  } finally {
    await proxy.close();
  }
});
