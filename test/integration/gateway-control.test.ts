import assert from 'node:assert/strict';
import { writeFile, stat } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { adminRequest } from '../../src/admin/admin-client.js';
import type { SessionView } from '../../src/session/session-view.js';
import { startLocalPair, type LocalPair } from '../../src/demo/local-pair.js';
import { connectLoopback, exchange, startSink } from '../../src/demo/payload.js';
import { captureLogs, type CapturedLogs } from '../helpers/log-capture.js';
import { withTestPki, type TestPki } from '../helpers/pki.js';
import { waitFor, waitUntilSteady } from '../helpers/wait-for.js';

let dir: string;
let pki: TestPki;
let n = 0;

withTestPki('vmgate-control-', (d, p) => {
  dir = d;
  pki = p;
});

/** A target that accepts and then never reads: the destination QEMU stopped (SIGSTOP). */
async function stuckTarget(): Promise<{ port: number; sockets: Socket[]; close: () => Promise<void> }> {
  const sockets: Socket[] = [];
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    s.on('error', () => undefined);
    sockets.push(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    sockets,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

async function pair(targetPort: number, channel: Record<string, unknown> = {}): Promise<{ p: LocalPair; logs: CapturedLogs; sockA: string; sockB: string }> {
  const caseDir = join(dir, `case-${n++}`);
  const sockA = join(caseDir, 'a.sock');
  const sockB = join(caseDir, 'b.sock');
  const logs = captureLogs('info');
  const p = await startLocalPair({
    dir: caseDir, targetConnect: `tcp:127.0.0.1:${targetPort}`, log: logs.log, pkiA: pki.hostA, pkiB: pki.hostB,
    tweakA: (c) => Object.assign(c, { control: { socket: sockA }, channel }),
    tweakB: (c) => Object.assign(c, { control: { socket: sockB }, channel }),
  });
  return { p, logs, sockA, sockB };
}

/** Writes until the path is full, then keeps the writer blocked; resolves with how the socket ended. */
function blockedWriter(s: Socket): Promise<string> {
  return new Promise((resolve) => {
    const chunk = Buffer.alloc(1 << 20, 1);
    const pump = (): void => {
      while (s.write(chunk)) { /* fill every buffer on the way */ }
    };
    s.on('drain', pump);
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    s.on('end', () => resolve('end'));
    s.resume();
    pump();
  });
}

test('control-socket-is-private: mode 0600 without a group', async () => {
  const target = await stuckTarget();
  const { p, sockA } = await pair(target.port);
  try {
    assert.equal((await stat(sockA)).mode & 0o777, 0o600);
  } finally {
    await p.stop(0);
    await target.close();
  }
});

test('cancel-while-destination-stuck: both legs end at once on both gateways', async () => {
  const target = await stuckTarget();
  const { p, logs, sockA } = await pair(target.port);
  try {
    const client = await connectLoopback(p.routeAddress.port);
    const ended = blockedWriter(client);
    await logs.waitFor({ gateway: 'host-b', event: 'channel-open' });
    // Every buffer on the way fills: the source is blocked once its byte count stops moving.
    const bytesOut = async (): Promise<number> => ((await adminRequest(sockA, { op: 'sessions' }))['sessions'])[0]?.bytesOut ?? 0;
    await waitFor(bytesOut, { what: 'the source gateway to send a first byte' });
    await waitUntilSteady(bytesOut, 200, { what: 'the source gateway to block on the stuck destination' });
    const sessions = (await adminRequest(sockA, { op: 'sessions' }))['sessions'];
    assert.equal(sessions.length, 1);
    const s = sessions[0] as SessionView;
    assert.ok(s.bytesOut > 0, 'the listing shows bytes moved');
    const t0 = Date.now();
    const r = await adminRequest(sockA, { op: 'cancel', session: s.session });
    assert.equal(r['cancelled'], 1);
    assert.equal(await ended, 'ECONNRESET', 'the source QEMU sees a failure, not a clean end');
    assert.ok(Date.now() - t0 < 2000, 'cancel takes effect at once');
    const a = await logs.waitFor({ gateway: 'host-a', event: 'channel-close' });
    const b = await logs.waitFor({ gateway: 'host-b', event: 'channel-close' });
    assert.equal(a['cause'], 'cancelled');
    assert.equal(b['cause'], 'cancelled', 'the destination ends its legs too, though its reading was paused');
    // Which side decided is only in the sentence the destination's operator reads.
    assert.match(String(b['msg']), /source gateway: cancelled by an operator/);
    assert.ok((a['bytesOut'] as number) > 0);
    const destinationLeg = target.sockets[0];
    assert.ok(destinationLeg);
    assert.equal(p.b.channels.size, 0);
    // A stopped QEMU only notices when it runs again: then it sees the reset.
    destinationLeg.resume();
    destinationLeg.on('error', () => undefined);
    await waitFor(() => destinationLeg.destroyed || destinationLeg.readableEnded, { what: 'the destination QEMU leg to be torn down', timeoutMs: 3_000 });
  } finally {
    await p.stop(0);
    await target.close();
  }
});

test('cancel-unknown-session: an unknown or malformed id is session-unknown, nothing else touched', async () => {
  const sink = await startSink(0);
  const { p, sockA } = await pair(sink.port);
  try {
    const unknown = (e: unknown): boolean => (e as { code?: string }).code === 'session-unknown';
    await assert.rejects(adminRequest(sockA, { op: 'cancel', session: 'f'.repeat(32) }), unknown);
    // A malformed id gets the same answer as an unknown one, not a request error.
    await assert.rejects(adminRequest(sockA, { op: 'cancel', session: '../../etc' }), unknown);
    await assert.rejects(adminRequest(sockA, { op: 'cancel', session: 'f'.repeat(32), channel: 5000 }), unknown);
    await assert.rejects(adminRequest(sockA, { op: 'frobnicate' } as never), (e: unknown) => (e as { code?: string }).code === 'request-invalid');
  } finally {
    await p.stop(0);
    await sink.close();
  }
});

test('stalled-session: a destination that stops reading ends the channel with cause stalled on both gateways', async () => {
  const target = await stuckTarget();
  const { p, logs } = await pair(target.port, { stallTimeoutMs: 800 });
  try {
    const client = await connectLoopback(p.routeAddress.port);
    const ended = blockedWriter(client);
    assert.equal(await ended, 'ECONNRESET');
    const a = await logs.waitFor({ gateway: 'host-a', event: 'channel-close' });
    const b = await logs.waitFor({ gateway: 'host-b', event: 'channel-close' });
    assert.equal(a['cause'], 'stalled');
    assert.equal(b['cause'], 'stalled');
    assert.ok((a['bytesOut'] as number) > 0, 'byte counts at the moment of the stall are logged');
  } finally {
    await p.stop(0);
    await target.close();
  }
});

test('destination-cause-reaches-the-source: a target that dies mid-stream is explained in the source log', async () => {
  const target = await stuckTarget();
  const { p, logs, sockB } = await pair(target.port);
  try {
    const client = await connectLoopback(p.routeAddress.port);
    const ended = blockedWriter(client);
    await logs.waitFor({ gateway: 'host-b', event: 'channel-open' });
    await waitFor(async () => ((await adminRequest(sockB, { op: 'sessions' }))['sessions'])[0]?.bytesIn, { what: 'the destination gateway to carry a first byte towards the target' });
    target.sockets[0]?.resetAndDestroy(); // the destination QEMU crashes mid-stream
    assert.equal(await ended, 'ECONNRESET');
    const b = await logs.waitFor({ gateway: 'host-b', event: 'channel-close' });
    const a = await logs.waitFor({ gateway: 'host-a', event: 'channel-close' });
    assert.equal(b['cause'], 'target-closed');
    assert.equal(a['cause'], 'target-closed', 'the source gateway logs the destination\'s cause');
    // The destination's target address reaches the source only in the sentence: no field carries it.
    assert.match(String(a['msg']), new RegExp(`destination: target tcp:127\\.0\\.0\\.1:${target.port}`));
  } finally {
    await p.stop(0);
    await target.close();
  }
});

test('reload-broken-cert: the gateway keeps its identity, says why, and new channels still work', async () => {
  const sink = await startSink(0);
  const { p, logs } = await pair(sink.port);
  try {
    // Break host-b's certificate on disk (a copy: the fixture dir is shared).
    const broken = join(dir, `broken-${n}.pem`);
    await writeFile(broken, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
    const cfg = p.b.config.file;
    const { readFile } = await import('node:fs/promises');
    const text = await readFile(cfg, 'utf8');
    await writeFile(cfg, text.replace(/tls:\n {2}dir: (.*)\n/, `tls:\n  dir: $1\n  cert: ${broken}\n`));
    const err = await p.b.reload();
    assert.equal(err?.code, 'identity-invalid');
    // The error names the file to fix; only the message carries the path.
    assert.match(err?.message ?? '', new RegExp(broken.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')));
    await logs.waitFor({ gateway: 'host-b', event: 'reload-failed', cause: 'identity-invalid' });
    const client = await connectLoopback(p.routeAddress.port);
    const [mine, theirs] = await Promise.all([exchange(client, 1 << 20), sink.next()]);
    assert.equal(theirs.received, mine.sent);
  } finally {
    await p.stop(0);
    await sink.close();
  }
});
