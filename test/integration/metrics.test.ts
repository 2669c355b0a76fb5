import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { startLocalPair, type LocalPair, type LocalPairOptions } from '../../src/demo/local-pair.js';
import { connectLoopback, exchange, startSink } from '../../src/demo/payload.js';
import { Gateway } from '../../src/daemon/gateway.js';
import { isVmgateError, systemCode } from '../../src/errors.js';
import { countingTarget } from '../helpers/counting-target.js';
import { captureLogs, type CapturedLogs } from '../helpers/log-capture.js';
import { renewHost, withTestPki, type TestPki } from '../helpers/pki.js';
import { get, scrape } from '../helpers/prometheus.js';

/**
 * The Prometheus listener of a real gateway pair on loopback, scraped over
 * real HTTP: byte counts equal what was sent, outcomes and refusal causes
 * carry the right labels, and /readyz follows the gateway's life.
 */
let dir: string;
let pki: TestPki;
let n = 0;

withTestPki('vmgate-metrics-', (d, p) => {
  dir = d;
  pki = p;
});

const METRICS = { listen: '127.0.0.1:0' };
const FAILURES = 'vmgate_handshake_failures_total';
const HANDSHAKES = 'vmgate_handshake_duration_seconds_count';

type Tweaks = Partial<Pick<LocalPairOptions, 'pkiA' | 'pkiB' | 'tweakA' | 'tweakB'>>;

async function pairWithMetrics(targetPort: number, tweaks: Tweaks = {}): Promise<{ p: LocalPair; logs: CapturedLogs; caseDir: string }> {
  const caseDir = join(dir, `case-${n++}`);
  const logs = captureLogs('info');
  const p = await startLocalPair({
    dir: caseDir,
    targetConnect: `tcp:127.0.0.1:${targetPort}`,
    log: logs.log,
    pkiA: pki.hostA,
    pkiB: pki.hostB,
    // No probe: the counters must show only what each case's channels did.
    probeIntervalMs: 0,
    ...tweaks,
    tweakA: (c) => {
      c['metrics'] = METRICS;
      tweaks.tweakA?.(c);
    },
    tweakB: (c) => {
      c['metrics'] = METRICS;
      tweaks.tweakB?.(c);
    },
  });
  return { p, logs, caseDir };
}

/** Opens one channel that the gateways refuse; resolves once both have logged the refusal. */
async function refusedChannel(p: LocalPair, logs: CapturedLogs): Promise<void> {
  const client = await connectLoopback(p.routeAddress.port);
  const outcome = await new Promise<string>((resolve) => {
    client.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    client.on('end', () => resolve('end'));
    client.write('QEVM');
    client.resume();
  });
  assert.equal(outcome, 'ECONNRESET');
  await logs.waitFor({ gateway: 'host-a', event: 'channel-refused' });
  await logs.waitFor({ gateway: 'host-b', event: 'channel-refused' });
}

test('bytes-and-outcomes: two channels of one session are counted with their exact bytes, outcome ok and one handshake each', async () => {
  const REPLY = 300_000;
  const sends = [1_000_000, 2_500_000];
  const sink = await startSink(REPLY);
  const { p, logs } = await pairWithMetrics(sink.port);
  try {
    // Both connect before either ends: one migration session with channels 0 and 1.
    const clients = await Promise.all(sends.map(() => connectLoopback(p.routeAddress.port)));
    const results = await Promise.all(clients.map((c, i) => exchange(c, sends[i] ?? 0)));
    assert.deepEqual(results.map((r) => r.bytesReceived), [REPLY, REPLY]);
    for (const gateway of ['host-a', 'host-b']) {
      for (const channel of [0, 1]) await logs.waitFor({ gateway, event: 'channel-close', channel });
    }
    const sent = sends[0]! + sends[1]!;
    const a = await scrape(p.a.metricsAddress());
    assert.equal(a.value('vmgate_bytes_total', { role: 'route', direction: 'to_peer' }), sent);
    assert.equal(a.value('vmgate_bytes_total', { role: 'route', direction: 'from_peer' }), 2 * REPLY);
    assert.equal(a.value('vmgate_channels_total', { role: 'route', outcome: 'ok' }), 2);
    assert.equal(a.sum('vmgate_channels_total'), 2, 'no other outcome');
    assert.equal(a.value('vmgate_sessions_total', { role: 'route', outcome: 'ok' }), 1);
    assert.equal(a.sum('vmgate_sessions_total'), 1);
    assert.equal(a.value('vmgate_channels_active', { role: 'route' }), 0);
    assert.equal(a.value('vmgate_sessions_active', { role: 'route' }), 0);
    assert.equal(a.value(HANDSHAKES, { role: 'route' }), 2);
    assert.equal(a.sum(FAILURES), 0);

    const b = await scrape(p.b.metricsAddress());
    assert.equal(b.value('vmgate_bytes_total', { role: 'server', direction: 'from_peer' }), sent);
    assert.equal(b.value('vmgate_bytes_total', { role: 'server', direction: 'to_peer' }), 2 * REPLY);
    assert.equal(b.sum('vmgate_bytes_total', { role: 'route' }), 0, 'host-b has no route traffic');
    assert.equal(b.value('vmgate_channels_total', { role: 'server', outcome: 'ok' }), 2);
    assert.equal(b.value('vmgate_sessions_total', { role: 'server', outcome: 'ok' }), 1);
    assert.equal(b.value(HANDSHAKES, { role: 'server' }), 2);
    assert.equal(b.sum(FAILURES), 0);
  } finally {
    await p.stop();
    await sink.close();
  }
});

