import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { test } from 'node:test';
import { CredentialStore } from '../../src/auth/credential-store.js';
import { FrameDecoder } from '../../src/control/frame-codec.js';
import { decodeMessage, MessageType } from '../../src/control/messages.js';
import { startLocalPair, type LocalPair } from '../../src/demo/local-pair.js';
import { connectLoopback, exchange, startSink, type PayloadSink } from '../../src/demo/payload.js';
import { publishCrl, revokeCertificate } from '../../src/pki/index.js';
import { captureLogs, type CapturedLogs } from '../helpers/log-capture.js';
import { makeTestPki, withTestPki, type TestPki } from '../helpers/pki.js';

/**
 * TLS session resumption and the recent-login cache between two real
 * gateways on loopback: later channels resume and skip scrypt, and neither
 * shortcut lets in a peer that a reload (CRL, credentials, allow-list) has
 * just shut out.
 */
let dir: string;
let pki: TestPki;
let n = 0;

withTestPki('vmgate-resume-', (d, p) => {
  dir = d;
  pki = p;
});

interface Case {
  pair: LocalPair;
  sink: PayloadSink;
  logs: CapturedLogs;
  stop(): Promise<void>;
}

async function start(hostA = pki.hostA, hostB = pki.hostB): Promise<Case> {
  const sink = await startSink(64 * 1024);
  const logs = captureLogs('info');
  // No probe: these cases are about the first channels of a cold path (peer-probe.test.ts covers the warm one).
  const pair = await startLocalPair({ dir: join(dir, `case-${n++}`), targetConnect: `tcp:127.0.0.1:${sink.port}`, log: logs.log, pkiA: hostA, pkiB: hostB, probeIntervalMs: 0 });
  return {
    pair,
    sink,
    logs,
    stop: async () => {
      await pair.stop(0);
      await sink.close();
    },
  };
}

type Entry = Record<string, unknown>;

/** The channel-open lines of both gateways logged from index `from` on. */
function opensSince(c: Case, from: number): { a: Entry[]; b: Entry[] } {
  const fresh = c.logs.entries.slice(from);
  return {
    a: fresh.filter((e) => e['gateway'] === 'host-a' && e['event'] === 'channel-open'),
    b: fresh.filter((e) => e['gateway'] === 'host-b' && e['event'] === 'channel-open'),
  };
}

/** Opens `count` channels at once, each exchanging 64 KiB both ways; checks every byte; returns the open lines. */
async function channels(c: Case, count: number): Promise<{ a: Entry[]; b: Entry[] }> {
  const from = c.logs.entries.length;
  const taken = c.sink.transfers.length;
  const clients = await Promise.all(Array.from({ length: count }, () => connectLoopback(c.pair.routeAddress.port)));
  const mine = await Promise.all(clients.map((s) => exchange(s, 64 * 1024)));
  const theirs = await Promise.all(c.sink.transfers.slice(taken, taken + count));
  assert.equal(theirs.length, count, 'every channel reached the target');
  // Channels reach the target in session order, not necessarily in our connect order: match by digest.
  assert.deepEqual(mine.map((t) => t.sent).sort(), theirs.map((t) => t.received).sort(), 'source -> destination bytes');
  assert.deepEqual(theirs.map((t) => t.sent).sort(), mine.map((t) => t.received).sort(), 'destination -> source bytes');
  await c.logs.waitForCount({ gateway: 'host-a', event: 'channel-close', cause: 'ok' }, count, 10_000, from);
  const opens = opensSince(c, from);
  assert.equal(opens.a.length, count);
  assert.equal(opens.b.length, count);
  return opens;
}

/** Opens one channel that must be refused; returns both gateways' refusal lines. */
async function refused(c: Case): Promise<{ a: Entry; b: Entry }> {
  const from = c.logs.entries.length;
  const taken = c.sink.transfers.length;
  const client = await connectLoopback(c.pair.routeAddress.port);
  const outcome = await new Promise<string>((resolve) => {
    client.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    client.on('end', () => resolve('end'));
    client.write('QEVM');
    client.resume();
  });
  assert.equal(outcome, 'ECONNRESET');
  await c.logs.waitFor({ gateway: 'host-a', event: 'channel-refused' }, 10_000, from);
  await c.logs.waitFor({ gateway: 'host-b', event: 'channel-refused' }, 10_000, from);
  const fresh = c.logs.entries.slice(from);
  assert.equal(c.sink.transfers.length, taken, 'the target must never be connected');
  return {
    a: fresh.find((e) => e['gateway'] === 'host-a' && e['event'] === 'channel-refused') ?? {},
    b: fresh.find((e) => e['gateway'] === 'host-b' && e['event'] === 'channel-refused') ?? {},
  };
}

