/**
 * Hostile input against a live gateway's TLS port (SECURITY.md, "hostile
 * input"). One pair of gateways serves every case, and one migration-like
 * transfer runs through it on its own channel the whole time. For each case:
 * - the server logs `channel-refused` with the case's stable code;
 * - the client is told the code where the protocol can carry it (an ERROR
 *   frame once TLS is up, a TLS alert during the handshake), and otherwise
 *   simply sees the connection closed;
 * - no connection is ever made to a target (listeners that count accepts);
 * and at the end the concurrent transfer arrives intact in both directions.
 *
 * The refusals gateway-refusals.test.ts shows through a route (no
 * certificate, other CA, revoked, wrong password, unknown user, forbidden
 * target) appear here once more as one row each, for the concurrent-transfer
 * guarantee only.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { pacedSender } from '../helpers/paced-sender.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ControlChannel } from '../../src/control/control-channel.js';
import { encodeFrame } from '../../src/control/frame-codec.js';
import { MessageType } from '../../src/control/messages.js';
import { startLocalPair, type LocalPair } from '../../src/demo/local-pair.js';
import { connectLoopback, receiveAll, startSink, type PayloadSink } from '../../src/demo/payload.js';
import { type VmgateError } from '../../src/errors.js';
import { classifyPeerError } from '../../src/tls/tls-errors.js';
import { controlProbe, dribble, logIn, PeerError, rawProbe, tlsDial, type Conversation } from '../helpers/hostile-client.js';
import { captureLogs, type CapturedLogs } from '../helpers/log-capture.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { requireTool } from '../helpers/require-tool.js';

const PASSWORD = 'hostile-test-password-9f3a';
const USER = 'migrate';
/** Short deadlines so the slow cases end quickly; both are well above what an honest set-up takes. */
const HANDSHAKE_TIMEOUT_MS = 3_000;
const CHANNEL_ORDER_TIMEOUT_MS = 1_500;
/** Small, so that a test can fill it with idle authenticated channels. */
const MAX_CHANNELS = 4;

/** A target listener that only counts: no hostile case may ever reach it. */
interface AcceptCounter {
  server: Server;
  port: number;
  accepted: number;
  sockets: Socket[];
}

async function acceptCounter(): Promise<AcceptCounter> {
  const t: AcceptCounter = { server: createServer(), port: 0, accepted: 0, sockets: [] };
  t.server.on('connection', (s: Socket) => {
    t.accepted += 1;
    t.sockets.push(s);
    s.on('error', () => undefined);
    s.resume();
  });
  await new Promise<void>((r) => t.server.listen(0, '127.0.0.1', r));
  t.port = (t.server.address() as { port: number }).port;
  return t;
}

/** What the client learned: `frame:<code>` (ERROR frame), `alert:<code>` (TLS alert), or `closed`. */
function seen(e: VmgateError): string {
  if (e instanceof PeerError) return `frame:${e.code}`;
  if (e.code === 'peer-closed') return 'closed';
  return `alert:${e.code}`;
}

/** A valid frame header announcing `length` bytes of type `type`. */
function header(length: number, type: number): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(length, 0);
  h.writeUInt8(type, 4);
  return h;
}

/** An SSLv3 ClientHello (record and client_version 3.0, RSA/AES-CBC suites), written by hand: OpenSSL 3 clients cannot send one. */
function sslv3ClientHello(): Buffer {
  const body = Buffer.concat([
    Buffer.from([0x03, 0x00]), // client_version SSL 3.0
    randomBytes(32),
    Buffer.from([0x00]), // no session id
    Buffer.from([0x00, 0x04, 0x00, 0x2f, 0x00, 0x0a]), // TLS_RSA_WITH_AES_128_CBC_SHA, TLS_RSA_WITH_3DES_EDE_CBC_SHA
    Buffer.from([0x01, 0x00]), // null compression
  ]);
  const hs = Buffer.concat([Buffer.from([0x01, 0x00, 0x00, body.length]), body]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x00, 0x00, hs.length]), hs]);
}

