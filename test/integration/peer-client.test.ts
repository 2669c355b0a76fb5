/**
 * PeerClient on its own, against a real InboundServer (or, for the bytes
 * behind OPENED, a scripted TLS server) on 127.0.0.1 with the test PKI:
 * each of its four requests and what it makes of the answers.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { createServer, type TLSSocket } from 'node:tls';
import type { HostPort } from '../../src/config/endpoint.js';
import { ControlChannel } from '../../src/control/control-channel.js';
import { PeerError, VmgateError } from '../../src/errors.js';
import { encodeMessage, MessageType, PLAIN_VERSION } from '../../src/control/messages.js';
import { destroyPeer } from '../../src/handshake/client.js';
import { PeerClient } from '../../src/route/peer-client.js';
import type { Identity } from '../../src/tls/identity.js';
import { ALPN_PROTOCOL } from '../../src/tls/identity.js';
import { classifyPeerError } from '../../src/tls/tls-errors.js';
import { heldTarget, identityOf, makePeerPki, nextChannel, NO_END_RECORD, routeConfig, startInbound, USER, type HeldTarget, type InboundFixture } from '../helpers/peer-fixture.js';

let pki: { hostA: string; hostB: string; remove: () => Promise<void> };
let clientId: Identity;
let target: HeldTarget;
let b: InboundFixture;

before(async () => {
  pki = await makePeerPki('vmgate-peer-client-');
  clientId = await identityOf(pki.hostA);
  target = await heldTarget();
  b = await startInbound({ dir: pki.hostB, targetPort: target.port });
});

after(async () => {
  await b.close();
  await target.close();
  await pki.remove();
});

/** A client that offers protocol version 1 only, so a test can write raw bytes on the channel it opens (version 2 frames them: test/integration/heal-*.test.ts). */
function client(o: { password?: string; target?: string } = {}): PeerClient {
  const password = o.password ?? b.password;
  return new PeerClient(routeConfig(b.port, o.target === undefined ? {} : { target: o.target }), () => clientId, () => password, false);
}

const session = (): string => randomBytes(16).toString('hex');

test('open: OPENED connects the target, and bytes flow both ways on the returned socket', { timeout: 30_000 }, async () => {
  const n = target.sockets.length + 1;
  const { peer, remainder } = await client().open(session(), 0);
  const t = await target.connection(n);
  assert.equal(remainder.length, 0, 'the target sent nothing yet');
  const atTarget = new Promise<Buffer>((resolve) => t.once('data', resolve));
  peer.tls.write('from the source');
  assert.equal((await atTarget).toString(), 'from the source');
  const atSource = new Promise<Buffer>((resolve) => peer.tls.once('data', resolve));
  peer.tls.resume();
  t.write('from the destination');
  assert.equal((await atSource).toString(), 'from the destination');
  destroyPeer(peer);
});

