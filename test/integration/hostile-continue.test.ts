/**
 * Hostile CONTINUEs against a live server role (SECURITY.md, "continuing a
 * channel"). The server is host-b's InboundServer in this process (real TLS
 * 1.3 and SASL on loopback); the attacker is this test, driving the real
 * client handshake (src/handshake/client.ts) and speaking the version 2 data
 * records itself (test/helpers/record-peer.ts), so it holds the channel's
 * secret from OPENED and can claim any byte count. A real route carries a
 * transfer beside every case the whole time.
 *
 * For each refusal: the client is told the code, the server logs
 * `channel-refused` with it, no target is connected, and the attacked channel
 * is unchanged (its state, its counts, and a correct CONTINUE still goes on
 * with it byte for byte). At the end the transfer beside arrives intact.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { pacedSender } from '../helpers/paced-sender.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { CredentialStore } from '../../src/auth/credential-store.js';
import { makeLocalPki } from '../../src/demo/local-pair.js';
import { receiveAll } from '../../src/demo/payload.js';
import { connectPeer, continueChannel, openChannel, type ClientConnection, type PeerLogin } from '../../src/handshake/client.js';
import { issueCertificate } from '../../src/pki/index.js';
import type { HealingRelay } from '../../src/relay/healing-relay.js';
import { ReplayBudget } from '../../src/relay/replay-buffer.js';
import { Route } from '../../src/route/route.js';
import { ChannelTable, type ChannelEntry } from '../../src/session/channel-table.js';
import { TicketCache } from '../../src/tls/session-tickets.js';
import { code } from '../helpers/assert-code.js';
import { heldTarget, identityOf, nextChannel, RecordingMetrics, routeConfig, startInbound, testChannelConfig, TARGET, USER, type HeldTarget, type InboundFixture } from '../helpers/peer-fixture.js';
import { captureLogs } from '../helpers/log-capture.js';
import { TEST_KEY_BITS } from '../helpers/pki.js';
import { RecordPeer } from '../helpers/record-peer.js';
import { waitFor } from '../helpers/wait-for.js';

const PASSWORD = randomBytes(18).toString('base64url');
/** A second user the server knows: it may log in, but it did not open the attacked channel. */
const OTHER_USER = 'other';
const OTHER_PASSWORD = randomBytes(18).toString('base64url');
const KiB = 1024;
/** Every channel secret the server handed out (OPENED, CONTINUED): none may appear in its log. */
const secrets: string[] = [];

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

