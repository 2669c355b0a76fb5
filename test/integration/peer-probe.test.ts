/**
 * A route checks its peer ahead of any migration (PROBE): the log says when
 * the peer goes down or comes back and why, `vmgate status` and
 * `vmgate_peer_up` show the verdict, no probe ever connects the target, and
 * after a probe the first channel of a migration finds the path warm.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { ControlChannel } from '../../src/control/control-channel.js';
import { MessageType } from '../../src/control/messages.js';
import { VmgateError } from '../../src/errors.js';
import { ALPN_PROTOCOL } from '../../src/tls/identity.js';
import { statusText } from '../../src/cli/sessions.js';
import type { PeerProbeStatus } from '../../src/route/peer-probe.js';
import { startLocalPair, type LocalPair } from '../../src/demo/local-pair.js';
import { connectLoopback } from '../../src/demo/payload.js';
import { captureLogs, type CapturedLogs } from '../helpers/log-capture.js';
import { withTestPki, type TestPki } from '../helpers/pki.js';
import { runCli } from '../helpers/gateway-process.js';
import { scrape } from '../helpers/prometheus.js';
import { quietFor, waitFor, within } from '../helpers/wait-for.js';
import { cliCode } from '../helpers/assert-code.js';

let dir: string;
let pki: TestPki;
let n = 0;

withTestPki('vmgate-probe-', (d, p) => {
  dir = d;
  pki = p;
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
  route: Record<string, unknown> | ((r: Record<string, unknown>) => void),
  o: { tweakB?: (c: Record<string, unknown>) => void; password?: string; logLevel?: string } = {},
): Promise<{ p: LocalPair; logs: CapturedLogs }> {
  const logs = captureLogs(o.logLevel ?? 'info');
  const caseDir = join(dir, `case-${n++}`);
  const p = await startLocalPair({
    dir: caseDir,
    targetConnect: `tcp:127.0.0.1:${targetPort}`,
    log: logs.log,
    pkiA: pki.hostA,
    pkiB: pki.hostB,
    tweakA: (c) => {
      const routes = c['routes'] as Record<string, Record<string, unknown>>;
      const r = routes['to-b'] as Record<string, unknown>;
      if (typeof route === 'function') route(r);
      else Object.assign(r, route);
      c['metrics'] = { listen: '127.0.0.1:0' };
      c['control'] = { socket: join(caseDir, 'a.sock') };
    },
    ...(o.tweakB ? { tweakB: o.tweakB } : {}),
  });
  return { p, logs };
}

const peerOf = async (p: LocalPair): Promise<PeerProbeStatus> => {
  const peer = (await p.a.status()).routes[0]?.peer;
  assert.ok(peer, 'the route has a peer verdict in vmgate status');
  return peer;
};

test('probe-up: the route reports its peer up in the log, status and metrics, without connecting the target', async () => {
  const t = await target();
  const { p, logs } = await pair(t.port, {});
  try {
    const up = await logs.waitFor({ gateway: 'host-a', event: 'peer-up' });
    // Text is the product: the line names peer, address and target for the operator; no field carries them.
    assert.match(String(up['msg']), /host-b \(127\.0\.0\.1:\d+\) target incoming: reachable, authenticated and allowed/);
    assert.equal((await peerOf(p)).state, 'up');
    assert.ok((await peerOf(p)).lastOk !== undefined);
    // `vmgate status` text is what the operator reads (the fields are asserted through status() above).
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
  // At debug level every probe that fails again is logged, so the test can wait for them.
  const { p, logs } = await pair(t.port, { probeIntervalMs: 1_000 }, { logLevel: 'debug' });
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
    assert.equal((await peerOf(p)).state, 'down');
    assert.equal((await peerOf(p)).cause, 'auth-failed');
    // `vmgate status` text is what the operator reads: the verdict, since when, the code and the reason.
    assert.match(await statusText(join(p.dir, 'a.sock')), /route to-b \(tcp:127\.0\.0\.1:\d+\); peer DOWN since \S+ \(auth-failed\): authentication failed/);
    assert.equal((await scrape(p.a.metricsAddress())).value('vmgate_peer_up', { route: 'to-b', peer: 'host-b' }), 0);
    // Two more probes fail the same way: logged at debug only, nothing more at info or above.
    const again = await logs.waitForCount({ gateway: 'host-a', event: 'peer-down', cause: 'auth-failed', level: 20 }, 2, 10_000, before);
    assert.equal(again.length, 2);
    const loud = logs.find({ gateway: 'host-a', event: 'peer-down' }, before).filter((l) => (l['level'] as number) >= 30);
    assert.equal(loud.length, 1, 'the same cause was logged again at info or above');
    await writeFile(passwordFile, await good, { mode: 0o600 });
    const fixed = logs.mark();
    assert.equal(await p.a.reload(), undefined);
    const back = await logs.waitFor({ gateway: 'host-a', event: 'peer-up' }, 10_000, fixed);
    assert.equal(back['was'], 'down');
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
    // The address that did not answer is only in the sentence the operator reads.
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
    // An enabled probe runs at once on start; prove that none does within a second.
    await quietFor(1_000);
    assert.equal(logs.find({ event: 'peer-up' }).length + logs.find({ event: 'peer-down' }).length, 0);
    assert.equal((await peerOf(p)).state, 'unknown');
  } finally {
    await p.stop(0);
    await t.close();
  }
});

/** A "peer gateway" with host-b's certificate that completes TLS, HELLO and SASL, then never answers. */
async function silentPeer(): Promise<{ port: number; held: TLSSocket[]; probes: () => number; close: () => Promise<void> }> {
  const f = (name: string): Promise<Buffer> => readFile(join(pki.hostB, name));
  const held: TLSSocket[] = [];
  let probes = 0;
  const silent = createTlsServer({ ca: await f('ca-cert.pem'), cert: await f('server-cert.pem'), key: await f('server-key.pem'), requestCert: true, minVersion: 'TLSv1.3', ALPNProtocols: [ALPN_PROTOCOL] }, (s) => {
    held.push(s);
    s.on('error', () => undefined);
    const ctrl = new ControlChannel(s, (e) => new VmgateError('internal', String(e)), [MessageType.PROBE]);
    void (async () => {
      await ctrl.expect(MessageType.HELLO);
      ctrl.send({ type: MessageType.WELCOME, version: 1, mechanisms: ['PLAIN'] });
      await ctrl.expect(MessageType.AUTH);
      ctrl.send({ type: MessageType.AUTH_OK, user: 'migrate' });
      await ctrl.expect(MessageType.PROBE);
      probes += 1; // the route now waits for PROBED, which never comes
    })().catch(() => undefined);
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  return {
    port: (silent.address() as { port: number }).port,
    held,
    probes: () => probes,
    close: async () => {
      for (const s of held) s.destroy();
      await new Promise((r) => silent.close(r));
    },
  };
}

test('probe-unanswered: a peer that logs the route in and then never answers PROBE is reported, and probing goes on', async () => {
  const t = await target();
  const silent = await silentPeer();
  const { p, logs } = await pair(t.port, { peer: `127.0.0.1:${silent.port}`, probeIntervalMs: 1_000, connectTimeoutMs: 500 });
  try {
    const down = await logs.waitFor({ gateway: 'host-a', event: 'peer-down' });
    assert.equal(down['cause'], 'handshake-timeout');
    // handshake-timeout covers several phases: the sentence names the phase and the limit the operator set.
    assert.match(String(down['msg']), /did not complete the control handshake within 500 ms/);
    // The hung probe did not stop the schedule: more probes arrive.
    await waitFor(() => silent.held.length >= 3, { what: 'three probes at the silent peer (one per second)', timeoutMs: 5_000, detail: () => `${silent.held.length} arrived` });
  } finally {
    await p.stop(0);
    await silent.close();
    await t.close();
  }
});

test('probe-stop-abandons: stopping the gateway ends a probe in flight at once, so a dead peer cannot hold the process up', async () => {
  const t = await target();
  const silent = await silentPeer();
  const { p } = await pair(t.port, { peer: `127.0.0.1:${silent.port}`, connectTimeoutMs: 60_000 });
  try {
    await waitFor(() => silent.probes() >= 1, { what: 'the probe to send PROBE to the silent peer' });
    const probe = silent.held[0];
    assert.ok(probe, 'a PROBE arrived on no held connection');
    // The probe is now waiting for PROBED, which never comes.
    const closed = new Promise<number>((resolve) => probe.once('close', () => resolve(Date.now())));
    const stopAt = Date.now();
    await p.stop(0);
    const after = (await within(closed, 3_000, "the probe's connection to close after stop")) - stopAt;
    assert.ok(after < 2_000, `the probe's connection was still open ${after} ms after stop`);
  } finally {
    await p.stop(0);
    await silent.close();
    await t.close();
  }
});

test('check-config-peers: vmgate check-config --peers asks each route\'s peer once and says what a migration would meet', async () => {
  const t = await target();
  const { p } = await pair(t.port, { probeIntervalMs: 0 });
  try {
    const ok = await runCli(['check-config', '--as', 'root', '--peers', p.configFiles.a]);
    assert.equal(ok.code, 0, ok.stderr);
    // check-config's report is text for the operator: the text is the product.
    assert.match(ok.stdout, /route to-b: peer host-b \(127\.0\.0\.1:\d+\) target incoming: reachable, authenticated and allowed \(\d+ ms\)/);
    const plain = await runCli(['check-config', '--as', 'root', p.configFiles.a]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.doesNotMatch(plain.stdout, /reachable/, 'without --peers nothing is contacted');

    await writeFile(join(p.dir, 'to-b.password'), 'not-the-password\n', { mode: 0o600 });
    const refused = await runCli(['check-config', '--as', 'root', '--peers', p.configFiles.a]);
    assert.equal(refused.code, 1);
    assert.match(refused.stdout, /route to-b: .*a migration on this route would fail now \(auth-failed\): authentication failed/);
    assert.equal(cliCode(refused.stderr), 'auth-failed', refused.stderr);
    assert.ok(refused.stderr.includes('route to-b'), `the error does not name the route: ${refused.stderr}`);
    assert.doesNotMatch(refused.stdout + refused.stderr, /not-the-password/, 'the password appears in the output');
    assert.equal(t.connections(), 0, 'check-config connected the target');
  } finally {
    await p.stop(0);
    await t.close();
  }
});

/**
 * Two paths to host-b: 127.0.0.2 at host-b's port first, where nothing
 * listens (host-b holds 127.0.0.1 only), as a network that is down; then
 * the real address. Returns the two addresses.
 */
function deadFirst(probeIntervalMs: number): { tweak: (r: Record<string, unknown>) => void; addresses: () => [string, string] } {
  let real = '';
  return {
    tweak: (r) => {
      real = String(r['peer']);
      r['peer'] = [real.replace('127.0.0.1:', '127.0.0.2:'), real];
      r['probeIntervalMs'] = probeIntervalMs;
    },
    addresses: () => [real.replace('127.0.0.1:', '127.0.0.2:'), real],
  };
}

test('probe-paths: each path has its own verdict in the log, status, status --json and vmgate_peer_up', async () => {
  const t = await target();
  const paths = deadFirst(30_000);
  const { p, logs } = await pair(t.port, paths.tweak);
  const [dead, real] = paths.addresses();
  try {
    const down = await logs.waitFor({ gateway: 'host-a', event: 'peer-down' });
    assert.equal(down['cause'], 'peer-unreachable');
    assert.equal(down['path'], 0);
    assert.equal(down['address'], dead);
    const up = await logs.waitFor({ gateway: 'host-a', event: 'peer-up' });
    assert.equal(up['path'], 1);
    assert.equal(up['address'], real);
    // Text is the product: the down line says that channels take the other path.
    assert.match(String(down['msg']), /path 1 of 2 .*unusable \(peer-unreachable\).*channels take path 2/);

    const peer = await peerOf(p);
    assert.equal(peer.state, 'up', 'one path up: a migration would get through');
    assert.deepEqual(peer.paths.map((q) => [q.address, q.state, q.cause]), [[dead, 'down', 'peer-unreachable'], [real, 'up', undefined]]);
    assert.ok(peer.paths.every((q) => q.lastChecked !== undefined));

    const socket = join(p.dir, 'a.sock');
    const json = await runCli(['status', '--json', '--socket', socket]);
    assert.equal(json.code, 0, json.stderr);
    const routes = (JSON.parse(json.stdout) as { routes: Array<{ peer: PeerProbeStatus }> }).routes;
    assert.deepEqual(routes[0]?.peer.paths.map((q) => [q.address, q.state, q.cause]), [[dead, 'down', 'peer-unreachable'], [real, 'up', undefined]]);
    // `vmgate status` text is what the operator reads: a line per path under the route.
    const text = await statusText(socket);
    assert.match(text, /route to-b \(tcp:127\.0\.0\.1:\d+\); peer up/);
    assert.ok(text.includes(`    path 1 ${dead}: DOWN since `) && text.includes('(peer-unreachable)'), text);
    assert.ok(text.includes(`    path 2 ${real}: up (last check `), text);

    const metrics = await scrape(p.a.metricsAddress());
    assert.equal(metrics.value('vmgate_peer_up', { route: 'to-b', peer: 'host-b', path: dead }), 0);
    assert.equal(metrics.value('vmgate_peer_up', { route: 'to-b', peer: 'host-b', path: real }), 1);
    assert.equal(t.connections(), 0, 'a probe connected the target');
  } finally {
    await p.stop(0);
    await t.close();
  }
});

test('check-config-peers-paths: vmgate check-config --peers checks and prints every path of a route', async () => {
  const t = await target();
  const paths = deadFirst(0);
  const { p } = await pair(t.port, paths.tweak);
  const [dead, real] = paths.addresses();
  try {
    const r = await runCli(['check-config', '--as', 'root', '--peers', p.configFiles.a]);
    // check-config's report is text for the operator: the text is the product.
    assert.ok(r.stdout.includes(`route to-b: peer host-b path 1 of 2 (${dead}) target incoming: a channel over this path would fail now (peer-unreachable)`), r.stdout);
    assert.match(r.stdout, new RegExp(`route to-b: peer host-b path 2 of 2 \\(${real.replace(/\./g, '\\.')}\\) target incoming: reachable, authenticated and allowed \\(\\d+ ms\\)`));
    assert.ok(r.stdout.includes(`-> ${dead}, else ${real} (host-b)`), r.stdout);
    assert.equal(r.code, 1, 'a path that does not work fails the check');
    assert.equal(cliCode(r.stderr), 'peer-unreachable', r.stderr);
    assert.equal(t.connections(), 0, 'check-config connected the target');
  } finally {
    await p.stop(0);
    await t.close();
  }
});