/** A full handshake first, then channels that resume the session it left behind. */
async function warmed(c: Case): Promise<void> {
  const first = await channels(c, 1);
  assert.equal(first.a[0]?.['tlsResumed'], false, 'the first channel to a peer is a full handshake');
  assert.equal(first.b[0]?.['login'], 'scrypt');
  const second = await channels(c, 1);
  assert.equal(second.a[0]?.['tlsResumed'], true, 'the second channel resumes (isSessionReused on the client)');
}

test('resumed-channel: a later channel resumes TLS on both sides, skips scrypt and carries data', async () => {
  const c = await start();
  try {
    await channels(c, 1);
    const later = await channels(c, 1);
    assert.equal(later.a[0]?.['tlsResumed'], true, 'client: isSessionReused()');
    assert.equal(later.b[0]?.['tlsResumed'], true, 'server: isSessionReused()');
    assert.equal(later.b[0]?.['login'], 'recent', 'the login scrypt accepted a moment ago');
  } finally {
    await c.stop();
  }
});

test('eight-channels-cold: eight channels opened at once on a fresh pair share one session and one scrypt run', async () => {
  const c = await start();
  try {
    const opens = await channels(c, 8);
    assert.equal(new Set(opens.a.map((e) => e['session'])).size, 1, 'one migration session');
    assert.deepEqual(opens.b.map((e) => e['channel']).sort((p, q) => Number(p) - Number(q)), [0, 1, 2, 3, 4, 5, 6, 7]);
    // The first dial has nothing to resume; the others wait (bounded) for its ticket (unit: ticket-gate-*).
    assert.equal(opens.a.find((e) => e['channel'] === 0)?.['tlsResumed'], false);
    const logins = opens.b.map((e) => e['login']);
    // Logins that arrive while the first scrypt runs share it; on a busy machine some arrive after it and find it recent.
    assert.equal(logins.filter((l) => l === 'scrypt').length, 1, `one scrypt run for eight channels: ${logins.join(', ')}`);
    assert.ok(logins.every((l) => l === 'scrypt' || l === 'shared' || l === 'recent'), logins.join(', '));
  } finally {
    await c.stop();
  }
});

test('eight-channels-resumed: eight channels of a later migration all resume, open and carry data', async () => {
  const c = await start();
  try {
    await warmed(c);
    const opens = await channels(c, 8);
    assert.equal(new Set(opens.a.map((e) => e['session'])).size, 1, 'one migration session');
    assert.ok(opens.a.every((e) => e['tlsResumed'] === true), 'every channel resumed on the client');
    assert.ok(opens.b.every((e) => e['tlsResumed'] === true && e['login'] === 'recent'), 'and on the server');
  } finally {
    await c.stop();
  }
});

test('revoked-after-reload: a client revoked by a CRL reload is refused although it holds a session ticket', async () => {
  // Own PKI: this test revokes host-a.
  const own = await makeTestPki(join(dir, `pki-${n++}`));
  const c = await start(own.hostA, own.hostB);
  try {
    await warmed(c);
    await revokeCertificate({ caDir: own.caDir, certPath: join(own.hostA, 'client-cert.pem'), reason: 'keyCompromise' });
    await publishCrl({ caDir: own.caDir, to: own.hostB });
    assert.equal(await c.pair.b.reload(), undefined);
    const r = await refused(c);
    assert.equal(r.b['cause'], 'tls-cert-revoked', String(r.b['msg']));
    assert.equal(r.a['cause'], 'tls-cert-revoked', String(r.a['msg']));
  } finally {
    await c.stop();
  }
});

