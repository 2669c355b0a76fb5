/**
 * Healing on loopback: two real gateways (TLS 1.3, SASL) with a breaking
 * proxy on the hop between them (test/helpers/breaking-proxy.ts), so the
 * faults are real TCP resets and real silences. The QEMU versions of these
 * claims are test/e2e/heal-*.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { startLocalPair, type LocalPair } from '../../src/demo/local-pair.js';
import { Gateway } from '../../src/daemon/gateway.js';
import { loadConfig } from '../../src/config/load.js';
import { connectLoopback, exchange, startSink, type PayloadSink } from '../../src/demo/payload.js';
import { captureLogs, type CapturedLogs } from '../helpers/log-capture.js';
import { makeTestPki } from '../helpers/pki.js';
import { startBreakingProxy, type BreakingProxy, type Direction } from '../helpers/breaking-proxy.js';
import { waitFor } from '../helpers/wait-for.js';

const GiB = 1 << 30;
let dir: string;
let n = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmgate-heal-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface HealPair {
  pair: LocalPair;
  proxy: BreakingProxy;
  logs: CapturedLogs;
  close: () => Promise<void>;
}

/** A pair whose route reaches host-b only through a breaking proxy; `channel` keys go into both configs. */
async function healPair(sink: { port: number }, channel: Record<string, number> = {}): Promise<HealPair> {
  n += 1;
  const name = `heal-${n}`;
  const pki = await makeTestPki(join(dir, `${name}-pki`));
  const logs = captureLogs('info');
  let proxy: BreakingProxy | undefined;
  const pair = await startLocalPair({
    dir: join(dir, name),
    targetConnect: `tcp:127.0.0.1:${sink.port}`,
    log: logs.log,
    pkiA: pki.hostA,
    pkiB: pki.hostB,
    // No probes: every connection through the proxy is a channel's.
    probeIntervalMs: 0,
    tweakA: (c) => (c['channel'] = { ...channel }),
    tweakB: (c) => (c['channel'] = { ...channel }),
    hop: async (bPort) => {
      proxy = await startBreakingProxy({ target: { host: '127.0.0.1', port: bPort } });
      return proxy.port;
    },
  });
  if (!proxy) throw new Error('the proxy did not start');
  const p = proxy;
  return {
    pair,
    proxy: p,
    logs,
    close: async () => {
      await pair.stop(0);
      await p.close();
    },
  };
}

/** The one session's first channel, as `vmgate sessions` on `side` shows it. */
async function channelState(pair: LocalPair, side: 'a' | 'b'): Promise<string | undefined> {
  const sessions = await pair[side].sessions();
  return sessions[0]?.channels[0]?.state;
}