describe('hostile CONTINUEs against a live server', { timeout: 120_000 }, () => {
  let dir: string;
  let hostA: string;
  let hostB: string;
  /** Another certificate of the same CA: verified, but not the one that opened the channel. */
  let hostC: string;
  let target: HeldTarget;
  let b: InboundFixture;
  let routeChannels: ChannelTable;
  let routeMetrics: RecordingMetrics;
  let route: Route;
  let beside: {
    source: Socket;
    dest: Socket;
    up: ReturnType<typeof pacedSender>;
    down: ReturnType<typeof pacedSender>;
    atDest: Promise<{ digest: string; bytes: number }>;
    atSource: Promise<{ digest: string; bytes: number }>;
    serverEntry: ChannelEntry;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmgate-hostile-continue-'));
    const pki = await makeLocalPki(dir, TEST_KEY_BITS);
    hostA = pki.hostA;
    hostB = pki.hostB;
    hostC = join(dir, 'pki-c');
    await issueCertificate({ caDir: pki.caDir, outDir: hostC, commonName: 'host-c', dns: ['host-c'], ips: ['127.0.0.1'], keyBits: TEST_KEY_BITS, allowWeakKeyForTests: true });
    const store = CredentialStore.empty();
    await store.setPassword(USER, PASSWORD);
    await store.setPassword(OTHER_USER, OTHER_PASSWORD);
    target = await heldTarget();
    b = await startInbound({ dir: hostB, targetPort: target.port, deps: { credentials: () => store } });

    // The transfer beside: a real route (host-a) to host-b, a paced stream each way.
    const identity = await identityOf(hostA);
    routeChannels = new ChannelTable();
    routeMetrics = new RecordingMetrics();
    route = new Route({ config: routeConfig(b.port), password: () => PASSWORD, identity: () => identity, channels: routeChannels, log: captureLogs('info').log, closeGraceMs: 1_000, channel: testChannelConfig(), budget: new ReplayBudget(64 << 20), metrics: routeMetrics });
    await route.listen();
    const port = Number(/:(\d+)$/.exec(route.address())?.[1]);
    const opened = nextChannel(b.channels);
    const source = connect({ host: '127.0.0.1', port });
    await once(source, 'connect');
    const up = pacedSender(source, 32 * KiB);
    const atSource = receiveAll(source);
    const dest = await target.connection(1);
    const atDest = receiveAll(dest);
    const down = pacedSender(dest, 32 * KiB);
    const serverEntry = await opened;
    beside = { source, dest, up, down, atDest, atSource, serverEntry };
  });

  after(async () => {
    beside?.source.destroy();
    await route?.close();
    await b?.close();
    await target?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  interface As {
    dir?: string;
    user?: string;
    password?: string;
    versions?: number[];
  }
  /** connectPeer as a source gateway would dial (fresh tickets: every connection is a full handshake). */
  const dial = async (o: As = {}): Promise<ClientConnection> => {
    const identity = await identityOf(o.dir ?? hostA);
    const login: PeerLogin = {
      peer: { host: '127.0.0.1', port: b.port },
      peerName: 'host-b',
      user: o.user ?? USER,
      password: () => o.password ?? PASSWORD,
      identity: () => identity,
      timeoutMs: 10_000,
      tickets: new TicketCache(),
      versions: o.versions ?? [2, 1],
    };
    return connectPeer(login);
  };

  /** An attacked channel: OPENed by host-a as USER, with its secret and the server's side of it. */
  interface Attacked {
    session: string;
    secret: string;
    peer: RecordPeer;
    dest: Socket;
    /** What the target received, in order. */
    atDest: Buffer[];
    entry: ChannelEntry;
    relay: HealingRelay;
  }

  async function openAttacked(): Promise<Attacked> {
    const session = randomBytes(16).toString('hex');
    const n = target.sockets.length + 1;
    const c = await dial();
    assert.equal(c.version, 2, 'the server must choose protocol version 2');
    const { remainder, secret } = await openChannel(c, TARGET, session, 0);
    assert.ok(secret !== undefined, 'OPENED of version 2 carries the secret');
    secrets.push(secret);
    const peer = new RecordPeer(c.peer.tls, c.peer.raw, remainder);
    const dest = await target.connection(n);
    const atDest: Buffer[] = [];
    dest.on('data', (d: Buffer) => atDest.push(d));
    const entry = await waitFor(() => b.channels.list().find((e) => e.session === session), { what: 'the attacked channel in the server table' });
    return { session, secret, peer, dest, atDest, entry, relay: entry.relay as HealingRelay };
  }

  const destBytes = (a: Attacked): Buffer => Buffer.concat(a.atDest);
  const waitDest = (a: Attacked, n: number, what: string): Promise<true> =>
    waitFor(() => destBytes(a).length >= n, { what: `${n} bytes at the target (${what}); have ${destBytes(a).length}` });
  const waitHealing = (a: Attacked): Promise<true> => waitFor(() => a.relay.state === 'healing', { what: 'the server to see the hop lost' });

  /** Runs a CONTINUE that must be refused with `expected`, and checks what the server says and that no target was reached. */
  async function refused(expected: string, req: { session: string; channel: number; secret: string; received: number; ended: boolean }, as: As = {}): Promise<void> {
    const from = b.logs.mark();
    const targets = target.sockets.length;
    const c = await dial(as);
    await assert.rejects(continueChannel(c, req), code(expected));
    await b.logs.waitFor({ event: 'channel-refused', cause: expected }, 10_000, from);
    assert.equal(target.sockets.length, targets, 'a refused CONTINUE connected a target');
    assert.deepEqual(b.logs.find({ event: 'link-healed' }, from), [], 'a refused CONTINUE healed a channel');
  }

  /** The attacked channel's server side, to show a refusal changed nothing. */
  const snapshot = (a: Attacked) => ({ state: a.relay.state, heals: a.relay.heals, ...a.relay.counters, inTable: b.channels.list().includes(a.entry) });

  test('continue-on-version-1: a CONTINUE on a connection that chose version 1 is a protocol-violation', async () => {
    const a = await openAttacked();
    const before = snapshot(a);
    await refused('protocol-violation', { session: a.session, channel: 0, secret: a.secret, received: 0, ended: false }, { versions: [1] });
    assert.deepEqual(snapshot(a), before);
    a.peer.reset();
  });

  test('continue-unknown: a CONTINUE of a session or channel the server does not have is heal-unknown', async () => {
    const a = await openAttacked();
    a.peer.close();
    await waitHealing(a);
    const before = snapshot(a);
    await refused('heal-unknown', { session: randomBytes(16).toString('hex'), channel: 0, secret: a.secret, received: 0, ended: false });
    await refused('heal-unknown', { session: a.session, channel: 1, secret: a.secret, received: 0, ended: false });
    assert.deepEqual(snapshot(a), before);
    // A channel opened with version 1 has no secret: it cannot be taken over, even with a live one's secret.
    const v1 = await dial({ versions: [1] });
    const session = randomBytes(16).toString('hex');
    const opened = await openChannel(v1, TARGET, session, 0);
    assert.equal(opened.secret, undefined);
    await waitFor(() => b.channels.list().some((e) => e.session === session), { what: 'the version 1 channel in the server table' });
    await refused('heal-unknown', { session, channel: 0, secret: a.secret, received: 0, ended: false });
    assert.ok(b.channels.list().some((e) => e.session === session && e.relay.state === 'open'), 'the version 1 channel is untouched');
    v1.peer.tls.destroy();
  });

  test('continue-live: a CONTINUE with the right secret of a channel whose hop is up is heal-live, and the channel keeps flowing', async () => {
    const a = await openAttacked();
    const up1 = randomBytes(48 * KiB);
    a.peer.send(up1);
    await waitDest(a, up1.length, 'before');
    const before = snapshot(a);
    await refused('heal-live', { session: a.session, channel: 0, secret: a.secret, received: 0, ended: false });
    // With a wrong secret the answer is heal-denied: whether a channel is live is told only to who holds its secret.
    await refused('heal-denied', { session: a.session, channel: 0, secret: randomBytes(32).toString('base64'), received: 0, ended: false });
    assert.deepEqual(snapshot(a), before);
    // Still flowing both ways over the first hop.
    const up2 = randomBytes(40 * KiB);
    a.peer.send(up2);
    const down = randomBytes(56 * KiB);
    a.dest.write(down);
    await waitDest(a, up1.length + up2.length, 'after');
    await a.peer.waitReceived(down.length, 'after');
    assert.equal(sha(destBytes(a)), sha(Buffer.concat([up1, up2])));
    assert.equal(sha(a.peer.bytes()), sha(down));
    assert.equal(a.relay.state, 'open');
    assert.equal(a.relay.heals, 0);
    a.peer.reset();
  });

  test('continue-while-healing: wrong secret, other user, other certificate, and counts that do not add up are refused and change nothing; then the right CONTINUE goes on byte for byte, and the old secret is refused after it', async () => {
    const a = await openAttacked();
    // Up: A reaches the target. Down: B is taken and acknowledged, C is sent by the server but lost with the hop.
    const A = randomBytes(64 * KiB);
    const B = randomBytes(100 * KiB);
    const C = randomBytes(30 * KiB);
    a.peer.send(A);
    await waitDest(a, A.length, 'A');
    a.dest.write(B);
    await a.peer.waitReceived(B.length, 'B');
    a.peer.ack();
    a.peer.freeze();
    a.dest.write(C);
    await waitFor(() => a.relay.counters.bytesOut === B.length + C.length, { what: 'the server to send C' });
    await waitFor(() => !a.relay.fits(B.length - 1, false), { what: 'the server to take the ACK of B' });
    a.peer.close();
    await waitHealing(a);
    // The server's window for our CONTINUE: B (acknowledged) .. B + C (sent).
    assert.ok(a.relay.fits(B.length, false) && a.relay.fits(B.length + C.length, false));
    const before = snapshot(a);
    const right = { session: a.session, channel: 0, secret: a.secret, received: B.length, ended: false };

    await refused('heal-denied', { ...right, secret: randomBytes(32).toString('base64') });
    // The right secret with one bit flipped.
    const flipped = Buffer.from(a.secret, 'base64');
    flipped[31] = (flipped[31] ?? 0) ^ 1;
    await refused('heal-denied', { ...right, secret: flipped.toString('base64') });
    await refused('heal-denied', right, { user: OTHER_USER, password: OTHER_PASSWORD });
    await refused('heal-denied', right, { dir: hostC });
    await refused('heal-counts', { ...right, received: B.length + C.length + 1 });
    await refused('heal-counts', { ...right, received: B.length - 1 });
    // Claims the server's END, which the target never sent.
    await refused('heal-counts', { ...right, received: B.length + C.length, ended: true });
    assert.deepEqual(snapshot(a), before, 'a refused CONTINUE changed the channel');

    // The right one: the same secret (no refusal used it up), from what we really have.
    const c = await dial();
    const { reply, remainder } = await continueChannel(c, right);
    assert.equal(reply.received, A.length, 'the server has all of A');
    assert.equal(reply.ended, false);
    assert.notEqual(reply.secret, a.secret, 'CONTINUED replaces the secret');
    secrets.push(reply.secret);
    const hop2 = new RecordPeer(c.peer.tls, c.peer.raw, remainder, B.length);
    await hop2.waitReceived(C.length, 'C, resent');
    const D = randomBytes(20 * KiB);
    const E = randomBytes(24 * KiB);
    hop2.send(D);
    a.dest.write(E);
    await waitDest(a, A.length + D.length, 'D');
    await hop2.waitReceived(C.length + E.length, 'E');
    assert.equal(sha(destBytes(a)), sha(Buffer.concat([A, D])), 'up: byte for byte across the heal');
    assert.equal(sha(Buffer.concat([a.peer.bytes(), hop2.bytes()])), sha(Buffer.concat([B, C, E])), 'down: byte for byte across the heal');
    assert.equal(a.relay.heals, 1);

    // Replayed: the first secret again, after it was replaced, on a channel that is healing again.
    hop2.ack();
    await waitFor(() => !a.relay.fits(B.length + C.length + E.length - 1, false), { what: 'the server to take the ACK of E' });
    hop2.close();
    await waitHealing(a);
    const received = B.length + C.length + E.length;
    const again = snapshot(a);
    await refused('heal-denied', { ...right, received });
    assert.deepEqual(snapshot(a), again);

    // Two CONTINUEs with the current secret at once: one goes on; the other finds the
    // channel connected again (its secret stays valid until the winner's first record,
    // in case the winner's CONTINUED was lost on the way), so it is told heal-live.
    const [c1, c2] = await Promise.all([dial(), dial()]);
    const now = { ...right, secret: reply.secret, received };
    const from = b.logs.mark();
    const results = await Promise.allSettled([continueChannel(c1, now), continueChannel(c2, now)]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    assert.equal(won.length, 1, 'exactly one CONTINUE may take the channel');
    assert.equal(lost.length, 1);
    assert.ok(code('heal-live')(lost[0]));
    await b.logs.waitFor({ event: 'channel-refused', cause: 'heal-live' }, 10_000, from);
    assert.equal(a.relay.heals, 2);
    const w = won[0];
    assert.ok(w?.status === 'fulfilled');
    const winner = w.value.reply.secret;
    secrets.push(winner);
    assert.notEqual(winner, reply.secret);
    const winnerConn = results[0]?.status === 'fulfilled' ? c1 : c2;
    const hop3 = new RecordPeer(winnerConn.peer.tls, winnerConn.peer.raw, w.value.remainder, received);
    const F = randomBytes(16 * KiB);
    const G = randomBytes(16 * KiB);
    hop3.send(F);
    a.dest.write(G);
    await waitDest(a, A.length + D.length + F.length, 'F');
    await hop3.waitReceived(G.length, 'G');
    assert.equal(sha(destBytes(a)), sha(Buffer.concat([A, D, F])));
    assert.equal(sha(hop3.bytes()), sha(G));
    hop3.reset();
  });

  // Last: every case above ran while this transfer was in flight.
  test('transfer-beside-intact: the route channel running beside every case arrives bit for bit both ways, without a heal', async () => {
    const [sentUp, sentDown] = await Promise.all([beside.up.stop(), beside.down.stop()]);
    const [gotDest, gotSource] = await Promise.all([beside.atDest, beside.atSource]);
    assert.ok(sentUp.bytes > 0 && sentDown.bytes > 0);
    assert.equal(gotDest.bytes, sentUp.bytes);
    assert.equal(gotDest.digest, sentUp.digest, 'source -> destination digest');
    assert.equal(gotSource.bytes, sentDown.bytes);
    assert.equal(gotSource.digest, sentDown.digest, 'destination -> source digest');
    const result = await beside.serverEntry.relay.done;
    assert.equal(result.cause, 'ok');
    assert.equal((beside.serverEntry.relay as HealingRelay).heals, 0, 'the transfer beside never lost its hop');
    assert.deepEqual(routeMetrics.events.filter((e) => e.kind === 'linkLost'), []);
  });

  test('secrets-not-logged: no channel secret the server handed out appears in its log, at debug level, in any encoding', () => {
    assert.ok(secrets.length >= 4);
    const text = b.logs.text();
    assert.ok(b.logs.find({ event: 'link-healed' }).length >= 2, 'the log covers the heals');
    for (const secret of secrets) {
      const raw = Buffer.from(secret, 'base64');
      for (const form of [secret, raw.toString('hex'), raw.toString('base64url')]) assert.ok(!text.includes(form), 'a channel secret is in the server log');
    }
  });
});
