import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as connectUnix } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { startLocalPair, type LocalPairOptions } from '../../src/demo/local-pair.js';
import { connectLoopback, startSink } from '../../src/demo/payload.js';
import { FrameDecoder } from '../../src/control/frame-codec.js';
import { decodeMessage, MessageType } from '../../src/control/messages.js';
import { captureLogs, type CapturedLogs } from '../helpers/log-capture.js';
import { withTestPki, type TestPki } from '../helpers/pki.js';

/**
 * Every way a channel can be refused during set-up. For each: the source
 * QEMU's connection is reset (it never sees an empty "successful" stream),
 * both gateways log the same stable code, and the target is never connected.
 */
let dir: string;
let pki: TestPki;
let n = 0;

withTestPki('vmgate-refusals-', (d, p) => {
  dir = d;
  pki = p;
});

type Tweaks = Partial<Pick<LocalPairOptions, 'pkiA' | 'pkiB' | 'tweakA' | 'tweakB'>>;

/** Opens one channel through a pair built with `tweaks` and returns what each side logged. */
async function refusedChannel(tweaks: Tweaks): Promise<{ a: Record<string, unknown>; b: Record<string, unknown>; logs: CapturedLogs }> {
  const sink = await startSink(0);
  const logs = captureLogs('info');
  // No probe: each case counts what one channel's refusal logs.
  const pair = await startLocalPair({ dir: join(dir, `case-${n++}`), targetConnect: `tcp:127.0.0.1:${sink.port}`, log: logs.log, pkiA: pki.hostA, pkiB: pki.hostB, probeIntervalMs: 0, ...tweaks });
  try {
    const client = await connectLoopback(pair.routeAddress.port);
    const outcome = await new Promise<string>((resolve) => {
      client.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      client.on('end', () => resolve('end'));
      client.write('QEVM'); // what a source QEMU would start with
      client.resume();
    });
    assert.equal(outcome, 'ECONNRESET', 'the local QEMU must see a reset, not a clean end');
    const a = await logs.waitFor({ gateway: 'host-a', event: 'channel-refused' });
    const b = await logs.waitFor({ gateway: 'host-b', event: 'channel-refused' });
    assert.equal(sink.transfers.length, 0, 'the target must never be connected');
    assert.equal(logs.find({ event: 'channel-open' }).length, 0);
    return { a, b, logs };
  } finally {
    await pair.stop();
    await sink.close();
  }
}

function expectBoth(r: { a: Record<string, unknown>; b: Record<string, unknown> }, code: string): void {
  assert.equal(r.a['cause'], code, `source gateway: ${String(r.a['msg'])}`);
  assert.equal(r.b['cause'], code, `destination gateway: ${String(r.b['msg'])}`);
}

test('unknown-ca: a client certificate from another CA is refused on both sides', async () => {
  expectBoth(await refusedChannel({ pkiA: pki.otherCaHost }), 'tls-verify-failed');
});

test('wrong-peer-name: a server certificate without the expected name is refused on both sides', async () => {
  const r = await refusedChannel({ tweakA: (c) => setRoute(c, { peerName: 'host-c' }) });
  expectBoth(r, 'tls-name-mismatch');
  // The name the route expected is only in the sentence the operator reads.
  assert.match(String(r.a['msg']), /not host-c/);
});

test('revoked-client: a revoked client certificate is refused on both sides', async () => {
  expectBoth(await refusedChannel({ pkiA: pki.revoked }), 'tls-cert-revoked');
});

test('revoked-server: a revoked server certificate is refused on both sides', async () => {
  const r = await refusedChannel({ pkiB: pki.revoked, tweakA: (c) => setRoute(c, { peerName: 'host-revoked' }) });
  expectBoth(r, 'tls-cert-revoked');
});

test('wrong-password: refused with auth-failed on both sides', async () => {
  const wrong = join(dir, 'wrong.password');
  await writeFile(wrong, 'not-the-password\n', { mode: 0o600 });
  const r = await refusedChannel({ tweakA: (c) => setRoute(c, { passwordFile: wrong }) });
  expectBoth(r, 'auth-failed');
  assert.equal(r.logs.find({ gateway: 'host-b', event: 'auth-rejected', reason: 'bad-credentials', user: 'migrate' }).length, 1);
  // One meaning per field on both sides: user = the SASL user, peer = the other
  // gateway's certificate name, remote = the other end's HOST:PORT.
  assert.deepEqual([r.a['user'], r.a['peer']], ['migrate', 'host-b'], 'the source names the user and the peer it tried');
  assert.deepEqual([r.b['user'], r.b['peer']], ['migrate', 'host-a'], 'the destination names the user and the peer that tried');
  for (const line of [r.a, r.b]) assert.match(String(line['remote']), /^127\.0\.0\.1:\d+$/);
  assert.doesNotMatch(r.logs.text(), /not-the-password/, 'a password must never reach a log line');
});