test('live-bytes: a channel in flight shows its bytes at scrape time, and keeps them once it ends', async () => {
  const N = 777_777;
  const target = await countingTarget();
  const { p, logs } = await pairWithMetrics(target.port);
  try {
    const client = await connectLoopback(p.routeAddress.port);
    client.on('error', () => undefined); // reset by the cleanup if an assertion fails
    client.resume();
    client.write(Buffer.alloc(N, 5));
    await target.received(N);
    const during = await scrape(p.a.metricsAddress());
    assert.equal(during.value('vmgate_bytes_total', { role: 'route', direction: 'to_peer' }), N);
    assert.equal(during.value('vmgate_channels_active', { role: 'route' }), 1);
    assert.equal(during.value('vmgate_sessions_active', { role: 'route' }), 1);
    assert.equal(during.value('vmgate_channels_total', { role: 'route', outcome: 'ok' }), 0);
    const duringB = await scrape(p.b.metricsAddress());
    assert.equal(duringB.value('vmgate_bytes_total', { role: 'server', direction: 'from_peer' }), N);
    assert.equal(duringB.value('vmgate_channels_active', { role: 'server' }), 1);

    client.end();
    await logs.waitFor({ gateway: 'host-a', event: 'channel-close' });
    const afterEnd = await scrape(p.a.metricsAddress());
    assert.equal(afterEnd.value('vmgate_bytes_total', { role: 'route', direction: 'to_peer' }), N);
    assert.equal(afterEnd.value('vmgate_channels_active', { role: 'route' }), 0);
    assert.equal(afterEnd.value('vmgate_channels_total', { role: 'route', outcome: 'ok' }), 1);
    assert.equal(afterEnd.value('vmgate_sessions_total', { role: 'route', outcome: 'ok' }), 1);
  } finally {
    await p.stop();
    await target.close();
  }
});

test('cancelled-session: a channel ended by its peer is counted under its cause on both gateways', async () => {
  const target = await countingTarget();
  const { p, logs } = await pairWithMetrics(target.port);
  try {
    const client = await connectLoopback(p.routeAddress.port);
    client.on('error', () => undefined); // the cancel resets it
    client.resume();
    client.write('QEVM');
    await target.received(4);
    assert.equal(p.b.channels.abortAll('cancelled', 'cancelled by the test'), 1);
    await logs.waitFor({ gateway: 'host-a', event: 'channel-close' });
    await logs.waitFor({ gateway: 'host-b', event: 'channel-close' });
    const a = await scrape(p.a.metricsAddress());
    const b = await scrape(p.b.metricsAddress());
    assert.equal(b.value('vmgate_channels_total', { role: 'server', outcome: 'cancelled' }), 1);
    assert.equal(b.value('vmgate_sessions_total', { role: 'server', outcome: 'cancelled' }), 1);
    // host-a saw a reset and asked host-b why (REPORT): the same cause.
    assert.equal(a.value('vmgate_channels_total', { role: 'route', outcome: 'cancelled' }), 1);
    assert.equal(a.value('vmgate_sessions_total', { role: 'route', outcome: 'cancelled' }), 1);
    assert.equal(a.value('vmgate_channels_total', { role: 'route', outcome: 'ok' }), 0);
  } finally {
    await p.stop();
    await target.close();
  }
});

