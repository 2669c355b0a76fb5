/**
 * The data path's buffers on real loopback sockets, plain and TLS: the
 * high-water marks the sockets are made with; reading into reused buffers
 * (a byte must never be overwritten while it is still being written, and
 * reading must stop while too much is out); adopting that reading on the
 * sockets Node creates for us, which relies on Node internals, so these
 * tests are what notices a Node release that breaks it; and the relay
 * carrying both directions intact with and without it.
 */
import assert from 'node:assert/strict';
import { createHash, randomFillSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect as tlsConnect, createServer as createTlsServer, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { connectLocal, listenLocal } from '../../src/local/local-socket.js';
import { READ_BUFFER_SIZES, RELAY_HIGH_WATER_MARK } from '../../src/relay/buffer-sizes.js';
import { Relay } from '../../src/relay/relay.js';
import { ReusedBufferReader, type ReadBufferSizes } from '../../src/relay/reused-buffer-reader.js';
import { makeTestPki } from '../helpers/pki.js';
import { quietFor, waitFor } from '../helpers/wait-for.js';

const MiB = 1 << 20;
const KiB = 1 << 10;
let payload: Buffer;
let root: string;
let tlsFiles: { ca: Buffer; serverCert: Buffer; serverKey: Buffer; clientCert: Buffer; clientKey: Buffer };

before(async () => {
  payload = randomFillSync(Buffer.allocUnsafe(24 * MiB));
  root = await mkdtemp(join(tmpdir(), 'vmgate-relay-buffers-'));
  const pki = await makeTestPki(root);
  const f = (dir: string, name: string): Promise<Buffer> => readFile(join(dir, name));
  tlsFiles = {
    ca: await f(pki.hostA, 'ca-cert.pem'),
    serverCert: await f(pki.hostB, 'server-cert.pem'),
    serverKey: await f(pki.hostB, 'server-key.pem'),
    clientCert: await f(pki.hostA, 'client-cert.pem'),
    clientKey: await f(pki.hostA, 'client-key.pem'),
  };
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const portOf = (s: Server): number => (s.address() as { port: number }).port;
const closeServer = (s: Server): Promise<void> => new Promise((resolve) => s.close(() => resolve()));

/** A loopback TCP pair: [connecting side, accepted side]; the accepted side arrives paused, as a route's does. */
async function plainPair(): Promise<[Socket, Socket, Server]> {
  let accepted: (s: Socket) => void = () => undefined;
  const got = new Promise<Socket>((resolve) => (accepted = resolve));
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => accepted(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = connect({ host: '127.0.0.1', port: portOf(server), allowHalfOpen: true });
  return [client, await got, server];
}

/** A mutual TLS 1.3 pair: [client, the server's TLS socket made by tls.Server, the client's raw socket, server]. */
async function tlsPair(): Promise<[TLSSocket, TLSSocket, Server]> {
  let accepted: (s: TLSSocket) => void = () => undefined;
  const got = new Promise<TLSSocket>((resolve) => (accepted = resolve));
  const server = createTlsServer(
    { ca: tlsFiles.ca, cert: tlsFiles.serverCert, key: tlsFiles.serverKey, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3', allowHalfOpen: true },
    (s) => {
      s.pause();
      accepted(s);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  // tls.connect hands allowHalfOpen to its socket; @types/node 20 does not list it.
  const options: ConnectionOptions & { allowHalfOpen: boolean } = { host: '127.0.0.1', port: portOf(server), servername: 'host-b', ca: tlsFiles.ca, cert: tlsFiles.clientCert, key: tlsFiles.clientKey, allowHalfOpen: true };
  const client = tlsConnect(options);
  await new Promise<void>((resolve, reject) => {
    client.once('secureConnect', resolve);
    client.once('error', reject);
  });
  return [client, await got, server];
}

/**
 * Reads `socket` to its end through `reader`, with a writer that finishes
 * each chunk `delayMs` later and only then hashes it: had the reader reused
 * the chunk's bytes meanwhile, the hash would differ.
 */
async function drainSlowly(socket: Socket, reader: ReusedBufferReader, sizes: ReadBufferSizes, delayMs: number, start: () => void) {
  const slabs = new Set<ArrayBufferLike>();
  const hash = createHash('sha256');
  const queue: Buffer[] = [];
  let received = 0;
  let chunks = 0;
  let maxOut = 0;
  let out = 0;
  const ended = new Promise<void>((resolve, reject) => {
    socket.once('end', resolve);
    socket.once('error', reject);
  });
  const finishOne = (): void => {
    const chunk = queue.shift() as Buffer;
    hash.update(chunk);
    out -= chunk.length;
    reader.released();
  };
  reader.attach(
    (chunk) => {
      slabs.add(chunk.buffer);
      assert.equal(chunk.buffer.byteLength, sizes.bufferBytes, 'a chunk that is not in one of the reader\'s buffers');
      received += chunk.length;
      chunks += 1;
      out += chunk.length;
      maxOut = Math.max(maxOut, out);
      queue.push(chunk);
      setTimeout(finishOne, delayMs); // the slow writer: part of the scenario, not a wait
      return reader.hasRoom();
    },
    () => socket.resume(),
  );
  start();
  await ended;
  await waitFor(() => queue.length === 0, { what: 'the slow writer to finish every chunk read' });
  return { received, chunks, slabs: slabs.size, maxOut, digest: hash.digest('hex') };
}

test('target-connection-high-water-marks: a target connection buffers up to RELAY_HIGH_WATER_MARK each way', async () => {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const socket = await connectLocal({ kind: 'tcp', host: '127.0.0.1', port: portOf(server) }, 5_000);
  try {
    assert.equal(socket.writableHighWaterMark, RELAY_HIGH_WATER_MARK);
    assert.equal(socket.readableHighWaterMark, RELAY_HIGH_WATER_MARK);
  } finally {
    socket.destroy();
    await closeServer(server);
  }
});

test('route-listener-high-water-marks: a connection accepted from QEMU buffers up to RELAY_HIGH_WATER_MARK each way', async () => {
  let accepted: (s: Socket) => void = () => undefined;
  const got = new Promise<Socket>((resolve) => (accepted = resolve));
  const listener = await listenLocal({ kind: 'tcp', host: '127.0.0.1', port: 0 }, (s) => accepted(s));
  const client = connect({ host: '127.0.0.1', port: portOf(listener) });
  try {
    const s = await got;
    assert.equal(s.writableHighWaterMark, RELAY_HIGH_WATER_MARK);
    assert.equal(s.readableHighWaterMark, RELAY_HIGH_WATER_MARK);
    s.destroy();
  } finally {
    client.destroy();
    await closeServer(listener);
  }
});

test('adopt-accepted-plain-socket: an accepted socket reads into the reused buffers, every byte intact, never overwritten while out', async () => {
  const [client, accepted, server] = await plainPair();
  const reader = new ReusedBufferReader(READ_BUFFER_SIZES);
  try {
    const adopted = reader.adopt(accepted);
    // This is the pin: on the Node we ship for, an accepted socket must take
    // reused buffers. If a Node upgrade breaks it, fix adopt-user-buffer.ts.
    assert.equal(adopted, true, `Node ${process.version}: an accepted socket could not be switched to onread reading (src/relay/adopt-user-buffer.ts)`);
    client.end(payload);
    const r = await drainSlowly(accepted, reader, READ_BUFFER_SIZES, 2, () => accepted.resume());
    assert.equal(r.received, payload.length);
    assert.equal(r.digest, sha256(payload), 'bytes changed between read and write');
    assert.ok(r.maxOut <= READ_BUFFER_SIZES.maxOutstandingBytes + READ_BUFFER_SIZES.bufferBytes, `${r.maxOut} bytes out at once`);
    assert.ok(r.slabs < payload.length / READ_BUFFER_SIZES.bufferBytes, `${r.slabs} buffers for ${payload.length} bytes: not reused`);
    assert.ok(r.received / r.chunks > 64 * KiB, `reads averaged ${Math.round(r.received / r.chunks)} bytes; reused buffers take more than Node's 64 KiB`);
  } finally {
    client.destroy();
    accepted.destroy();
    await closeServer(server);
  }
});

test('adopt-accepted-tls-socket: a TLS socket made by tls.Server reads decrypted records into the reused buffers', async () => {
  const [client, accepted, server] = await tlsPair();
  const reader = new ReusedBufferReader(READ_BUFFER_SIZES);
  try {
    assert.equal(reader.adopt(accepted), true, `Node ${process.version}: a TLS socket from tls.Server could not be switched to onread reading (src/relay/adopt-user-buffer.ts)`);
    client.end(payload);
    const r = await drainSlowly(accepted, reader, READ_BUFFER_SIZES, 2, () => accepted.resume());
    assert.equal(r.received, payload.length);
    assert.equal(r.digest, sha256(payload), 'bytes changed between read and write');
    // Records keep arriving after reading stops (they were decrypted already), but only a TCP read's worth.
    assert.ok(r.maxOut <= READ_BUFFER_SIZES.maxOutstandingBytes + 2 * READ_BUFFER_SIZES.bufferBytes, `${r.maxOut} bytes out at once`);
    assert.ok(r.received / r.chunks <= 16 * KiB, 'TLS delivers at most one 16 KiB record per read');
    assert.ok(r.slabs < payload.length / READ_BUFFER_SIZES.bufferBytes, `${r.slabs} buffers for ${payload.length} bytes: not reused`);
  } finally {
    client.destroy();
    accepted.destroy();
    await closeServer(server);
  }
});

test('adopt-refuses-queued-data: a socket with bytes already queued is left alone', async () => {
  const [client, accepted, server] = await plainPair();
  try {
    client.write('queued');
    accepted.resume();
    accepted.pause();
    await waitFor(() => accepted.readableLength > 0, { what: 'bytes queued in the paused socket (the test needs them)' });
    assert.equal(new ReusedBufferReader(READ_BUFFER_SIZES).adopt(accepted), false);
    assert.equal(String(accepted.read()), 'queued', 'the queued bytes are still there');
  } finally {
    client.destroy();
    accepted.destroy();
    await closeServer(server);
  }
});

test('reused-read-buffers-stop-reading-when-full: nothing more is read while maxOutstandingBytes are out', async () => {
  const sizes = { bufferBytes: 64 * KiB, minReadBytes: 16 * KiB, maxOutstandingBytes: 128 * KiB };
  const [client, accepted, server] = await plainPair();
  const reader = new ReusedBufferReader(sizes);
  const chunks: Buffer[] = [];
  try {
    assert.equal(reader.adopt(accepted), true);
    reader.attach(
      (chunk) => {
        chunks.push(chunk);
        return reader.hasRoom();
      },
      () => accepted.resume(),
    );
    client.write(payload);
    accepted.resume();
    const bytesRead = (): number => chunks.reduce((n, c) => n + c.length, 0);
    await waitFor(() => bytesRead() >= sizes.maxOutstandingBytes, { what: 'the reader to fill maxOutstandingBytes' });
    // Nothing released: reading must stay stopped at the limit although
    // megabytes wait. Give it 300 ms to (wrongly) read on.
    await quietFor(300);
    const held = bytesRead();
    assert.ok(held >= sizes.maxOutstandingBytes && held < sizes.maxOutstandingBytes + sizes.bufferBytes, `${held} bytes read with none written`);
    const before = chunks.length;
    for (let i = 0; i < before; i++) reader.released();
    await waitFor(() => chunks.length > before, { what: 'reading to resume once bytes came back' });
  } finally {
    client.destroy();
    accepted.destroy();
    await closeServer(server);
  }
});

for (const dataEvents of [false, true]) {
  const name = dataEvents ? "relay-both-ways-data-events: with 'data' events (a Node where adoption fails)" : 'relay-both-ways-reused-buffers: with reused buffers on both legs';
  test(`${name}, 24 MiB each way at once arrive intact and the relay ends ok`, async () => {
    const [qemu, local, plainServer] = await plainPair();
    const [peerClient, peer, tlsServer] = await tlsPair();
    try {
      const relay = new Relay(local, peer, peer, { localCause: 'local-closed', closeGraceMs: 5_000, dataEvents });
      const collect = (s: Socket): Promise<Buffer> =>
        new Promise((resolve, reject) => {
          const parts: Buffer[] = [];
          s.on('data', (c: Buffer) => parts.push(c));
          s.once('end', () => resolve(Buffer.concat(parts)));
          s.once('error', reject);
        });
      const atPeer = collect(peerClient);
      const atQemu = collect(qemu);
      const reversed = Buffer.from(payload).reverse();
      qemu.end(payload);
      peerClient.end(reversed);
      const [gotPeer, gotQemu] = await Promise.all([atPeer, atQemu]);
      assert.equal(sha256(gotPeer), sha256(payload), 'QEMU to peer');
      assert.equal(sha256(gotQemu), sha256(reversed), 'peer to QEMU');
      const result = await relay.done;
      assert.equal(result.cause, 'ok', result.message);
      assert.equal(result.bytesOut, payload.length);
      assert.equal(result.bytesIn, payload.length);
    } finally {
      for (const s of [qemu, local, peerClient, peer]) s.destroy();
      await Promise.all([closeServer(plainServer), closeServer(tlsServer)]);
    }
  });
}
