/**
 * Route (the client role) on its own: its local listener on 127.0.0.1:0,
 * dialling a real InboundServer on loopback with the test PKI. What a local
 * connection becomes: a channel of a session, a reset when the peer
 * refuses, and an ABORT the peer hears when the local side fails.
 */
import assert from 'node:assert/strict';
import { connect, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import type { RouteConfig } from '../../src/config/config.js';
import { Route } from '../../src/route/route.js';
import { ReplayBudget } from '../../src/relay/replay-buffer.js';
import { ChannelTable, type ChannelEntry } from '../../src/session/channel-table.js';
import type { Identity } from '../../src/tls/identity.js';
import { captureLogs, type CapturedLogs } from '../helpers/log-capture.js';
import { heldTarget, identityOf, makePeerPki, nextChannel, RecordingMetrics, routeConfig, testChannelConfig, startInbound, type HeldTarget, type InboundFixture } from '../helpers/peer-fixture.js';

let pki: Awaited<ReturnType<typeof makePeerPki>>;
let hostA: Identity;
let target: HeldTarget;
let b: InboundFixture;

before(async () => {
  pki = await makePeerPki('vmgate-route-');
  hostA = await identityOf(pki.hostA);
  target = await heldTarget();
  b = await startInbound({ dir: pki.hostB, targetPort: target.port });
});

after(async () => {
  await b.close();
  await target.close();
  await pki.remove();
});

interface RouteFixture {
  route: Route;
  channels: ChannelTable;
  metrics: RecordingMetrics;
  logs: CapturedLogs;
  /** Every connection the route's listener accepted, as the route holds it. */
  accepted: Socket[];
  /** A local client (the source QEMU) on the route's listener. */
  dial(): Promise<Socket>;
  close(): Promise<void>;
}

async function startRoute(password = b.password, config: Partial<RouteConfig> = {}): Promise<RouteFixture> {
  const channels = new ChannelTable();
  const metrics = new RecordingMetrics();
  const logs = captureLogs('debug');
  const route = new Route({ config: routeConfig(b.port, config), password: () => password, identity: () => hostA, channels, log: logs.log, closeGraceMs: 1_000, channel: testChannelConfig(), budget: new ReplayBudget(64 << 20), metrics });
  await route.listen();
  const accepted: Socket[] = [];
  // The listeners are private (one per port of a range; one here); the sockets they accept are what "nothing was read" is about.
  for (const server of (route as unknown as { servers: Server[] }).servers) server.on('connection', (s: Socket) => accepted.push(s));
  const port = Number(/:(\d+)$/.exec(route.address())?.[1]);
  const clients: Socket[] = [];
  return {
    route,
    channels,
    metrics,
    logs,
    accepted,
    dial: () =>
      new Promise((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
        clients.push(s);
        s.once('error', reject);
      }),
    close: async () => {
      channels.abortAll('shutdown', 'the test is over');
      for (const c of clients) c.destroy();
      await route.close();
    },
  };
}

test('a connection the peer refuses is reset, and not one byte was read from it', { timeout: 30_000 }, async () => {
  const r = await startRoute('not the password');
  try {
    const local = await r.dial();
    const ended = new Promise<string | undefined>((resolve) => {
      local.once('error', (e: NodeJS.ErrnoException) => resolve(e.code));
      local.once('close', () => resolve(undefined));
    });
    local.write(Buffer.from('QEVM migration stream header'));
    assert.equal(await ended, 'ECONNRESET', 'QEMU sees a failed connection, not an empty migration');
    assert.equal(r.accepted.length, 1);
    assert.equal(r.accepted[0]?.bytesRead, 0, 'nothing was read from QEMU before the peer said OPENED');
    assert.deepEqual(r.metrics.failures('route'), ['auth-failed']);
    const refused = r.logs.find({ event: 'channel-refused' });
    assert.equal(refused.length, 1);
    assert.equal(refused[0]?.['cause'], 'auth-failed');
    assert.equal(r.channels.size, 0);
  } finally {
    await r.close();
  }
});

test('connections made while the first is open are channels 0, 1 of one session; once all end, the next starts a new session', { timeout: 30_000 }, async () => {
  const r = await startRoute();
  try {
    const opened: ChannelEntry[] = [];
    r.channels.observe({ added: (e) => opened.push(e), removed: () => undefined });
    const serverSide = b.channels;
    const first = nextChannel(r.channels);
    const main = await r.dial();
    await first;
    const second = nextChannel(r.channels);
    const multifd = await r.dial();
    await second;
    assert.equal(opened.length, 2);
    assert.equal(opened[1]?.session, opened[0]?.session, 'one session');
    assert.deepEqual(opened.map((e) => e.channel), [0, 1]);
    assert.deepEqual(opened.map((e) => e.role), ['route', 'route']);
    const there = serverSide.list().filter((e) => e.session === opened[0]?.session).map((e) => e.channel).sort();
    assert.deepEqual(there, [0, 1], 'the peer carries the same session and channel numbers');

    // Both end (a clean end from QEMU and the target); the route forgets the session.
    const gone = Promise.all(opened.map((e) => e.relay.done));
    for (const s of [main, multifd]) s.end();
    for (const t of target.sockets) t.end();
    const results = await gone;
    assert.deepEqual(results.map((x) => x.cause), ['ok', 'ok']);
    await r.logs.waitFor({ event: 'channel-close', channel: 1 });
    await r.logs.waitFor({ event: 'channel-close', channel: 0 });

    const third = nextChannel(r.channels);
    await r.dial();
    const next = await third;
    assert.notEqual(next.session, opened[0]?.session, 'a connection after the session ended starts a new one');
    assert.equal(next.channel, 0);
  } finally {
    await r.close();
  }
});

test('when QEMU resets its connection, the peer is told (ABORT) and ends its leg with the same cause', { timeout: 30_000 }, async () => {
  const r = await startRoute();
  try {
    const added = nextChannel(r.channels);
    const serverAdded = nextChannel(b.channels);
    const local = await r.dial();
    const entry = await added;
    const there = await serverAdded;
    const from = b.metrics.events.length;
    local.resetAndDestroy();
    assert.equal((await entry.relay.done).cause, 'local-closed');
    const ended = await b.metrics.waitFor('channelEnded', (e) => e.channel.session === there.session, from);
    assert.equal(ended.outcome, 'local-closed', 'the destination logs why the source ended, not a bare reset');
    await r.logs.waitFor({ event: 'abort-announced' });
  } finally {
    await r.close();
  }
});

/**
 * Two paths to the one peer: 127.0.0.2 first, where nothing listens (the
 * server holds 127.0.0.1 only), so a connection there is refused as on a
 * network that is down; the real peer second.
 */
const deadFirst = (): Pick<RouteConfig, 'peers'> => ({ peers: [{ host: '127.0.0.2', port: b.port }, { host: '127.0.0.1', port: b.port }] });

test('paths: a channel opens over the second path when the first refuses connections, and says which path it took', { timeout: 30_000 }, async () => {
  const r = await startRoute(b.password, deadFirst());
  try {
    const added = nextChannel(r.channels);
    const n = target.sockets.length + 1;
    const local = await r.dial();
    const entry = await added;
    const t = await target.connection(n);
    const atTarget = new Promise<Buffer>((resolve) => t.once('data', resolve));
    local.write('over the second network');
    assert.equal((await atTarget).toString(), 'over the second network');
    const skipped = await r.logs.waitFor({ event: 'path-failed' });
    assert.equal(skipped['path'], 0);
    assert.equal(skipped['cause'], 'peer-unreachable');
    const open = await r.logs.waitFor({ event: 'channel-open' });
    assert.equal(open['path'], 1, 'the channel took the second path');
    assert.equal(entry.role, 'route');
    assert.deepEqual(r.metrics.failures('route'), [], 'a path that failed before another answered is no refused channel');
  } finally {
    await r.close();
  }
});

test('paths: firstPathUp is the most preferred path the last probe found up', { timeout: 30_000 }, async () => {
  const r = await startRoute(b.password, { ...deadFirst(), probeIntervalMs: 1_000 });
  try {
    assert.equal(r.route.firstPathUp(), undefined, 'nothing is known before the first probe');
    r.route.startProbe();
    // One round probes both paths; the second one's verdict arrives by the end of the round.
    await r.metrics.waitFor('peerProbed', (e) => e.path === `127.0.0.2:${b.port}` && !e.up);
    await r.metrics.waitFor('peerProbed', (e) => e.path === `127.0.0.1:${b.port}` && e.up);
    assert.equal(r.route.firstPathUp(), 1);
    const status = r.route.peerStatus();
    assert.equal(status.state, 'up', 'a route with one path up can migrate');
    assert.deepEqual(status.paths.map((p) => [p.address, p.state, p.cause]), [
      [`127.0.0.2:${b.port}`, 'down', 'peer-unreachable'],
      [`127.0.0.1:${b.port}`, 'up', undefined],
    ]);
    assert.ok(status.paths.every((p) => p.lastChecked !== undefined), 'each path says when it was last checked');
    assert.equal(r.route.pathName(0), `127.0.0.2:${b.port}`);
  } finally {
    await r.close();
  }
});