test('heal-random-breaks: 1 GiB each way arrives intact across resets of the hop at random byte offsets', { timeout: 300_000 }, async () => {
  const breaks = fc.array(fc.record({ direction: fc.constantFrom<Direction>('toServer', 'toClient'), offset: fc.integer({ min: 1 << 20, max: 96 << 20 }) }), { minLength: 3, maxLength: 5 });
  await fc.assert(
    fc.asyncProperty(breaks, async (plan) => {
      const sink: PayloadSink = await startSink(GiB);
      const { pair, proxy, logs, close } = await healPair(sink);
      try {
        const client = await connectLoopback(pair.routeAddress.port);
        const transfer = Promise.all([exchange(client, GiB), sink.next()]);
        // A failed channel shows as a reset here; the gateways' account of it is the useful part.
        transfer.catch(() => console.error(logs.find({ level: 40 }).concat(logs.find({ level: 50 })).map((l) => JSON.stringify(l)).join('\n')));
        // One break at a time: each on the connection that carries the channel then, at its own offset.
        for (const [i, b] of plan.entries()) {
          const event = await proxy.breakAt(b);
          assert.equal(event.offset, b.offset);
          await logs.waitForCount({ gateway: 'host-a', event: 'link-healed' }, i + 1, 60_000);
          await logs.waitForCount({ gateway: 'host-b', event: 'link-healed' }, i + 1, 60_000);
        }
        const [mine, theirs] = await transfer;
        assert.equal(theirs.bytesReceived, GiB);
        assert.equal(mine.bytesReceived, GiB);
        assert.equal(theirs.received, mine.sent, 'source -> destination digest');
        assert.equal(mine.received, theirs.sent, 'destination -> source digest');
        const closeA = await logs.waitFor({ gateway: 'host-a', event: 'channel-close' });
        const closeB = await logs.waitFor({ gateway: 'host-b', event: 'channel-close' });
        assert.equal(closeA['cause'], 'ok');
        assert.equal(closeB['cause'], 'ok');
        assert.equal(closeA['bytesOut'], GiB, 'each byte counted once, however often it was sent');
        assert.equal(closeB['bytesIn'], GiB);
        assert.equal(logs.find({ event: 'link-lost' }).length >= 2 * plan.length, true, 'both gateways saw every loss');
        assert.equal(proxy.stats().accepted, plan.length + 1, 'one new connection per heal');
      } finally {
        await close();
        await sink.close();
      }
    }),
    { numRuns: 1 },
  );
});

test('heal-outage: a silent hop for longer than the stall timeout heals, the stall watch waits, and sessions say healing', { timeout: 120_000 }, async () => {
  const sink = await startSink(0);
  // The outage (6 s) outlasts the stall timeout (3 s) by far; the link timeout (2 s) notices it.
  const { pair, proxy, logs, close } = await healPair(sink, { stallTimeoutMs: 3_000, linkTimeoutMs: 2_000 });
  try {
    const client = await connectLoopback(pair.routeAddress.port);
    const transfer = Promise.all([exchange(client, 64 << 20), sink.next()]);
    await waitFor(async () => ((await pair.a.sessions())[0]?.bytesOut ?? 0) > 1 << 20, { what: 'the first MiB on its way' });
    proxy.blackHole();
    const lost = await logs.waitFor({ gateway: 'host-a', event: 'link-lost' }, 20_000);
    assert.equal(lost['cause'], 'link-timeout');
    assert.equal(await channelState(pair, 'a'), 'healing');
    await waitFor(async () => (await channelState(pair, 'b')) === 'healing', { what: 'the destination to see the loss too', timeoutMs: 20_000 });
    // Hold the outage past twice the stall timeout before restoring.
    const since = Date.now();
    await waitFor(() => Date.now() - since > 6_000, { what: 'the outage to outlast the stall timeout', timeoutMs: 10_000 });
    await proxy.restore();
    const healed = await logs.waitFor({ gateway: 'host-a', event: 'link-healed' }, 30_000);
    assert.equal(Number(healed['outageMs']) >= 6_000, true);
    const [mine, theirs] = await transfer;
    assert.equal(theirs.received, mine.sent);
    assert.equal(logs.find({ event: 'session-stalled' }).length, 0, 'the stall watch never fired while healing');
    assert.equal((await logs.waitFor({ gateway: 'host-a', event: 'channel-close' }))['cause'], 'ok');
  } finally {
    await close();
    await sink.close();
  }
});

