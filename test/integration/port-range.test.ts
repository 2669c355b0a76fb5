/**
 * Port-range routes and targets, as libvirt uses them: QEMU migrates to a
 * port of the route's range that libvirt chose, and the channel reaches the
 * destination QEMU on the same port of the target's range. Two gateways in
 * this process over real TLS on loopback; the route listens on 127.0.0.1
 * and the "destination QEMUs" on 127.0.0.2, as one host keeps its own
 * incoming QEMUs and a route apart (docs/libvirt.md).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { adminRequest } from '../../src/admin/admin-client.js';
import { startLocalPair, writePairFiles, type LocalPair } from '../../src/demo/local-pair.js';
import { Gateway } from '../../src/daemon/gateway.js';
import { loadConfig } from '../../src/config/load.js';
import { GatewayProcess } from '../helpers/gateway-process.js';
import { connectLoopback, sendRandom } from '../../src/demo/payload.js';
import { captureLogs, type CapturedLogs } from '../helpers/log-capture.js';
import { withTestPki, type TestPki } from '../helpers/pki.js';

let dir: string;
let pki: TestPki;
let n = 0;

withTestPki('vmgate-ranges-', (d, p) => {
  dir = d;
  pki = p;
});

const TARGET_HOST = '127.0.0.2';
const PORTS = 4;

/** A stand-in destination QEMU on one port: hashes what each connection sends, in arrival order, and says which port it is. */
interface PortTarget {
  port: number;
  server: Server;
  arrivals: Array<{ tag: string; received: Promise<string>; socket: Socket }>;
}

async function listenOn(host: string, port: number, onConnection: (s: Socket) => void): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

async function portTarget(port: number): Promise<PortTarget> {
  const arrivals: PortTarget['arrivals'] = [];
  const server = await listenOn(TARGET_HOST, port, (s) => {
    s.on('error', () => undefined);
    const hash = createHash('sha256');
    const entry = { tag: '', socket: s, received: Promise.resolve('') };
    let head = '';
    entry.received = new Promise((resolve) => {
      s.on('data', (d: Buffer) => {
        if (head.length < 8) {
          head += d.subarray(0, 8 - head.length).toString('latin1');
          entry.tag = head;
          d = d.subarray(Math.min(d.length, 8));
        }
        hash.update(d);
      });
      s.on('end', () => {
        resolve(hash.digest('hex'));
        s.end();
      });
    });
    arrivals.push(entry);
  });
  return { port, server, arrivals };
}

function closeTargets(targets: readonly PortTarget[]): Promise<unknown> {
  return Promise.all(targets.map((t) => new Promise((r) => t.server.close(r))));
}

/** A block of PORTS consecutive ports free on both loopback addresses, with a target listening on each. */
async function targetsOnFreeBlock(): Promise<{ first: number; targets: PortTarget[] }> {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const first = 20_000 + Math.floor(Math.random() * 30_000);
    const targets: PortTarget[] = [];
    try {
      for (let p = first; p < first + PORTS; p += 1) {
        targets.push(await portTarget(p));
        // The route will listen on 127.0.0.1 at the same port: make sure it is free too.
        const probe = await listenOn('127.0.0.1', p, (s) => s.destroy());
        await new Promise((r) => probe.close(r));
      }
      return { first, targets };
    } catch {
      await closeTargets(targets);
    }
  }
  throw new Error('no free block of ports found');
}

async function rangePair(o: { routeRange: string; targetRange: string; probeIntervalMs?: number; channel?: Record<string, number> }): Promise<{ p: LocalPair; logs: CapturedLogs; sockA: string }> {
  const caseDir = join(dir, `case-${n++}`);
  const sockA = join(caseDir, 'a.sock');
  const logs = captureLogs('info');
  const p = await startLocalPair({
    dir: caseDir,
    targetConnect: o.targetRange,
    log: logs.log,
    pkiA: pki.hostA,
    pkiB: pki.hostB,
    ...(o.probeIntervalMs === undefined ? {} : { probeIntervalMs: o.probeIntervalMs }),
    tweakA: (c) => {
      const routes = c['routes'] as Record<string, Record<string, unknown>>;
      Object.assign(routes['to-b'] ?? {}, { listen: o.routeRange });
      c['control'] = { socket: sockA };
      if (o.channel) c['channel'] = o.channel;
    },
    ...(o.channel ? { tweakB: (c: Record<string, unknown>) => void (c['channel'] = o.channel) } : {}),
  });
  return { p, logs, sockA };
}