test('auth-failed-counted: a wrong password is counted under auth-failed on both gateways, and no handshake is timed', async () => {
  const sink = await startSink(0);
  const wrong = join(dir, 'wrong.password');
  await writeFile(wrong, 'not-the-password\n', { mode: 0o600 });
  const { p, logs } = await pairWithMetrics(sink.port, {
    tweakA: (c) => Object.assign((c['routes'] as Record<string, Record<string, unknown>>)['to-b'] ?? {}, { passwordFile: wrong }),
  });
  try {
    await refusedChannel(p, logs);
    const a = await scrape(p.a.metricsAddress());
    const b = await scrape(p.b.metricsAddress());
    assert.equal(a.value(FAILURES, { role: 'route', cause: 'auth-failed' }), 1);
    assert.equal(a.sum(FAILURES), 1, 'counted once');
    assert.equal(b.value(FAILURES, { role: 'server', cause: 'auth-failed' }), 1);
    assert.equal(b.sum(FAILURES), 1, 'counted once');
    assert.equal(a.value(HANDSHAKES, { role: 'route' }), 0);
    assert.equal(b.value(HANDSHAKES, { role: 'server' }), 0);
    assert.equal(a.sum('vmgate_channels_total'), 0, 'a refused channel never reached its data phase');
  } finally {
    await p.stop();
    await sink.close();
  }
});

test('unknown-ca-counted: a client certificate from another CA is counted under tls-verify-failed on both gateways', async () => {
  const sink = await startSink(0);
  const { p, logs } = await pairWithMetrics(sink.port, { pkiA: pki.otherCaHost });
  try {
    await refusedChannel(p, logs);
    const a = await scrape(p.a.metricsAddress());
    const b = await scrape(p.b.metricsAddress());
    assert.equal(a.value(FAILURES, { role: 'route', cause: 'tls-verify-failed' }), 1);
    assert.equal(b.value(FAILURES, { role: 'server', cause: 'tls-verify-failed' }), 1);
    assert.equal(b.sum(FAILURES), 1, 'counted once');
  } finally {
    await p.stop();
    await sink.close();
  }
});