test('password-changed-after-reload: the recent login of the old password does not survive a credential reload', async () => {
  const c = await start();
  try {
    await warmed(c);
    const storePath = join(c.pair.dir, 'users.json');
    const store = await CredentialStore.load(storePath);
    await store.setPassword('migrate', 'a-new-password-the-route-does-not-know');
    await store.save(storePath);
    assert.equal(await c.pair.b.reload(), undefined);
    const r = await refused(c);
    assert.equal(r.b['cause'], 'auth-failed');
    assert.equal(r.a['cause'], 'auth-failed');
  } finally {
    await c.stop();
  }
});

test('allow-list-reload: a peer taken off the allow-list is refused on a resumed session', async () => {
  const c = await start();
  try {
    await warmed(c);
    const cfg = c.pair.configFiles.b;
    await writeFile(cfg, (await readFile(cfg, 'utf8')).replace('peer: host-a', 'peer: host-z'));
    assert.equal(await c.pair.b.reload(), undefined);
    const r = await refused(c);
    assert.equal(r.b['cause'], 'target-forbidden');
    assert.equal(r.a['cause'], 'target-forbidden');
  } finally {
    await c.stop();
  }
});

const reloads = [
  ['server-reload-new-ticket-keys', 'b', 'the server draws new ticket keys'],
  ['client-reload-forgets-tickets', 'a', 'the route gateway forgets its tickets'],
] as const;
for (const [name, side, why] of reloads) {
  test(`${name}: after host-${side} reloads, the next channel is a full handshake (${why})`, async () => {
    const c = await start();
    try {
      await warmed(c);
      assert.equal(await c.pair[side].reload(), undefined);
      const next = await channels(c, 1);
      assert.equal(next.a[0]?.['tlsResumed'], false);
      assert.equal(next.b[0]?.['tlsResumed'], false);
      if (side === 'b') assert.equal(next.b[0]?.['login'], 'scrypt', 'the reloaded store remembers no login');
    } finally {
      await c.stop();
    }
  });
}

/**
 * A bare TLS client (not a gateway) at host-b's TLS port: returns the code of
 * the ERROR frame it is refused with, whether its session was resumed, and
 * the session ticket the server gave it.
 */
async function bareClient(port: number, certDir: string | undefined, session?: Buffer): Promise<{ code: unknown; resumed: boolean; ticket: Buffer | undefined }> {
  const ca = await readFile(join(pki.hostA, 'ca-cert.pem'));
  const creds = certDir === undefined ? {} : { cert: await readFile(join(certDir, 'client-cert.pem')), key: await readFile(join(certDir, 'client-key.pem')) };
  return new Promise((resolve, reject) => {
    let ticket: Buffer | undefined;
    const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'host-b', ALPNProtocols: ['vmgate/1'], minVersion: 'TLSv1.3', ...creds, ...(session ? { session } : {}) });
    const dec = new FrameDecoder();
    let code: unknown;
    let resumed = false;
    s.once('secureConnect', () => (resumed = s.isSessionReused()));
    s.on('session', (t: Buffer) => (ticket = t));
    s.on('data', (d: Buffer) => {
      const [f] = dec.push(d);
      if (f && code === undefined) {
        const m = decodeMessage(f);
        code = m.type === MessageType.ERROR ? m.code : `type ${m.type}`;
      }
    });
    // The server closes after its ERROR frame; by then every ticket it sent has arrived.
    s.on('close', () => resolve({ code, resumed, ticket }));
    s.on('error', reject);
  });
}

const unverified = [
  ['self-signed', (p: TestPki): string | undefined => p.selfSigned, 'tls-verify-failed'],
  ['no-certificate', (): string | undefined => undefined, 'tls-no-client-cert'],
] as const;
for (const [name, certDir, code] of unverified) {
  test(`resume-after-refusal-${name}: a client refused at its full handshake is refused again when it resumes with its ticket`, async () => {
    const c = await start();
    try {
      const port = c.pair.b.serverAddress()?.port ?? 0;
      const first = await bareClient(port, certDir(pki));
      assert.equal(first.code, code);
      assert.ok(first.ticket, 'the server issues a ticket before the refusal (TLS completes, then we check)');
      const again = await bareClient(port, certDir(pki), first.ticket);
      assert.equal(again.resumed, true, 'the session was resumed: this exercises the resumed path');
      assert.equal(again.code, code);
      assert.equal(c.sink.transfers.length, 0);
    } finally {
      await c.stop();
    }
  });
}