async function openTagged(port: number, tag: string): Promise<Socket> {
  const c = await connectLoopback(port);
  c.on('error', () => undefined);
  c.write(tag.padEnd(8, '.'), 'latin1');
  return c;
}

test('each port carries its own migration to the same port of the target range, at the same time', async () => {
  const { first, targets } = await targetsOnFreeBlock();
  const last = first + PORTS - 1;
  const { p, logs, sockA } = await rangePair({ routeRange: `tcp:127.0.0.1:${first}-${last}`, targetRange: `tcp:${TARGET_HOST}:${first}-${last}` });
  try {
    // Two migrations at once: two channels on the first port, one on the third.
    const a0 = await openTagged(first, 'a0');
    await logs.waitFor({ event: 'channel-open', channel: 0, port: first });
    const a1 = await openTagged(first, 'a1');
    const b0 = await openTagged(first + 2, 'b0');
    await logs.waitFor({ event: 'channel-open', channel: 1, port: first });
    await logs.waitFor({ event: 'channel-open', channel: 0, port: first + 2 });
    const { sessions } = await adminRequest(sockA, { op: 'sessions' });
    assert.equal(sessions.length, 2, 'two migrations, two sessions');
    const byPort = new Map(sessions.map((s) => [s.port, s]));
    assert.deepEqual(byPort.get(first)?.channels.map((c) => c.channel), [0, 1]);
    assert.deepEqual(byPort.get(first + 2)?.channels.map((c) => c.channel), [0]);
    // The bytes of each connection arrive at the target on its own port, in accept order.
    const sent = await Promise.all([a0, a1, b0].map(async (c) => {
      const r = await sendRandom(c, 2 << 20);
      c.end();
      return r.digest;
    }));
    const [t0, , t2] = targets;
    assert.deepEqual(t0?.arrivals.map((x) => x.tag), ['a0......', 'a1......']);
    assert.deepEqual(t2?.arrivals.map((x) => x.tag), ['b0......']);
    assert.deepEqual(await Promise.all([t0?.arrivals[0]?.received, t0?.arrivals[1]?.received, t2?.arrivals[0]?.received]), sent);
    assert.equal(targets[1]?.arrivals.length, 0);
  } finally {
    await p.stop();
    await closeTargets(targets);
  }
});

test('cancelling the migration on one port leaves the one on another port running', async () => {
  const { first, targets } = await targetsOnFreeBlock();
  const last = first + PORTS - 1;
  const { p, logs, sockA } = await rangePair({ routeRange: `tcp:127.0.0.1:${first}-${last}`, targetRange: `tcp:${TARGET_HOST}:${first}-${last}` });
  try {
    const doomed = await openTagged(first, 'x0');
    const kept = await openTagged(first + 1, 'y0');
    await logs.waitFor({ event: 'channel-open', port: first });
    await logs.waitFor({ event: 'channel-open', port: first + 1 });
    const { sessions } = await adminRequest(sockA, { op: 'sessions' });
    const victim = sessions.find((s) => s.port === first);
    assert.ok(victim);
    const closed = new Promise<string>((resolve) => doomed.once('close', () => resolve('closed')));
    assert.equal((await adminRequest(sockA, { op: 'cancel', session: victim.session })).cancelled, 1);
    await closed;
    const r = await sendRandom(kept, 1 << 20);
    kept.end();
    assert.equal(await targets[1]?.arrivals[0]?.received, r.digest, 'the other migration carried on intact');
    assert.equal((await logs.waitFor({ event: 'channel-close', port: first + 1 }))['cause'], 'ok');
  } finally {
    await p.stop();
    await closeTargets(targets);
  }
});

test('a route range the target range does not hold is refused with target-port-mismatch, at the probe and at OPEN', async () => {
  const { first, targets } = await targetsOnFreeBlock();
  // The target holds only the first two ports of the route's four.
  const { p, logs } = await rangePair({ routeRange: `tcp:127.0.0.1:${first}-${first + PORTS - 1}`, targetRange: `tcp:${TARGET_HOST}:${first}-${first + 1}`, probeIntervalMs: 1_000 });
  try {
    const down = await logs.waitFor({ event: 'peer-down' });
    assert.equal(down['cause'], 'target-port-mismatch');
    const c = await openTagged(first + 3, 'z0');
    const reset = new Promise<string | undefined>((resolve) => c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code)));
    const refused = await logs.waitFor({ event: 'channel-refused', port: first + 3 });
    assert.equal(refused['cause'], 'target-port-mismatch');
    assert.equal(await reset, 'ECONNRESET', 'QEMU sees its connection fail at once');
    assert.equal(targets[3]?.arrivals.length ?? 0, 0);
  } finally {
    await p.stop();
    await closeTargets(targets);
  }
});

