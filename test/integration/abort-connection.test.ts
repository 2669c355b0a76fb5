/**
 * abortConnection, the one way the gateway ends a leg abnormally, on real
 * sockets (loopback TCP, a unix socket, TLS 1.3): the other end must see an
 * error where the transport can carry one, and no state of the socket may
 * turn the abort into a crash, a leaked descriptor or a silent hang.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { TLSSocket, connect as tlsConnect } from 'node:tls';
import { createSelfSignedHost } from '../../src/pki/self-signed.js';
import { abortConnection } from '../../src/relay/abort-connection.js';

let dir: string;
let cert: Buffer;
let key: Buffer;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmgate-abort-'));
  const host = await createSelfSignedHost({ outDir: join(dir, 'host'), commonName: 'localhost', keyBits: 2048, allowWeakKeyForTests: true });
  cert = await readFile(host.certPath);
  key = await readFile(host.keyPath);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A connected pair: `near` is the side that aborts, `far` the process at the other end. */
async function socketPair(path?: string): Promise<{ near: Socket; far: Socket }> {
  const server = createServer({ allowHalfOpen: true });
  await new Promise<void>((resolve) => (path === undefined ? server.listen(0, '127.0.0.1', resolve) : server.listen(path, resolve)));
  const address = server.address();
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const near = path === undefined && typeof address === 'object' && address !== null
    ? connect({ port: address.port, host: '127.0.0.1', allowHalfOpen: true })
    : connect({ path: path ?? '', allowHalfOpen: true });
  await new Promise((resolve) => near.once('connect', resolve));
  const far = await accepted;
  server.close();
  return { near, far };
}

/** How the far end's reading ends: an error code, or 'end' for a clean end of stream. */
function readingEnds(far: Socket): Promise<string> {
  return new Promise((resolve) => {
    far.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    far.on('end', () => resolve('end'));
    far.resume();
  });
}

function closed(s: Socket): Promise<void> {
  return s.closed ? Promise.resolve() : new Promise((resolve) => s.once('close', () => resolve()));
}

test('tcp-reset: the far end of an aborted TCP connection sees ECONNRESET', async () => {
  const { near, far } = await socketPair();
  const ends = readingEnds(far);
  abortConnection(near);
  assert.equal(await ends, 'ECONNRESET');
  await closed(near);
});

test('tcp-abort-while-fin-in-flight: closed without an error event or a leaked descriptor', async () => {
  const { near, far } = await socketPair();
  const errors: string[] = [];
  near.on('error', (e: NodeJS.ErrnoException) => errors.push(`${e.code} ${e.syscall}`));
  const ends = readingEnds(far);
  near.end();
  // Two ticks on, Node has asked libuv for the shutdown and libuv has not done it yet:
  // a bare resetAndDestroy() fails here with EINVAL and leaks the handle.
  await new Promise<void>((resolve) => process.nextTick(() => process.nextTick(resolve)));
  assert.ok(near.writableEnded && !near.writableFinished, 'the FIN is still in flight');
  abortConnection(near);
  await closed(near);
  assert.deepEqual(errors, []);
  assert.equal(await ends, 'end', 'the direction that was ended keeps its clean end');
  // The other direction is gone: the far end's writes fail.
  const writeFails = new Promise<string>((resolve) => far.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error')));
  const pump = setInterval(() => far.write(Buffer.alloc(65536)), 10);
  try {
    const code = await writeFails;
    assert.ok(code === 'EPIPE' || code === 'ECONNRESET', `the write failed with ${code}`);
  } finally {
    clearInterval(pump);
  }
});

test('unix-socket: no reset exists; the connection is closed, nothing is thrown', async () => {
  const { near, far } = await socketPair(join(dir, 'leg.sock'));
  const ends = readingEnds(far);
  assert.doesNotThrow(() => abortConnection(near));
  await closed(near);
  assert.equal(await ends, 'end');
});

test('unix-socket-with-unread-data: the far end sees ECONNRESET', async () => {
  const { near, far } = await socketPair(join(dir, 'leg2.sock'));
  // More than Node reads ahead on its own (16 KiB): the rest stays unread in the kernel.
  await new Promise((resolve) => far.write(Buffer.alloc(128 * 1024, 1), resolve));
  const ends = readingEnds(far);
  abortConnection(near);
  assert.equal(await ends, 'ECONNRESET');
});

/** TLS 1.3 over `near`/`far`, as the gateways use it: the TLS client is built on a connected TCP socket. */
async function tlsPair(): Promise<{ raw: Socket; tls: TLSSocket; far: TLSSocket }> {
  const { near, far: farRaw } = await socketPair();
  const far = new TLSSocket(farRaw, { isServer: true, cert, key, minVersion: 'TLSv1.3' });
  const tls = tlsConnect({ socket: near, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
  await new Promise((resolve) => tls.once('secureConnect', resolve));
  return { raw: near, tls, far };
}

test('tls-right-after-handshake: the TCP socket under TLS is reset; the far end sees ECONNRESET', async () => {
  const { raw, tls, far } = await tlsPair();
  const ends = readingEnds(far);
  // In the same tick as secureConnect: destroying the TLS socket right after the reset crashed Node here.
  abortConnection(raw, tls);
  assert.equal(await ends, 'ECONNRESET');
  await Promise.all([closed(raw), closed(tls)]);
});

test('tls-while-close-notify-in-flight: both sockets close without an error event', async () => {
  const { raw, tls, far } = await tlsPair();
  far.on('error', () => undefined);
  const errors: string[] = [];
  raw.on('error', (e: NodeJS.ErrnoException) => errors.push(`raw ${e.code}`));
  tls.on('error', (e: NodeJS.ErrnoException) => errors.push(`tls ${e.code}`));
  tls.end();
  await new Promise<void>((resolve) => process.nextTick(() => process.nextTick(resolve)));
  assert.ok(tls.writableEnded && !tls.writableFinished, 'the close_notify and FIN are still in flight');
  abortConnection(raw, tls);
  await Promise.all([closed(raw), closed(tls)]);
  assert.deepEqual(errors, []);
});