test('readyz-follows-the-gateway: 503 before the listeners open, 200 while serving; healthz 200; other paths 404', async () => {
  const sink = await startSink(0);
  const { p, logs } = await pairWithMetrics(sink.port);
  // A second host-b from the same config (ports 0), stopped between loading and opening.
  const g = await Gateway.load(await loadConfig(p.configFiles.b), logs.log.child({ gateway: 'host-b2' }));
  try {
    const early = await get(g.metricsAddress(), '/readyz');
    assert.equal(early.status, 503);
    assert.equal(early.body, 'starting: the gateway listeners are not open yet\n');
    assert.equal(g.serverAddress(), undefined, 'nothing listens for peers yet');
    assert.deepEqual(await get(g.metricsAddress(), '/healthz'), { status: 200, body: 'ok\n', contentType: 'text/plain; charset=utf-8' });
    await g.open();
    assert.deepEqual(await get(g.metricsAddress(), '/readyz'), { status: 200, body: 'ready\n', contentType: 'text/plain; charset=utf-8' });
    // Once a loaded certificate has expired, the gateway cannot serve: peers would refuse it.
    const serverCert = new X509Certificate(await readFile(join(pki.hostB, 'server-cert.pem')));
    const afterExpiry = new Date(Date.parse(serverCert.validTo) + 1000);
    // The /readyz body is the product: the sentence a monitor shows the operator.
    assert.match(g.notReady(afterExpiry) ?? '', /^certificate .*server-cert\.pem \(CN=host-b\) has expired; renew it and reload \(SIGHUP\)$/);
    const metrics = await get(g.metricsAddress(), '/metrics');
    assert.equal(metrics.status, 200);
    assert.equal(metrics.contentType, 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal((await get(g.metricsAddress(), '/')).status, 404);
    assert.equal((await get(g.metricsAddress(), '/metrics/extra')).status, 404);
    assert.equal((await get(g.metricsAddress(), '/metrics', 'POST')).status, 405);
  } finally {
    await g.stop();
    await p.stop();
    await sink.close();
  }
});

test('readyz-while-draining: 503 once SIGTERM-style stop begins with a channel in flight; the listener closes when stopped', async () => {
  const target = await countingTarget();
  const { p, logs } = await pairWithMetrics(target.port);
  const addr = p.b.metricsAddress();
  try {
    const client = await connectLoopback(p.routeAddress.port);
    client.on('error', () => undefined); // reset by the cleanup if an assertion fails
    client.resume();
    client.write('QEVM');
    await target.received(4);
    assert.equal((await get(addr, '/readyz')).status, 200);
    const stopping = p.b.stop(30_000);
    const draining = await get(addr, '/readyz');
    assert.equal(draining.status, 503);
    assert.equal(draining.body, 'draining: the gateway is shutting down and takes no new channels\n');
    assert.equal((await get(addr, '/healthz')).status, 200, 'alive while draining');
    client.end();
    await logs.waitFor({ gateway: 'host-b', event: 'channel-close' });
    await stopping;
    await assert.rejects(get(addr, '/healthz'), 'the metrics listener is closed once the gateway has stopped');
  } finally {
    await p.stop();
    await target.close();
  }
});

test('reload-updates-expiry: the expiry gauges show each loaded certificate, and a reload replaces them', async () => {
  const sink = await startSink(0);
  const { p, caseDir } = await pairWithMetrics(sink.port);
  try {
    const notAfter = async (file: string): Promise<number> => Math.floor(Date.parse(new X509Certificate(await readFile(file)).validTo) / 1000);
    const before = await scrape(p.b.metricsAddress());
    const EXPIRY = 'vmgate_certificate_expiry_timestamp_seconds';
    assert.equal(before.value(EXPIRY, { cert: 'server' }), await notAfter(join(pki.hostB, 'server-cert.pem')));
    assert.equal(before.value(EXPIRY, { cert: 'client' }), await notAfter(join(pki.hostB, 'client-cert.pem')));
    assert.equal(before.value(EXPIRY, { cert: 'ca', subject: 'CN=vmgate test CA' }), await notAfter(join(pki.hostB, 'ca-cert.pem')));

    // Renewed: a host-b certificate that ends in 10 days, in a new directory the config now names.
    const renewedAt = new Date(Math.floor(Date.now() / 1000 + 10 * 86_400) * 1000);
    const renewed = join(caseDir, 'pki-b-renewed');
    await renewHost(pki, renewed, 'host-b', renewedAt);
    const config = parse(await readFile(p.configFiles.b, 'utf8')) as { tls: { dir: string } };
    config.tls.dir = renewed;
    await writeFile(p.configFiles.b, stringify(config));
    assert.equal(await p.b.reload(), undefined);

    const afterReload = await scrape(p.b.metricsAddress());
    assert.equal(afterReload.value(EXPIRY, { cert: 'server' }), renewedAt.getTime() / 1000);
    assert.equal(afterReload.value(EXPIRY, { cert: 'client' }), renewedAt.getTime() / 1000);
    assert.equal(afterReload.samples.filter((s) => s.name === EXPIRY).length, 3, 'one series per loaded certificate, the old ones dropped');
  } finally {
    await p.stop();
    await sink.close();
  }
});

test('build-info: one series with the package version and the Node.js version', async () => {
  const sink = await startSink(0);
  const { p } = await pairWithMetrics(sink.port);
  try {
    const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    const s = await scrape(p.a.metricsAddress());
    assert.equal(s.value('vmgate_build_info', { version: pkg.version, node: process.version }), 1);
  } finally {
    await p.stop();
    await sink.close();
  }
});

test('metrics-port-taken: a metrics address in use stops the start with listen-failed naming metrics.listen, and nothing is left listening', async () => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const port = (taken.address() as { port: number }).port;
  const logs = captureLogs('info');
  try {
    await assert.rejects(
      startLocalPair({ dir: join(dir, `case-${n++}`), targetConnect: 'tcp:127.0.0.1:9', log: logs.log, pkiA: pki.hostA, pkiB: pki.hostB, tweakB: (c) => (c['metrics'] = { listen: `127.0.0.1:${port}` }) }),
      (e: unknown) => {
        assert.ok(isVmgateError(e), String(e));
        assert.equal(e.code, 'listen-failed');
        assert.deepEqual(e.detail, { key: 'metrics.listen', address: `127.0.0.1:${port}` });
        assert.equal(systemCode(e.cause), 'EADDRINUSE');
        return true;
      },
    );
    assert.equal(logs.find({ event: 'ready' }).length, 0, 'no gateway listener was opened');
  } finally {
    await new Promise((r) => taken.close(r));
  }
});