test('open: data bytes that arrive in the same record right behind OPENED are returned as the remainder', { timeout: 30_000 }, async () => {
  // A scripted server: the real one writes OPENED and data separately, so whether they share a read is up to TCP.
  const file = (n: string): Promise<Buffer> => readFile(join(pki.hostB, n));
  const [ca, cert, key] = await Promise.all([file('ca-cert.pem'), file('server-cert.pem'), file('server-key.pem')]);
  const payload = Buffer.from('QEVM\x00\x00\x00\x03 migration bytes');
  const accepted: TLSSocket[] = [];
  const server = createServer({ ca, cert, key, requestCert: true, rejectUnauthorized: false, ALPNProtocols: [ALPN_PROTOCOL], minVersion: 'TLSv1.3' }, (s: TLSSocket) => {
    s.on('error', () => undefined);
    accepted.push(s);
    const ctrl = new ControlChannel(s, classifyPeerError, [MessageType.OPEN]);
    void (async () => {
      await ctrl.expect(MessageType.HELLO);
      ctrl.send({ type: MessageType.WELCOME, version: PLAIN_VERSION, mechanisms: ['PLAIN'] });
      await ctrl.expect(MessageType.AUTH);
      ctrl.send({ type: MessageType.AUTH_OK, user: USER });
      await ctrl.expect(MessageType.OPEN);
      s.write(Buffer.concat([encodeMessage({ type: MessageType.OPENED }), payload]));
    })().catch(() => s.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as { port: number }).port;
    const pc = new PeerClient(routeConfig(port), () => clientId, () => 'any');
    const { peer, remainder } = await pc.open(session(), 0);
    destroyPeer(peer);
    assert.deepEqual(remainder, payload, 'every byte behind OPENED, none parsed as a frame');
  } finally {
    for (const s of accepted) s.destroy();
    await new Promise((r) => server.close(r));
  }
});

test('abort: the server ends the named channel with the source cause and answers how many ended; report then tells that end', { timeout: 30_000 }, async () => {
  const pc = client();
  const s = session();
  const added = nextChannel(b.channels);
  const { peer } = await pc.open(s, 0);
  peer.tls.on('error', () => undefined);
  const entry = await added;
  const from = b.metrics.events.length;

  assert.equal(await pc.abort(s, [0, 7], 'cancelled', 'an operator cancelled the migration'), 1, 'one of the two channels ran there');
  const result = await entry.relay.done;
  assert.equal(result.cause, 'cancelled');

  await b.metrics.waitFor('channelEnded', (e) => e.channel.session === s, from);
  const report = await pc.report(s, 0);
  assert.equal(report.type, MessageType.REPORTED);
  assert.equal(report.code, 'cancelled');
  assert.equal(await pc.abort(session(), [0], 'cancelled', 'nothing runs in this session'), 0);
  destroyPeer(peer);
});

test('report: a channel the server has no end record of is refused with the server code, as a PeerError', { timeout: 30_000 }, async () => {
  const err = await client().report(session(), 3).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof PeerError, `expected a PeerError, got ${String(err)}`);
  assert.equal(err.code, NO_END_RECORD);
});

test('probe: resolves when the target may be opened, and surfaces the refusal code otherwise; no target is connected', { timeout: 30_000 }, async () => {
  const before = target.sockets.length;
  await client().probe();
  const err = await client({ target: 'elsewhere' }).probe().then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof PeerError, `expected a PeerError, got ${String(err)}`);
  assert.equal(err.code, 'target-unknown');
  assert.equal(target.sockets.length, before, 'a probe never connects the target');
});

test('open: a refused OPEN surfaces the server code as a PeerError (wrong password, unknown target)', { timeout: 30_000 }, async () => {
  const from = b.metrics.events.length;
  const wrong = await client({ password: 'not the password' }).open(session(), 0).then(() => undefined, (e: unknown) => e);
  assert.ok(wrong instanceof PeerError, `expected a PeerError, got ${String(wrong)}`);
  assert.equal(wrong.code, 'auth-failed');
  const unknown = await client({ target: 'elsewhere' }).open(session(), 0).then(() => undefined, (e: unknown) => e);
  assert.ok(unknown instanceof PeerError, `expected a PeerError, got ${String(unknown)}`);
  assert.equal(unknown.code, 'target-unknown');
  assert.deepEqual(b.metrics.events.slice(from).flatMap((e) => (e.kind === 'handshakeFailed' ? [e.cause] : [])), ['auth-failed', 'target-unknown'], 'the server refused for the same reasons');
});

test('open: the session ticket of the first connection makes the second one resume', { timeout: 30_000 }, async () => {
  const pc = client();
  const first = await pc.open(session(), 0);
  destroyPeer(first.peer);
  const second = await pc.open(session(), 0);
  destroyPeer(second.peer);
  assert.equal(first.peer.resumed, false, 'a new client starts with a full handshake');
  assert.equal(second.peer.resumed, true, 'the ticket of the first connection was offered and taken');
  assert.equal(second.peer.serverCert.fingerprint256, first.peer.serverCert.fingerprint256, 'a resumed session knows the certificate of the full one');
});

/** A client whose paths are `peers`, in that order. */
function pathsClient(peers: HostPort[], password = b.password): PeerClient {
  return new PeerClient(routeConfig(b.port, { peers }), () => clientId, () => password);
}

/** 127.0.0.2 at the server's port: nothing listens there (the server holds 127.0.0.1), so a dial is refused as on a network that is down. */
const deadPath = (): HostPort => ({ host: '127.0.0.2', port: b.port });
const realPath = (): HostPort => ({ host: '127.0.0.1', port: b.port });

