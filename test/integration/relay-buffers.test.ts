/**
 * The data path's buffers on real loopback sockets: the high-water marks the
 * sockets are made with, and the reused read buffers of a target connection
 * (a buffer must never be refilled while its bytes are still being written).
 */
import assert from 'node:assert/strict';
import { createHash, randomFillSync } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { connectLocal, listenLocal } from '../../src/gateway/local-socket.js';
import { READ_BUFFER_BYTES, READ_BUFFERS_IN_FLIGHT, RELAY_HIGH_WATER_MARK } from '../../src/relay/buffer-sizes.js';
import { ReusedBufferReader } from '../../src/relay/reused-buffer-reader.js';

const MiB = 1 << 20;
let payload: Buffer;
let server: Server;
let port: number;

before(async () => {
  payload = randomFillSync(Buffer.allocUnsafe(48 * MiB));
  // A target that sends the payload to whoever connects, then half-closes.
  server = createServer({ allowHalfOpen: true }, (s: Socket) => {
    s.on('error', () => undefined);
    s.end(payload);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});
after(async () => {
  await new Promise((resolve) => server.close(resolve));
});

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('target-connection-high-water-marks: a target connection buffers up to RELAY_HIGH_WATER_MARK each way', async () => {
  const { socket } = await connectLocal({ kind: 'tcp', host: '127.0.0.1', port }, 5_000);
  try {
    assert.equal(socket.writableHighWaterMark, RELAY_HIGH_WATER_MARK);
    assert.equal(socket.readableHighWaterMark, RELAY_HIGH_WATER_MARK);
  } finally {
    socket.destroy();
  }
});

test('route-listener-high-water-marks: a connection accepted from QEMU buffers up to RELAY_HIGH_WATER_MARK each way', async () => {
  let accepted: (s: Socket) => void = () => undefined;
  const got = new Promise<Socket>((resolve) => (accepted = resolve));
  const listener = await listenLocal({ kind: 'tcp', host: '127.0.0.1', port: 0 }, (s) => accepted(s));
  const client = connect({ host: '127.0.0.1', port: (listener.address() as { port: number }).port });
  try {
    const s = await got;
    assert.equal(s.writableHighWaterMark, RELAY_HIGH_WATER_MARK);
    assert.equal(s.readableHighWaterMark, RELAY_HIGH_WATER_MARK);
    s.destroy();
  } finally {
    client.destroy();
    await new Promise((resolve) => listener.close(resolve));
  }
});

test('reused-read-buffers-bounded-and-intact: a slow writer gets every byte, buffers are never refilled while out', async () => {
  const { socket, reader } = await connectLocal({ kind: 'tcp', host: '127.0.0.1', port }, 5_000);
  const out = new Set<ArrayBufferLike>();
  const seen = new Set<ArrayBufferLike>();
  const hash = createHash('sha256');
  let received = 0;
  let refilledWhileOut = 0;
  const done = new Promise<void>((resolve, reject) => {
    socket.once('end', resolve);
    socket.once('error', reject);
  });
  // The "writer" finishes each chunk a few milliseconds later and hashes it
  // only then: had the reader refilled the buffer meanwhile, the hash differs.
  const queue: Buffer[] = [];
  const finishOne = (): void => {
    const chunk = queue.shift() as Buffer;
    hash.update(chunk);
    out.delete(chunk.buffer);
    reader.released();
  };
  reader.attach(
    (chunk) => {
      if (out.has(chunk.buffer)) refilledWhileOut += 1;
      out.add(chunk.buffer);
      seen.add(chunk.buffer);
      received += chunk.length;
      queue.push(chunk);
      setTimeout(finishOne, 2);
      return reader.hasRoom();
    },
    () => socket.resume(),
  );
  socket.resume();
  await done;
  while (queue.length > 0) await new Promise((r) => setTimeout(r, 5));
  socket.destroy();
  assert.equal(received, payload.length);
  assert.equal(hash.digest('hex'), sha256(payload), 'bytes changed between read and write');
  assert.equal(refilledWhileOut, 0, 'a buffer was refilled while its bytes were still out');
  assert.ok(seen.size <= READ_BUFFERS_IN_FLIGHT + 1, `${seen.size} read buffers used; at most ${READ_BUFFERS_IN_FLIGHT + 1} expected`);
  assert.ok(received / (seen.size * READ_BUFFER_BYTES) > 4, 'the buffers were not reused');
});

test('reused-read-buffers-stop-reading-when-all-out: no read happens while every buffer is with the writer', async () => {
  const reader = new ReusedBufferReader(64 * 1024, 2);
  const chunks: Buffer[] = [];
  const socket = connect({ host: '127.0.0.1', port, onread: reader.onread, allowHalfOpen: true });
  reader.attach(
    (chunk) => {
      chunks.push(chunk);
      return reader.hasRoom();
    },
    () => socket.resume(),
  );
  await new Promise((r) => setTimeout(r, 300));
  // Nothing released: exactly two reads, then reading stopped although 48 MiB wait.
  assert.equal(chunks.length, 2);
  reader.released();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(chunks.length, 3, 'one buffer back, one more read');
  socket.destroy();
});