describe('hostile peers against a live gateway', { timeout: 180_000 }, () => {
  let dir: string;
  let pki: TestPki;
  let logs: CapturedLogs;
  let pair: LocalPair;
  let sink: PayloadSink;
  let probe: AcceptCounter;
  let replay: AcceptCounter;
  let idle: AcceptCounter;
  let port: number;
  let transfer: { sender: ReturnType<typeof pacedSender>; returned: Promise<{ digest: string; bytes: number }> };

  before(async () => {
    requireTool('openssl', 'openssl');
    dir = await mkdtemp(join(tmpdir(), 'vmgate-hostile-'));
    pki = await makeTestPki(join(dir, 'pki'));
    logs = captureLogs('info');
    sink = await startSink(16 * 1024 * 1024);
    probe = await acceptCounter();
    replay = await acceptCounter();
    idle = await acceptCounter();
    pair = await startLocalPair({
      dir: join(dir, 'pair'),
      targetConnect: `tcp:127.0.0.1:${sink.port}`,
      log: logs.log,
      pkiA: pki.hostA,
      pkiB: pki.hostB,
      user: USER,
      password: PASSWORD,
      tweakB: (c) => {
        const server = c['server'] as Record<string, unknown> & { targets: Record<string, unknown> };
        server['handshakeTimeoutMs'] = HANDSHAKE_TIMEOUT_MS;
        server['channelOrderTimeoutMs'] = CHANNEL_ORDER_TIMEOUT_MS;
        server['maxChannels'] = MAX_CHANNELS;
        const allow = [{ peer: 'host-a', user: USER }];
        server.targets['probe'] = { connect: `tcp:127.0.0.1:${probe.port}`, allow };
        server.targets['replay'] = { connect: `tcp:127.0.0.1:${replay.port}`, allow };
        server.targets['idle'] = { connect: `tcp:127.0.0.1:${idle.port}`, allow };
        server.targets['guarded'] = { connect: `tcp:127.0.0.1:${probe.port}`, allow: [{ peer: 'host-z', user: USER }] };
      },
    });
    port = pair.b.serverAddress()?.port ?? 0;
    const client = await connectLoopback(pair.routeAddress.port);
    transfer = { sender: pacedSender(client, 64 * 1024), returned: receiveAll(client) };
    await logs.waitFor({ gateway: 'host-b', event: 'channel-open', target: 'incoming' });
  });

  after(async () => {
    await pair?.stop();
    for (const t of [probe, replay, idle]) {
      for (const s of t?.sockets ?? []) s.destroy();
      await new Promise((r) => t?.server.close(r));
    }
    await sink?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  interface Case {
    name: string;
    /** The code the server logs. */
    server: string;
    /** What the client learns (see `seen`). */
    client: string;
    run: () => Promise<string>;
  }

  /** A raw TCP client; the server can only close (there is no TLS to carry a code). */
  const raw = (act: (s: Socket) => void | Promise<void>) => async (): Promise<string> => {
    const r = await rawProbe(port, act);
    assert.ok(r.closedByServer, 'the server must close the connection');
    return r.received.length === 0 ? 'closed' : `bytes:${r.received.subarray(0, 1).toString('hex')}`;
  };
  /** A TLS client with `dir`'s certificate doing `act` in the control phase. */
  const ctl = (act: (c: Conversation) => void | Promise<void>, dirOf: () => string = () => pki.hostA) => async (): Promise<string> =>
    seen(await controlProbe({ port, dir: dirOf() }, act));
  const authed = (act: (c: Conversation) => void | Promise<void>) => ctl(async (c) => {
    await logIn(c, USER, PASSWORD);
    await act(c);
  });
  const sendAuth = (response: Buffer) => ctl(async (c) => {
    c.ctrl.send({ type: MessageType.HELLO, versions: [1] });
    await c.ctrl.expect(MessageType.WELCOME);
    c.tls.write(encodeFrame(MessageType.AUTH, { mechanism: 'PLAIN', response: response.toString('base64') }));
  });
  const openFrame = (target: string, channel = 0, session = randomBytes(16).toString('hex')): Buffer =>
    encodeFrame(MessageType.OPEN, { target, session, channel });

  const cases: Case[] = [
    // --- before TLS
    { name: 'plain-tcp', server: 'tls-protocol', client: 'closed', run: raw((s) => void s.write('hello gateway, here is some plain text\r\n\r\n')) },
    { name: 'http-request', server: 'tls-protocol', client: 'closed', run: raw((s) => void s.write('GET / HTTP/1.1\r\nHost: host-b\r\n\r\n')) },
    // An SSLv3 hello gets a TLS alert record (0x15) in answer.
    { name: 'sslv3-client-hello', server: 'tls-protocol', client: 'bytes:15', run: raw((s) => void s.write(sslv3ClientHello())) },
    {
      name: 'tls12-only-node-client',
      server: 'tls-protocol',
      client: 'alert:tls-protocol',
      run: async () => {
        try {
          (await tlsDial({ port, dir: pki.hostA, tls: { maxVersion: 'TLSv1.2', minVersion: 'TLSv1.2' } })).destroy();
        } catch (e: unknown) {
          return `alert:${classifyPeerError(e).code}`;
        }
        return 'handshake completed';
      },
    },
    {
      name: 'tls12-only-openssl-s-client',
      server: 'tls-protocol',
      client: 'alert:tls-protocol',
      run: async () => {
        // Async: the gateway runs in this process, so a blocking spawn would stall it.
        const r = await new Promise<{ failed: boolean; out: string }>((resolve) => {
          const args = ['s_client', '-tls1_2', '-connect', `127.0.0.1:${port}`, '-cert', join(pki.hostA, 'client-cert.pem'), '-key', join(pki.hostA, 'client-key.pem')];
          const child = execFile('openssl', args, { timeout: 15_000 }, (error, stdout, stderr) => resolve({ failed: error !== null, out: stdout + stderr }));
          child.stdin?.end();
        });
        assert.ok(r.failed, 'openssl s_client -tls1_2 must fail');
        return /alert protocol version/.test(r.out) ? 'alert:tls-protocol' : `openssl said: ${r.out}`;
      },
    },
    // A ClientHello dribbled one byte per second: cut by the TLS handshake deadline.
    { name: 'slowloris-tls-handshake', server: 'tls-timeout', client: 'closed', run: raw((s) => dribble(s, sslv3ClientHello())) },
    { name: 'idle-tcp', server: 'tls-timeout', client: 'closed', run: raw(() => undefined) },
    // --- certificates not yet tried against a live gateway elsewhere
    { name: 'self-signed-client-cert', server: 'tls-verify-failed', client: 'frame:tls-verify-failed', run: ctl(() => undefined, () => pki.selfSigned) },
    { name: 'expired-client-cert', server: 'tls-cert-expired', client: 'frame:tls-cert-expired', run: ctl(() => undefined, () => pki.expired) },
    { name: 'server-only-cert-as-client', server: 'tls-bad-usage', client: 'frame:tls-bad-usage', run: ctl(() => undefined, () => pki.serverOnly) },
    { name: 'no-client-cert', server: 'tls-no-client-cert', client: 'frame:tls-no-client-cert', run: async () => seen(await controlProbe({ port }, () => undefined)) },
    { name: 'other-ca-client-cert', server: 'tls-verify-failed', client: 'frame:tls-verify-failed', run: ctl(() => undefined, () => pki.otherCaHost) },
    { name: 'revoked-client-cert', server: 'tls-cert-revoked', client: 'frame:tls-cert-revoked', run: ctl(() => undefined, () => pki.revoked) },
    // --- after TLS, before login
    { name: 'garbage-ascii', server: 'frame-oversize', client: 'frame:frame-oversize', run: ctl((c) => void c.tls.write('lorem ipsum dolor sit amet')) },
    { name: 'garbage-body-not-utf8', server: 'frame-malformed', client: 'frame:frame-malformed', run: ctl((c) => void c.tls.write(Buffer.concat([header(5, 1), Buffer.from([0xff, 0xfe, 0xfd, 0xfc])]))) },
    { name: 'frame-over-limit', server: 'frame-oversize', client: 'frame:frame-oversize', run: ctl((c) => void c.tls.write(Buffer.concat([header(8193, 1), Buffer.alloc(8192, 0x20)]))) },
    { name: 'slowloris-control-phase', server: 'handshake-timeout', client: 'frame:handshake-timeout', run: ctl((c) => void dribble(c.tls, encodeFrame(MessageType.HELLO, { versions: [1] }))) },
    { name: 'idle-after-tls', server: 'handshake-timeout', client: 'frame:handshake-timeout', run: ctl(() => undefined) },
    { name: 'unknown-message-type', server: 'protocol-violation', client: 'frame:protocol-violation', run: ctl((c) => void c.tls.write(encodeFrame(42, {}))) },
    { name: 'open-before-hello', server: 'protocol-violation', client: 'frame:protocol-violation', run: ctl((c) => void c.tls.write(openFrame('probe'))) },
    { name: 'unsupported-version', server: 'version-unsupported', client: 'frame:version-unsupported', run: ctl((c) => void c.tls.write(encodeFrame(MessageType.HELLO, { versions: [9] }))) },
    // --- SASL
    { name: 'sasl-nul-injection', server: 'auth-failed', client: 'frame:auth-failed', run: sendAuth(Buffer.from(`\0${USER}\0${PASSWORD}\0admin`)) },
    { name: 'sasl-authzid-other-user', server: 'auth-failed', client: 'frame:auth-failed', run: sendAuth(Buffer.from(`admin\0${USER}\0${PASSWORD}`)) },
    { name: 'sasl-user-256-bytes', server: 'auth-failed', client: 'frame:auth-failed', run: sendAuth(Buffer.from(`\0${'u'.repeat(256)}\0${PASSWORD}`)) },
    { name: 'sasl-password-1025-bytes', server: 'auth-failed', client: 'frame:auth-failed', run: sendAuth(Buffer.from(`\0${USER}\0${'p'.repeat(1025)}`)) },
    { name: 'sasl-response-over-4096-bytes', server: 'frame-malformed', client: 'frame:frame-malformed', run: sendAuth(Buffer.alloc(5000, 0x61)) },
    { name: 'sasl-wrong-password', server: 'auth-failed', client: 'frame:auth-failed', run: sendAuth(Buffer.from(`\0${USER}\0not-the-password`)) },
    { name: 'sasl-unknown-user', server: 'auth-failed', client: 'frame:auth-failed', run: sendAuth(Buffer.from(`\0nobody\0${PASSWORD}`)) },
    {
      name: 'sasl-other-mechanism',
      server: 'auth-mechanism',
      client: 'frame:auth-mechanism',
      run: ctl(async (c) => {
        c.ctrl.send({ type: MessageType.HELLO, versions: [1] });
        await c.ctrl.expect(MessageType.WELCOME);
        c.ctrl.send({ type: MessageType.AUTH, mechanism: 'ANONYMOUS', response: Buffer.from('x') });
      }),
    },
    // --- after login: targets
    { name: 'target-dotdot-path', server: 'frame-malformed', client: 'frame:frame-malformed', run: authed((c) => void c.tls.write(openFrame('../probe'))) },
    { name: 'target-absolute-path', server: 'frame-malformed', client: 'frame:frame-malformed', run: authed((c) => void c.tls.write(openFrame('/etc/passwd'))) },
    { name: 'target-host-port', server: 'frame-malformed', client: 'frame:frame-malformed', run: authed((c) => void c.tls.write(openFrame(`127.0.0.1:${22}`))) },
    { name: 'target-endpoint-syntax', server: 'frame-malformed', client: 'frame:frame-malformed', run: authed((c) => void c.tls.write(openFrame(`tcp:127.0.0.1:${probe.port}`))) },
    { name: 'target-not-allowed', server: 'target-forbidden', client: 'frame:target-forbidden', run: authed((c) => void c.tls.write(openFrame('guarded'))) },
    { name: 'target-other-port-name', server: 'target-unknown', client: 'frame:target-unknown', run: authed((c) => void c.tls.write(openFrame('probe-22'))) },
    { name: 'open-out-of-order', server: 'channel-order', client: 'frame:channel-order', run: authed((c) => void c.tls.write(openFrame('probe', 1))) },
    { name: 'hello-again-after-login', server: 'protocol-violation', client: 'frame:protocol-violation', run: authed((c) => void c.tls.write(Buffer.concat([encodeFrame(MessageType.HELLO, { versions: [1] }), openFrame('probe')]))) },
  ];

  for (const k of cases) {
    test(`hostile-${k.name}: server logs ${k.server}, client sees ${k.client}, no target reached`, async () => {
      const from = logs.mark();
      const before = probe.accepted + replay.accepted;
      const clientSaw = await k.run();
      const line = await logs.waitFor({ gateway: 'host-b', event: 'channel-refused', cause: k.server }, 10_000, from);
      assert.equal(clientSaw, k.client, `server said: ${String(line['msg'])}`);
      assert.equal(probe.accepted + replay.accepted, before, 'a target was connected');
      assert.deepEqual(logs.find({ gateway: 'host-b', event: 'channel-open' }, from), [], 'a channel was opened');
    });
  }

  test('channels-past-max-channels: idle authenticated channels fill server.maxChannels, the next OPEN is refused channels-full and reaches no target', async () => {
    const held: TLSSocket[] = [];
    try {
      // The concurrent transfer holds one channel already.
      const free = MAX_CHANNELS - pair.b.channels.size;
      assert.ok(free > 0);
      for (let i = 0; i < free; i++) {
        const s = await tlsDial({ port, dir: pki.hostA });
        held.push(s);
        const ctrl = new ControlChannel(s, classifyPeerError, [MessageType.OPENED]);
        await logIn({ tls: s, ctrl }, USER, PASSWORD);
        s.write(openFrame('idle'));
        await ctrl.expect(MessageType.OPENED);
      }
      assert.equal(idle.accepted, free);
      const from = logs.mark();
      const refused = await controlProbe({ port, dir: pki.hostA }, async (c) => {
        await logIn(c, USER, PASSWORD);
        c.tls.write(openFrame('idle'));
      });
      assert.equal(seen(refused), 'frame:channels-full', refused.message);
      await logs.waitFor({ gateway: 'host-b', event: 'channel-refused', cause: 'channels-full' }, 10_000, from);
      assert.equal(idle.accepted, free, 'the refused OPEN must not reach the target');
    } finally {
      for (const s of held) s.destroy();
    }
  });

  test('hostile-replayed-open: a second OPEN for a live channel is a protocol-violation and reaches no target', async () => {
    const session = randomBytes(16).toString('hex');
    const first = await tlsDial({ port, dir: pki.hostA });
    const ctrl = new ControlChannel(first, classifyPeerError, [MessageType.OPENED]);
    try {
      await logIn({ tls: first, ctrl }, USER, PASSWORD);
      first.write(openFrame('replay', 0, session));
      await ctrl.expect(MessageType.OPENED);
      assert.equal(replay.accepted, 1, 'the original OPEN connects the target once');
      const from = logs.mark();
      const again = await controlProbe({ port, dir: pki.hostA }, async (c) => {
        await logIn(c, USER, PASSWORD);
        c.tls.write(openFrame('replay', 0, session));
      });
      assert.equal(seen(again), 'frame:protocol-violation', again.message);
      await logs.waitFor({ gateway: 'host-b', event: 'channel-refused', cause: 'protocol-violation' }, 10_000, from);
      assert.equal(replay.accepted, 1, 'the replay must not connect the target again');
    } finally {
      first.destroy();
    }
  });

  test('hostile-sasl-logs-say-which-check-failed-and-never-the-password', () => {
    const reasons = new Set(logs.find({ gateway: 'host-b', event: 'auth-rejected' }).map((l) => l['reason']));
    for (const r of ['bad-separators', 'authzid-mismatch', 'user-length', 'password-length']) assert.ok(reasons.has(r), `no auth-rejected line with reason ${r}`);
    assert.doesNotMatch(logs.text(), new RegExp(PASSWORD), 'the password reached a log line');
  });

  // Last: every case above ran while this transfer was in flight.
  test('concurrent-transfer-intact: the migration channel running beside every case arrives bit for bit both ways', async () => {
    const sent = await transfer.sender.stop();
    const [theirs, back] = await Promise.all([sink.next(), transfer.returned]);
    assert.ok(sent.bytes > 0);
    assert.equal(theirs.bytesReceived, sent.bytes);
    assert.equal(theirs.received, sent.digest, 'source -> destination digest');
    assert.equal(back.digest, theirs.sent, 'destination -> source digest');
    const close = await logs.waitFor({ gateway: 'host-b', event: 'channel-close', target: 'incoming' });
    assert.equal(close['cause'], 'ok');
    assert.equal(probe.accepted, 0, 'no hostile case reached the probe target');
  });
});