test('a port-range route to a single-port target is refused with target-port-mismatch', async () => {
  const { first, targets } = await targetsOnFreeBlock();
  const { p, logs } = await rangePair({ routeRange: `tcp:127.0.0.1:${first}-${first + 1}`, targetRange: `tcp:${TARGET_HOST}:${first}` });
  try {
    const c = await openTagged(first, 'w0');
    c.on('error', () => undefined);
    const refused = await logs.waitFor({ event: 'channel-refused', port: first });
    assert.equal(refused['cause'], 'target-port-mismatch');
    assert.equal(targets[0]?.arrivals.length, 0, 'nothing reached the target');
  } finally {
    await p.stop();
    await closeTargets(targets);
  }
});


test('with workers, the primary listens on every port of the range and each port keeps its own session', async () => {
  const { first, targets } = await targetsOnFreeBlock();
  const last = first + PORTS - 1;
  const caseDir = join(dir, `case-${n++}`);
  const sockA = join(caseDir, 'a.sock');
  const logs = captureLogs('info');
  const files = await writePairFiles({
    dir: caseDir, targetConnect: `tcp:${TARGET_HOST}:${first}-${last}`, pkiA: pki.hostA, pkiB: pki.hostB,
    tweakA: (c) => {
      Object.assign((c['routes'] as Record<string, Record<string, unknown>>)['to-b'] ?? {}, { listen: `tcp:127.0.0.1:${first}-${last}` });
      Object.assign(c, { workers: 2, control: { socket: sockA } });
    },
  });
  const b = await Gateway.start(await loadConfig(files.fileB), logs.log.child({ gateway: 'host-b' }));
  let a: GatewayProcess | undefined;
  try {
    a = await GatewayProcess.start({ configPath: await files.writeA(b.serverAddress()?.port ?? 0), name: 'host-a' });
    const clients = [await openTagged(first + 1, 'p0'), await openTagged(first + 3, 'q0')];
    clients.push(await openTagged(first + 1, 'p1'));
    await logs.waitFor({ event: 'channel-open', port: first + 1, channel: 1 });
    await logs.waitFor({ event: 'channel-open', port: first + 3, channel: 0 });
    const { sessions } = await adminRequest(sockA, { op: 'sessions' });
    assert.deepEqual(sessions.map((s) => [s.port, s.channels.length]).sort(), [[first + 1, 2], [first + 3, 1]]);
    const sent = await Promise.all(clients.map(async (c) => {
      const r = await sendRandom(c, 1 << 20);
      c.end();
      return r.digest;
    }));
    assert.deepEqual(targets[1]?.arrivals.map((x) => x.tag), ['p0......', 'p1......']);
    assert.deepEqual(await Promise.all([targets[1]?.arrivals[0]?.received, targets[3]?.arrivals[0]?.received, targets[1]?.arrivals[1]?.received]), sent);
  } finally {
    await a?.stop();
    await b.stop();
    await closeTargets(targets);
  }
});

test('a stalled migration on one port ends alone; the one moving on another port goes on', async () => {
  const { first, targets } = await targetsOnFreeBlock();
  const last = first + PORTS - 1;
  const { p, logs } = await rangePair({ routeRange: `tcp:127.0.0.1:${first}-${last}`, targetRange: `tcp:${TARGET_HOST}:${first}-${last}`, channel: { stallTimeoutMs: 1_500 } });
  try {
    const quiet = await openTagged(first, 'q0');
    const busy = await openTagged(first + 1, 'b0');
    await logs.waitFor({ event: 'channel-open', port: first });
    await logs.waitFor({ event: 'channel-open', port: first + 1 });
    // The busy migration keeps moving bytes while the quiet one moves none.
    const pump = setInterval(() => busy.write(Buffer.alloc(4096, 7)), 100);
    let stalled: Record<string, unknown>;
    try {
      stalled = await logs.waitFor({ event: 'channel-close', port: first }, 15_000);
    } finally {
      clearInterval(pump);
    }
    assert.equal(stalled['cause'], 'stalled');
    busy.end();
    const busyEnd = await logs.waitFor({ event: 'channel-close', port: first + 1 }, 15_000);
    assert.equal(busyEnd['cause'], 'ok', 'the moving migration was not touched');
    quiet.destroy();
  } finally {
    await p.stop();
    await closeTargets(targets);
  }
});