test('unknown-user: refused with the same auth-failed as a wrong password, so user names cannot be probed', async () => {
  const r = await refusedChannel({ tweakA: (c) => setRoute(c, { user: 'nobody' }) });
  expectBoth(r, 'auth-failed');
  assert.equal(r.logs.find({ gateway: 'host-b', event: 'auth-rejected', reason: 'bad-credentials', user: 'nobody' }).length, 1);
});

test('target-forbidden: an identity not on the allow-list is refused on both sides', async () => {
  const r = await refusedChannel({
    tweakB: (c) => {
      const server = c['server'] as { targets: Record<string, { allow: unknown[] }> };
      const t = server.targets['incoming'];
      if (t) t.allow = [{ peer: 'host-z', user: 'migrate' }];
    },
  });
  expectBoth(r, 'target-forbidden');
});

test('target-unknown: a route naming a target the peer lacks is refused on both sides', async () => {
  expectBoth(await refusedChannel({ tweakA: (c) => setRoute(c, { target: 'elsewhere' }) }), 'target-unknown');
});

test('no-client-cert: a TLS client without a certificate is told tls-no-client-cert', async () => {
  const sink = await startSink(0);
  const logs = captureLogs('info');
  const pair = await startLocalPair({ dir: join(dir, `case-${n++}`), targetConnect: `tcp:127.0.0.1:${sink.port}`, log: logs.log, pkiA: pki.hostA, pkiB: pki.hostB });
  try {
    const port = pair.b.serverAddress()?.port ?? 0;
    const ca = readFileSync(join(pki.hostA, 'ca-cert.pem'));
    const answer = await new Promise<{ type: number; code?: unknown }>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'host-b', ALPNProtocols: ['vmgate/1'], minVersion: 'TLSv1.3' });
      const dec = new FrameDecoder();
      s.on('data', (d: Buffer) => {
        const [f] = dec.push(d);
        if (f) resolve(decodeMessage(f));
      });
      s.on('error', reject);
    });
    assert.equal(answer.type, MessageType.ERROR);
    assert.equal(answer.code, 'tls-no-client-cert');
    const b = await logs.waitFor({ gateway: 'host-b', event: 'channel-refused' });
    assert.equal(b['cause'], 'tls-no-client-cert');
    assert.equal(sink.transfers.length, 0);
  } finally {
    await pair.stop();
    await sink.close();
  }
});

test('unix-route-refused: a refused channel on a unix-socket route fails QEMU\'s connection and the gateway serves on', async () => {
  const sink = await startSink(0);
  const logs = captureLogs('info');
  const caseDir = join(dir, `case-${n++}`);
  const path = join(caseDir, 'route.sock');
  const pair = await startLocalPair({
    dir: caseDir, targetConnect: `tcp:127.0.0.1:${sink.port}`, log: logs.log, pkiA: pki.hostA, pkiB: pki.hostB,
    tweakA: (c) => setRoute(c, { listen: `unix:${path}`, target: 'elsewhere' }),
  });
  try {
    // Twice: a gateway that crashed or wedged on the first refusal would not answer the second.
    for (const attempt of [1, 2]) {
      const from = logs.find({}).length;
      const outcome = await new Promise<string>((resolve) => {
        const client = connectUnix(path);
        client.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
        client.on('end', () => resolve('end'));
        client.write('QEVM'); // unread by the gateway: discarding it is what QEMU sees as a reset
        client.resume();
      });
      assert.equal(outcome, 'ECONNRESET', `attempt ${attempt}: the local QEMU must see a failure, not a clean end`);
      const refused = await logs.waitFor({ gateway: 'host-a', event: 'channel-refused' }, 10_000, from);
      assert.equal(refused['cause'], 'target-unknown', `attempt ${attempt}: ${String(refused['msg'])}`);
    }
    assert.equal(sink.transfers.length, 0, 'the target must never be connected');
  } finally {
    await pair.stop();
    await sink.close();
  }
});

function setRoute(c: Record<string, unknown>, patch: Record<string, unknown>): void {
  const routes = c['routes'] as Record<string, Record<string, unknown>>;
  Object.assign(routes['to-b'] ?? {}, patch);
}