/** A destination QEMU that reads and never answers or ends: the only end a test sees is the gateways'. */
async function silentTarget(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.resume();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

test('heal-window: past channel.healWindowMs both gateways end the channel with heal-expired, and QEMU\'s socket is reset', { timeout: 60_000 }, async () => {
  const sink = await silentTarget();
  const { pair, proxy, logs, close } = await healPair(sink, { healWindowMs: 3_000 });
  try {
    const client = await connectLoopback(pair.routeAddress.port);
    const failed = new Promise<string>((resolve) => {
      client.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      client.on('end', () => resolve('end of stream'));
    });
    client.resume(); // a reader that is not reading would not notice the reset
    client.write(Buffer.alloc(1 << 20, 1));
    await waitFor(async () => ((await pair.b.sessions())[0]?.bytesIn ?? 0) > 0, { what: 'bytes at the destination' });
    await proxy.refuse();
    proxy.resetAll();
    const a = await logs.waitFor({ gateway: 'host-a', event: 'channel-close' }, 20_000);
    const b = await logs.waitFor({ gateway: 'host-b', event: 'channel-close' }, 20_000);
    assert.equal(a['cause'], 'heal-expired');
    assert.equal(b['cause'], 'heal-expired');
    assert.equal(await failed, 'ECONNRESET', 'the source QEMU sees a failed connection, not an end of stream');
  } finally {
    await close();
    await sink.close();
  }
});

test('heal-cancel: vmgate cancel ends a healing session at once', { timeout: 60_000 }, async () => {
  const sink = await silentTarget();
  const { pair, proxy, logs, close } = await healPair(sink);
  try {
    const client = await connectLoopback(pair.routeAddress.port);
    client.on('error', () => undefined);
    client.write(Buffer.alloc(1 << 20, 1));
    await waitFor(async () => ((await pair.b.sessions())[0]?.bytesIn ?? 0) > 0, { what: 'bytes at the destination' });
    await proxy.refuse();
    proxy.resetAll();
    await waitFor(async () => (await channelState(pair, 'a')) === 'healing', { what: 'the source to be healing' });
    const session = (await pair.a.sessions())[0]?.session ?? '';
    assert.equal(await pair.a.endChannels({ session }, 'cancelled', 'cancelled by the test'), 1);
    const a = await logs.waitFor({ gateway: 'host-a', event: 'channel-close' }, 5_000);
    assert.equal(a['cause'], 'cancelled');
  } finally {
    await close();
    await sink.close();
  }
});

test('heal-version-1-peer: a destination without healing (healWindowMs 0) still carries migrations, in protocol version 1', { timeout: 60_000 }, async () => {
  const sink = await startSink(1 << 20);
  const pki = await makeTestPki(join(dir, 'v1-pki'));
  const logs = captureLogs('info');
  const pair = await startLocalPair({ dir: join(dir, 'v1'), targetConnect: `tcp:127.0.0.1:${sink.port}`, log: logs.log, pkiA: pki.hostA, pkiB: pki.hostB, probeIntervalMs: 0, tweakB: (c) => (c['channel'] = { healWindowMs: 0 }) });
  try {
    const client = await connectLoopback(pair.routeAddress.port);
    const [mine, theirs] = await Promise.all([exchange(client, 8 << 20), sink.next()]);
    assert.equal(theirs.received, mine.sent);
    assert.equal(mine.received, theirs.sent);
    const open = await logs.waitFor({ gateway: 'host-a', event: 'channel-open' });
    assert.equal(open['heals'], false);
    assert.equal((await logs.waitFor({ gateway: 'host-b', event: 'channel-open' }))['version'], 1);
  } finally {
    await pair.stop(0);
    await sink.close();
  }
});

test('heal-second-path: a channel heals over the second peer address when the first fails, and comes back to the first when it returns', { timeout: 120_000 }, async () => {
  const sink = await startSink(0);
  const pki = await makeTestPki(join(dir, 'paths-pki'));
  const logs = captureLogs('info');
  const proxies: BreakingProxy[] = [];
  const pair = await startLocalPair({
    dir: join(dir, 'paths'),
    targetConnect: `tcp:127.0.0.1:${sink.port}`,
    log: logs.log,
    pkiA: pki.hostA,
    pkiB: pki.hostB,
    // The probe is what notices that the first path is back.
    probeIntervalMs: 1_000,
    hop: async (bPort) => {
      for (let i = 0; i < 2; i += 1) proxies.push(await startBreakingProxy({ target: { host: '127.0.0.1', port: bPort } }));
      return proxies[0]?.port ?? 0;
    },
    tweakA: (c) => {
      const route = (c['routes'] as Record<string, Record<string, unknown>>)['to-b'] as Record<string, unknown>;
      route['peer'] = proxies.map((p) => p.address);
    },
  });
  const [first, second] = proxies as [BreakingProxy, BreakingProxy];
  try {
    const client = await connectLoopback(pair.routeAddress.port);
    const transfer = Promise.all([exchange(client, 256 << 20), sink.next()]);
    await waitFor(async () => ((await pair.a.sessions())[0]?.bytesOut ?? 0) > 1 << 20, { what: 'the first MiB on its way' });
    await first.refuse();
    first.resetAll();
    const over = await logs.waitFor({ gateway: 'host-a', event: 'link-healed' }, 30_000);
    assert.equal(over['path'], 1, 'healed over the second address');
    const mark = logs.mark();
    await first.restore();
    const back = await logs.waitFor({ gateway: 'host-a', event: 'link-healed' }, 30_000, mark);
    assert.equal(back['path'], 0, 'back on the first address once the probe found it up');
    assert.equal(logs.find({ gateway: 'host-a', event: 'path-return' }, mark).length, 1);
    const [mine, theirs] = await transfer;
    assert.equal(theirs.received, mine.sent, 'source -> destination digest');
    assert.equal((await logs.waitFor({ gateway: 'host-a', event: 'channel-close' }))['cause'], 'ok');
    assert.ok(second.stats().toServer > 0, 'the second path carried part of the stream');
  } finally {
    await pair.stop(0);
    for (const p of proxies) await p.close();
    await sink.close();
  }
});

test('heal-peer-restarted: a destination gateway that restarted is told apart from a link that came back (peer-restarted)', { timeout: 60_000 }, async () => {
  const sink = await silentTarget();
  // host-b must come back on the same port, behind the same proxy.
  const bPort = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const port = (probe.address() as AddressInfo).port;
      probe.close(() => resolve(port));
    });
  });
  const pki = await makeTestPki(join(dir, 'restart-pki'));
  const logs = captureLogs('info');
  let proxy: BreakingProxy | undefined;
  const pair = await startLocalPair({
    dir: join(dir, 'restart'),
    targetConnect: `tcp:127.0.0.1:${sink.port}`,
    log: logs.log,
    pkiA: pki.hostA,
    pkiB: pki.hostB,
    probeIntervalMs: 0,
    tweakB: (c) => ((c['server'] as Record<string, unknown>)['listen'] = `127.0.0.1:${bPort}`),
    hop: async (port) => {
      proxy = await startBreakingProxy({ target: { host: '127.0.0.1', port } });
      return proxy.port;
    },
  });
  let b2: Gateway | undefined;
  try {
    const client = await connectLoopback(pair.routeAddress.port);
    client.on('error', () => undefined);
    client.write(Buffer.alloc(1 << 20, 1));
    await waitFor(async () => ((await pair.b.sessions())[0]?.bytesIn ?? 0) > 0, { what: 'bytes at the destination' });
    await proxy?.refuse();
    proxy?.resetAll();
    await logs.waitFor({ gateway: 'host-a', event: 'link-lost' });
    await pair.b.stop(0);
    b2 = await Gateway.start(await loadConfig(pair.configFiles.b), logs.log.child({ gateway: 'host-b' }));
    await proxy?.restore();
    const a = await logs.waitFor({ gateway: 'host-a', event: 'channel-close' }, 30_000);
    assert.equal(a['cause'], 'peer-restarted');
    assert.equal((await logs.waitFor({ gateway: 'host-a', event: 'heal-failed' }))['cause'], 'peer-restarted');
  } finally {
    await pair.a.stop(0);
    await b2?.stop(0);
    await proxy?.close();
    await sink.close();
  }
});
