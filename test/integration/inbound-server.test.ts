/**
 * InboundServer (the server role) on its own: a real TLS listener on
 * 127.0.0.1:0 with the test PKI, driven by PeerClient and by bare TLS
 * clients. What it does with ABORT and REPORT, that every refusal gives its
 * handshake slot back, and that close() does not wait for a channel that
 * waits for its turn.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { PeerError } from '../../src/errors.js';
import type { HandshakeSlots } from '../../src/handshake/handshake-slots.js';
import { destroyPeer } from '../../src/handshake/client.js';
import { PeerClient } from '../../src/route/peer-client.js';
import type { InboundServer } from '../../src/server/inbound-server.js';
import type { Identity } from '../../src/tls/identity.js';
import { controlProbe, logIn } from '../helpers/hostile-client.js';
import { heldTarget, identityOf, makePeerPki, nextChannel, NO_END_RECORD, routeConfig, startInbound, type HeldTarget, type InboundFixture } from '../helpers/peer-fixture.js';

let pki: Awaited<ReturnType<typeof makePeerPki>>;
let hostA: Identity;
let hostB: Identity;
let target: HeldTarget;

before(async () => {
  pki = await makePeerPki('vmgate-inbound-');
  [hostA, hostB] = await Promise.all([identityOf(pki.hostA), identityOf(pki.hostB)]);
  target = await heldTarget();
});

after(async () => {
  await target.close();
  await pki.remove();
});

const session = (): string => randomBytes(16).toString('hex');

function client(b: InboundFixture, o: { as?: Identity; password?: string; target?: string } = {}): PeerClient {
  const id = o.as ?? hostA;
  const password = o.password ?? b.password;
  return new PeerClient(routeConfig(b.port, o.target === undefined ? {} : { target: o.target }), () => id, () => password);
}

/** The server's handshake slots (private: the count is the point of the test). */
function slots(server: InboundServer): HandshakeSlots {
  return (server as unknown as { slots: HandshakeSlots }).slots;
}

async function refusal(p: Promise<unknown>): Promise<string> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  assert.ok(e instanceof PeerError, `expected the server to refuse with an ERROR frame, got ${String(e)}`);
  return e.code;
}

test('ABORT ends the running channel with the cause the source sent, and only for the peer that owns the session', { timeout: 30_000 }, async () => {
  const b = await startInbound({ dir: pki.hostB, targetPort: target.port });
  try {
    const s = session();
    const added = nextChannel(b.channels);
    const { peer } = await client(b).open(s, 0);
    peer.tls.on('error', () => undefined);
    const entry = await added;
    const mark = b.logs.mark();

    // Another gateway's certificate: same session id, but not its channel.
    assert.equal(await client(b, { as: hostB }).abort(s, [0], 'cancelled', 'not yours'), 0);
    assert.equal(b.channels.size, 1, 'a channel survives an ABORT from another peer');

    assert.equal(await client(b).abort(s, [0], 'stalled', 'no byte moved for 60 s'), 1);
    const result = await entry.relay.done;
    assert.equal(result.cause, 'stalled');
    const closed = await b.logs.waitFor({ event: 'channel-close', session: s }, 10_000, mark);
    assert.equal(closed['cause'], 'stalled', 'the channel end is logged with the source cause');
    assert.equal(b.logs.find({ event: 'peer-abort', session: s, ended: 1 }, mark).length, 1);
    destroyPeer(peer);
  } finally {
    await b.close();
  }
});

test('REPORT for a channel with no end record is refused with its code and logged as a refusal', { timeout: 30_000 }, async () => {
  const b = await startInbound({ dir: pki.hostB, targetPort: target.port });
  try {
    const s = session();
    assert.equal(await refusal(client(b).report(s, 0)), NO_END_RECORD);
    assert.deepEqual(b.metrics.failures('server'), [NO_END_RECORD]);
    assert.equal(b.logs.find({ event: 'channel-refused', cause: NO_END_RECORD }).length, 1);
  } finally {
    await b.close();
  }
});

test('every refusal gives its handshake slot back: with one slot, an honest OPEN still gets through after each', { timeout: 30_000 }, async () => {
  const b = await startInbound({ dir: pki.hostB, targetPort: target.port, config: { maxHandshakes: 1, maxHandshakesPerAddress: 1 } });
  try {
    const refusals: Array<[string, () => Promise<string>]> = [
      ['wrong password', () => refusal(client(b, { password: 'wrong' }).open(session(), 0))],
      ['unknown target', () => refusal(client(b, { target: 'elsewhere' }).open(session(), 0))],
      ['REPORT without record', () => refusal(client(b).report(session(), 0))],
      ['no client certificate', async () => (await controlProbe({ port: b.port }, (c) => logIn(c, 'migrate', b.password))).code],
    ];
    const codes: string[] = [];
    for (const [what, refuse] of refusals) {
      codes.push(await refuse());
      assert.equal(slots(b.server).inUse(), 0, `the slot of the refused connection (${what}) is free again`);
    }
    assert.deepEqual(codes, ['auth-failed', 'target-unknown', NO_END_RECORD, 'tls-no-client-cert']);
    assert.equal(b.metrics.failures('server').includes('busy'), false, 'no connection was turned away for want of a slot');

    const added = nextChannel(b.channels);
    const { peer } = await client(b).open(session(), 0);
    await added;
    assert.equal(slots(b.server).inUse(), 0, 'an open channel holds no handshake slot');
    destroyPeer(peer);
  } finally {
    await b.close();
  }
});

test('close() refuses a channel that waits for its turn with shutdown, at once', { timeout: 30_000 }, async () => {
  let opens = 0;
  let waiting: () => void = () => undefined;
  const inTurn = new Promise<void>((resolve) => (waiting = resolve));
  const b = await startInbound({
    dir: pki.hostB,
    targetPort: target.port,
    // Well beyond the test's run: only close() can end the wait in time.
    config: { channelOrderTimeoutMs: 20_000, handshakeTimeoutMs: 20_000 },
    // The allow-list is read right before the OPEN waits for its turn, in the same tick.
    onTargets: () => {
      opens += 1;
      waiting();
    },
  });
  const targetsBefore = target.sockets.length;
  // Channel 1 of a session whose channel 0 never comes.
  const open = client(b).open(session(), 1).then(() => 'opened', (e: unknown) => e);
  await inTurn;
  assert.equal(opens, 1);
  const started = Date.now();
  await b.close();
  assert.ok(Date.now() - started < 5_000, 'close() did not wait for the channel order timeout');
  assert.notEqual(await open, 'opened');
  await b.metrics.waitFor('handshakeFailed', (e) => e.cause === 'shutdown');
  assert.deepEqual(b.metrics.failures('server'), ['shutdown']);
  const refused = await b.logs.waitFor({ event: 'channel-refused', cause: 'shutdown' });
  assert.equal(refused['channel'], 1);
  assert.equal(target.sockets.length, targetsBefore, 'the waiting channel never reached the target');
});