/** A TCP listener that counts the connections it gets and closes them: a path that must not be dialled. */
async function countingListener(): Promise<{ path: HostPort; connections: () => number; close: () => Promise<void> }> {
  const sockets: Socket[] = [];
  const server = createTcpServer((s) => {
    sockets.push(s);
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    path: { host: '127.0.0.1', port: (server.address() as { port: number }).port },
    connections: () => sockets.length,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

test('paths: connect moves on to the next path when a path refuses the connection, and says which one answered', { timeout: 30_000 }, async () => {
  const pc = pathsClient([deadPath(), realPath()]);
  assert.equal(pc.paths, 2);
  assert.equal(pc.pathName(0), `127.0.0.2:${b.port}`);
  const failed: Array<[number, string]> = [];
  const { conn, path } = await pc.connect({ onPathFailed: (p, e) => failed.push([p, e.code]) });
  conn.done();
  destroyPeer(conn.peer);
  assert.equal(path, 1);
  assert.deepEqual(failed, [[0, 'peer-unreachable']]);

  const n = target.sockets.length + 1;
  const opened = await pc.open(session(), 0);
  await target.connection(n);
  destroyPeer(opened.peer);
  assert.equal(opened.path, 1, 'open takes the first path that answers');
  await pc.probe();
  await pc.abort(session(), [0], 'cancelled', 'nothing runs in this session');
});

test('paths: firstPath starts at a later path, and probePath checks one path only', { timeout: 30_000 }, async () => {
  const pc = pathsClient([realPath(), deadPath()]);
  const first = await pc.connect();
  first.conn.done();
  destroyPeer(first.conn.peer);
  assert.equal(first.path, 0);
  const later = await pc.connect({ firstPath: 1 }).then(() => undefined, (e: unknown) => e);
  assert.ok(later instanceof VmgateError, `expected a VmgateError, got ${String(later)}`);
  assert.equal(later.code, 'peer-unreachable', 'from path 1 on, only the dead path is left: no wrap-around to path 0');
  await pc.probePath(0);
  const dead = await pc.probePath(1).then(() => undefined, (e: unknown) => e);
  assert.ok(dead instanceof VmgateError);
  assert.equal(dead.code, 'peer-unreachable');
  const none = await pc.connect({ firstPath: 2 }).then(() => undefined, (e: unknown) => e);
  assert.ok(none instanceof VmgateError);
  assert.equal(none.code, 'internal', 'a path the route does not have is a caller bug');
});

test('paths: when every path fails, the error keeps the code and names each path', { timeout: 30_000 }, async () => {
  const pc = pathsClient([deadPath(), { host: '127.0.0.3', port: b.port }]);
  const err = await pc.connect().then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof VmgateError, `expected a VmgateError, got ${String(err)}`);
  assert.ok(!(err instanceof PeerError), 'no peer said anything');
  assert.equal(err.code, 'peer-unreachable');
  assert.equal(err.detail?.['paths'], 2);
});

test('paths: a refusal from the peer (PeerError) on the first path is not tried on the next one', { timeout: 30_000 }, async () => {
  const second = await countingListener();
  try {
    const from = b.metrics.events.length;
    const pc = pathsClient([realPath(), second.path], 'not the password');
    const failed: number[] = [];
    const err = await pc.connect({ onPathFailed: (p) => failed.push(p) }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof PeerError, `expected a PeerError, got ${String(err)}`);
    assert.equal(err.code, 'auth-failed');
    assert.deepEqual(failed, []);
    assert.equal(second.connections(), 0, 'the second path was dialled after the peer refused us');
    assert.deepEqual(b.metrics.events.slice(from).flatMap((e) => (e.kind === 'handshakeFailed' ? [e.cause] : [])), ['auth-failed'], 'one refusal at the peer: one attempt');
    // The same through open(): a channel refused by the peer is not retried over another network.
    const open = await pc.open(session(), 0).then(() => undefined, (e: unknown) => e);
    assert.ok(open instanceof PeerError);
    assert.equal(open.code, 'auth-failed');
    assert.equal(second.connections(), 0);
  } finally {
    await second.close();
  }
});

test('paths: a server our TLS checks refuse (wrong certificate name) is not tried on the next path', { timeout: 30_000 }, async () => {
  const second = await countingListener();
  try {
    const pc = new PeerClient(routeConfig(b.port, { peers: [realPath(), second.path], peerName: 'host-c' }), () => clientId, () => b.password);
    const err = await pc.connect().then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof VmgateError, `expected a VmgateError, got ${String(err)}`);
    assert.equal(err.code, 'tls-name-mismatch');
    assert.equal(second.connections(), 0);
  } finally {
    await second.close();
  }
});
