import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { CredentialStore } from '../../src/auth/credential-store.js';
import { loadConfig } from '../../src/config/load.js';
import { connectLoopback } from '../../src/demo/payload.js';
import { Gateway } from '../../src/daemon/gateway.js';
import { countingTarget } from '../helpers/counting-target.js';
import { GatewayProcess } from '../helpers/gateway-process.js';
import { captureLogs } from '../helpers/log-capture.js';
import { renewHost, withTestPki, type TestPki } from '../helpers/pki.js';
import { get, scrape } from '../helpers/prometheus.js';

/**
 * The daemon as an operator runs it (`vmgate run`, a real process): SIGHUP
 * moves the certificate expiry gauge, SIGTERM turns /readyz to 503 while a
 * migration drains, and the process exits 0 once it has finished.
 */
let dir: string;
let pki: TestPki;

withTestPki('vmgate-metrics-process-', (d, p) => {
  dir = d;
  pki = p;
});

function hostPort(text: unknown): { host: string; port: number } {
  const m = /(?:^|[:/])([\d.]+):(\d+)$/.exec(String(text));
  assert.ok(m, `no HOST:PORT in ${String(text)}`);
  return { host: m[1] as string, port: Number(m[2]) };
}

test('daemon-signals: SIGHUP updates the expiry gauge; SIGTERM makes /readyz 503 while a channel drains, then exits 0', async () => {
  const target = await countingTarget();
  const password = 'a-test-password-for-metrics';
  const store = CredentialStore.empty();
  await store.setPassword('migrate', password);
  await store.save(join(dir, 'users.json'));
  await writeFile(join(dir, 'to-b.password'), `${password}\n`, { mode: 0o600 });
  const configB = {
    name: 'host-b',
    tls: { dir: pki.hostB },
    server: { listen: '127.0.0.1:0', credentials: './users.json', targets: { incoming: { connect: `tcp:127.0.0.1:${target.port}`, allow: [{ peer: 'host-a', user: 'migrate' }] } } },
    metrics: { listen: '127.0.0.1:0' },
    channel: { shutdownGraceMs: 60_000 },
  };
  const fileB = join(dir, 'host-b.yaml');
  await writeFile(fileB, stringify(configB));
  const b = await GatewayProcess.start({ configPath: fileB, name: 'host-b' });
  const logs = captureLogs('info');
  let a: Gateway | undefined;
  try {
    const ready = b.logsWhere((l) => l.event === 'ready')[0];
    const metrics = hostPort(ready?.['metrics']);
    const fileA = join(dir, 'host-a.yaml');
    await writeFile(fileA, stringify({
      name: 'host-a',
      tls: { dir: pki.hostA },
      routes: { 'to-b': { listen: 'tcp:127.0.0.1:0', peer: `127.0.0.1:${hostPort(ready?.['server']).port}`, peerName: 'host-b', target: 'incoming', user: 'migrate', passwordFile: './to-b.password' } },
    }));
    a = await Gateway.start(await loadConfig(fileA), logs.log);
    const client = await connectLoopback(hostPort(a.routeAddress('to-b')).port);
    client.on('error', () => undefined); // reset by the cleanup if an assertion fails
    client.resume();
    client.write('QEVM');
    await target.received(4);
    assert.equal((await scrape(metrics)).value('vmgate_channels_active', { role: 'server' }), 1);

    const renewedAt = new Date(Math.floor(Date.now() / 1000 + 20 * 86_400) * 1000);
    const renewed = join(dir, 'pki-b-renewed');
    await renewHost(pki, renewed, 'host-b', renewedAt);
    await writeFile(fileB, stringify({ ...configB, tls: { dir: renewed } }));
    process.kill(b.pid, 'SIGHUP');
    await b.waitForLog((l) => l.event === 'reloaded', 10_000);
    assert.equal((await scrape(metrics)).value('vmgate_certificate_expiry_timestamp_seconds', { cert: 'server' }), renewedAt.getTime() / 1000);

    assert.equal((await get(metrics, '/readyz')).status, 200);
    process.kill(b.pid, 'SIGTERM');
    await b.waitForLog((l) => l.event === 'draining', 10_000);
    const draining = await get(metrics, '/readyz');
    assert.equal(draining.status, 503);
    assert.equal(draining.body, 'draining: the gateway is shutting down and takes no new channels\n');
    client.end();
    assert.deepEqual(await b.exited, { code: 0, signal: null });
    assert.equal(b.logsWhere((l) => l.event === 'channel-close')[0]?.['cause'], 'ok', 'the migration in flight finished during the drain');
  } finally {
    await a?.stop();
    await b.stop();
    await target.close();
  }
});
