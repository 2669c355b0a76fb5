/**
 * A route checks its peer ahead of any migration (PROBE): the log says when
 * the peer goes down or comes back and why, `vmgate status` and
 * `vmgate_peer_up` show the verdict, no probe ever connects the target, and
 * after a probe the first channel of a migration finds the path warm.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { statusText } from '../../src/cli/sessions.js';
import { startLocalPair, type LocalPair } from '../../src/demo/local-pair.js';
import { connectLoopback } from '../../src/demo/payload.js';
import { captureLogs, type CapturedLogs } from '../helpers/log-capture.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { scrape } from '../helpers/prometheus.js';

let dir: string;
let pki: TestPki;
let n = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmgate-probe-'));
  pki = await makeTestPki(join(dir, 'pki'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A target that counts connections: a probe must never open one. */
async function target(): Promise<{ port: number; connections: () => number; sockets: Socket[]; close: () => Promise<void> }> {
  const sockets: Socket[] = [];
  const server: Server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    s.resume();
    sockets.push(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    connections: () => sockets.length,
    sockets,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

async function pair(
  targetPort: number,
  route: Record<string, unknown>,
  o: { tweakB?: (c: Record<string, unknown>) => void; password?: string } = {},
): Promise<{ p: LocalPair; logs: CapturedLogs }> {
  const logs = captureLogs('info');
  const caseDir = join(dir, `case-${n++}`);
  const p = await startLocalPair({
    dir: caseDir,
    targetConnect: `tcp:127.0.0.1:${targetPort}`,
    log: logs.log,
    pkiA: pki.hostA,
    pkiB: pki.hostB,
    tweakA: (c) => {
      const routes = c['routes'] as Record<string, Record<string, unknown>>;
      Object.assign(routes['to-b'] as Record<string, unknown>, route);
      c['metrics'] = { listen: '127.0.0.1:0' };
      c['control'] = { socket: join(caseDir, 'a.sock') };
    },
    ...(o.tweakB ? { tweakB: o.tweakB } : {}),
  });
  return { p, logs };
}

type RouteStatus = { name: string; peer: { state: string; cause?: string; lastOk?: string } };
const peerOf = (p: LocalPair): RouteStatus['peer'] => ((p.a.status()['routes'] as RouteStatus[])[0] as RouteStatus).peer;

test('probe-up: the route reports its peer up in the log, status and metrics, without connecting the target', async () => {
  const t = await target();
  const { p, logs } = await pair(t.port, {});
  try {
    const up = await logs.waitFor({ gateway: 'host-a', event: 'peer-up' });
    assert.match(String(up['msg']), /host-b \(127\.0\.0\.1:\d+\) target incoming: reachable, authenticated and allowed/);
    assert.equal(peerOf(p).state, 'up');
    assert.ok(peerOf(p).lastOk !== undefined);
    assert.match(await statusText(join(p.dir, 'a.sock')), /route to-b \(tcp:127\.0\.0\.1:\d+\); peer up \(last check \S+\)/);
    assert.equal((await scrape(p.a.metricsAddress())).value('vmgate_peer_up', { route: 'to-b', peer: 'host-b' }), 1);
    assert.equal(t.connections(), 0, 'a probe connected the target');
    assert.equal(logs.find({ event: 'channel-refused' }).length, 0);
  } finally {
    await p.stop(0);
    await t.close();
  }
});

test('probe-warms-the-path: after a probe, the first channel of a migration resumes TLS and skips scrypt', async () => {
  const t = await target();
  const { p, logs } = await pair(t.port, {});
  try {
    await logs.waitFor({ gateway: 'host-a', event: 'peer-up' });
    const from = logs.mark();
    const s = await connectLoopback(p.routeAddress.port);
    s.write('x');
    const opened = await logs.waitFor({ gateway: 'host-a', event: 'channel-open' }, 10_000, from);
    const served = await logs.waitFor({ gateway: 'host-b', event: 'channel-open' }, 10_000, from);
    assert.equal(opened['tlsResumed'], true, 'the first channel resumed the TLS session of the probe');
    assert.equal(served['login'], 'recent', 'the login the probe verified spared the first channel its scrypt run');
    s.destroy();
  } finally {
    await p.stop(0);
    await t.close();
  }
});

test('probe-down-then-up: a wrong password is reported once with its cause, and a fixed one after reload', async () => {
  const t = await target();
  const { p, logs } = await pair(t.port, { probeIntervalMs: 1_000 });
  const passwordFile = join(p.dir, 'to-b.password');
  const good = (await import('node:fs/promises')).readFile(passwordFile, 'utf8');
  try {
    await logs.waitFor({ gateway: 'host-a', event: 'peer-up' });
    await writeFile(passwordFile, 'not-the-password\n', { mode: 0o600 });
    const before = logs.mark();
    assert.equal(await p.a.reload(), undefined);
    const down = await logs.waitFor({ gateway: 'host-a', event: 'peer-down' }, 10_000, before);
    assert.equal(down['cause'], 'auth-failed');
    assert.equal(down['level'], 40, 'a peer that refuses is a warning');
    assert.match(String(down['msg']), /a migration on this route would fail now \(auth-failed\)/);
    assert.equal(peerOf(p).state, 'down');
    assert.equal(peerOf(p).cause, 'auth-failed');
    assert.match(await statusText(join(p.dir, 'a.sock')), /route to-b \(tcp:127\.0\.0\.1:\d+\); peer DOWN since \S+ \(auth-failed\): authentication failed/);
    assert.equal((await scrape(p.a.metricsAddress())).value('vmgate_peer_up', { route: 'to-b', peer: 'host-b' }), 0);
    // Two more probes fail the same way: nothing more in the log at info or above.
    await new Promise((r) => setTimeout(r, 2_500));
    assert.equal(logs.find({ gateway: 'host-a', event: 'peer-down' }, before).length, 1, 'the same cause was logged again');
    await writeFile(passwordFile, await good, { mode: 0o600 });
    const fixed = logs.mark();
    assert.equal(await p.a.reload(), undefined);
    const back = await logs.waitFor({ gateway: 'host-a', event: 'peer-up' }, 10_000, fixed);
    assert.equal(back['was'], 'down');
    assert.match(String(back['msg']), /allowed again/);
    assert.equal(t.connections(), 0);
  } finally {
    await p.stop(0);
    await t.close();
  }
});

test('probe-target-forbidden: a peer that would refuse the target says so before any migration', async () => {
  const t = await target();
  const { p, logs } = await pair(t.port, {}, {
    tweakB: (c) => {
      const server = c['server'] as { targets: Record<string, { allow: unknown[] }> };
      (server.targets['incoming'] as { allow: unknown[] }).allow = [{ peer: 'host-a', user: 'someone-else' }];
    },
  });
  try {
    const down = await logs.waitFor({ gateway: 'host-a', event: 'peer-down' });
    assert.equal(down['cause'], 'target-forbidden');
    assert.equal(t.connections(), 0);
  } finally {
    await p.stop(0);
    await t.close();
  }
});

test('probe-peer-not-listening: a peer that is down is reported with a stable cause', async () => {
  const t = await target();
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const deadPort = (closed.address() as { port: number }).port;
  await new Promise((r) => closed.close(r));
  const { p, logs } = await pair(t.port, { peer: `127.0.0.1:${deadPort}` });
  try {
    const down = await logs.waitFor({ gateway: 'host-a', event: 'peer-down' });
    assert.equal(down['cause'], 'peer-unreachable');
    assert.match(String(down['msg']), new RegExp(`127\\.0\\.0\\.1:${deadPort}`));
  } finally {
    await p.stop(0);
    await t.close();
  }
});

test('probe-off: probeIntervalMs 0 never probes', async () => {
  const t = await target();
  const { p, logs } = await pair(t.port, { probeIntervalMs: 0 });
  try {
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(logs.find({ event: 'peer-up' }).length + logs.find({ event: 'peer-down' }).length, 0);
    assert.equal(peerOf(p).state, 'unknown');
  } finally {
    await p.stop(0);
    await t.close();
  }
});
