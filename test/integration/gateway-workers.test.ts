/**
 * `workers: 2` on both gateways, as real processes (the built CLI) with real
 * TLS on loopback: one session's channels are spread over worker processes,
 * yet the destination connects them in the source's accept order, data
 * arrives intact both ways, and the control socket, reload, cancel and a
 * worker crash all act across workers.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { adminRequest } from '../../src/admin/admin-client.js';
import type { SessionView } from '../../src/session/session-view.js';
import { connectLoopback, receiveAll, sendRandom } from '../../src/demo/payload.js';
import { GatewayProcess, addUser, runCli, writeGatewayConfig, writeSecretFile, type GatewayLogLine } from '../helpers/gateway-process.js';
import { makeTestPki } from '../helpers/pki.js';
import { cliCode } from '../helpers/assert-code.js';
import { get, scrape } from '../helpers/prometheus.js';
import { waitFor } from '../helpers/wait-for.js';

const TAG_BYTES = 16;
const CHANNELS = 4;

/** What the destination target saw on one connection, in connection order. */
interface Arrival {
  tag: string;
  /** sha256 of everything after the tag, once the sender ended. */
  received: Promise<{ digest: string; bytes: number }>;
  sent: Promise<{ digest: string; bytes: number }>;
  socket: Socket;
}

/**
 * A stand-in for the destination QEMU that records the order its connections
 * arrive in and the tag each one starts with, then hashes the rest and,
 * once the sender has ended, answers with `replyBytes` random bytes.
 */
async function recordingTarget(replyBytes: number): Promise<{ server: Server; port: number; arrivals: Arrival[]; tagged: (n: number) => Promise<Arrival[]> }> {
  const arrivals: Arrival[] = [];
  const tagWaiters = new Set<() => void>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    let head = Buffer.alloc(0);
    const hash = createHash('sha256');
    let bytes = 0;
    const arrival: Partial<Arrival> & { socket: Socket } = { socket: s, tag: '' };
    arrivals.push(arrival as Arrival);
    arrival.received = new Promise((resolve, reject) => {
      s.on('data', (d: Buffer) => {
        if (head.length < TAG_BYTES) {
          head = Buffer.concat([head, d]);
          if (head.length < TAG_BYTES) return;
          arrival.tag = head.subarray(0, TAG_BYTES).toString('latin1');
          for (const w of tagWaiters) w();
          d = head.subarray(TAG_BYTES);
        }
        bytes += d.length;
        hash.update(d);
      });
      s.on('end', () => resolve({ digest: hash.digest('hex'), bytes }));
      s.on('error', reject);
    });
    arrival.received.catch(() => undefined);
    // Answers once the sender is done, so that an idle channel stays open
    // with nothing in flight; a sender that ends after its tag alone gets no
    // answer and no end (like a QEMU that waits for more).
    arrival.sent = arrival.received.then(async (got) => {
      if (got.bytes === 0) return new Promise<never>(() => undefined);
      const r = await sendRandom(s, replyBytes);
      s.end();
      return r;
    });
    arrival.sent.catch(() => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const tagged = (n: number): Promise<Arrival[]> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (arrivals.filter((a) => a.tag !== '').length < n) return;
        clearTimeout(timer);
        tagWaiters.delete(check);
        resolve(arrivals);
      };
      const timer = setTimeout(() => reject(new Error(`only ${arrivals.filter((a) => a.tag !== '').length} of ${n} tagged connections arrived`)), 15_000);
      tagWaiters.add(check);
      check();
    });
  return { server, port: (server.address() as { port: number }).port, arrivals, tagged };
}

let dir: string;
let gwA: GatewayProcess;
let gwB: GatewayProcess;
let target: Awaited<ReturnType<typeof recordingTarget>>;
let routePort: number;
let sockA: string;
let sockB: string;
let routeUnix: string;
let metricsB: { host: string; port: number };
let caseNo = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmgate-workers-'));
  const pki = await makeTestPki(join(dir, 'pki'));
  target = await recordingTarget(1 << 20);
  const password = randomBytes(18).toString('base64url');
  await addUser({ store: join(dir, 'users.json'), user: 'migrate', password });
  await writeSecretFile(join(dir, 'to-b.password'), password);
  sockA = join(dir, 'a.sock');
  sockB = join(dir, 'b.sock');
  routeUnix = join(dir, 'to-b.sock');
  await writeGatewayConfig(join(dir, 'b.yaml'), {
    name: 'host-b',
    workers: 2,
    tls: { dir: pki.hostB },
    control: { socket: sockB },
    metrics: { listen: '127.0.0.1:0' },
    server: {
      listen: '127.0.0.1:0',
      credentials: './users.json',
      targets: { incoming: { connect: `tcp:127.0.0.1:${target.port}`, allow: [{ peer: 'host-a', user: 'migrate' }] } },
    },
  });
  gwB = await GatewayProcess.start({ configPath: join(dir, 'b.yaml'), name: 'host-b' });
  const readyB = await gwB.waitForLog((l) => l.event === 'ready', 1);
  const m = /^http:\/\/(.+):(\d+)$/.exec(String(readyB['metrics']));
  metricsB = { host: m?.[1] ?? '', port: Number(m?.[2]) };
  await writeGatewayConfig(join(dir, 'a.yaml'), {
    name: 'host-a',
    workers: 2,
    tls: { dir: pki.hostA },
    control: { socket: sockA },
    routes: {
      'to-b': { listen: 'tcp:127.0.0.1:0', peer: String(readyB['server']), peerName: 'host-b', target: 'incoming', user: 'migrate', passwordFile: './to-b.password' },
      'to-b-unix': { listen: `unix:${routeUnix}`, peer: String(readyB['server']), peerName: 'host-b', target: 'incoming', user: 'migrate', passwordFile: './to-b.password' },
    },
  });
  gwA = await GatewayProcess.start({ configPath: join(dir, 'a.yaml'), name: 'host-a' });
  const readyA = await gwA.waitForLog((l) => l.event === 'ready', 1);
  const routes = readyA['routes'] as Array<{ listen: string }>;
  routePort = Number(/:(\d+)$/.exec(routes[0]?.listen ?? '')?.[1]);
});

after(async () => {
  const exits = await Promise.all([gwA?.stop(10_000), gwB?.stop(10_000)]);
  for (const a of target?.arrivals ?? []) a.socket.destroy();
  await new Promise((r) => target?.server.close(r));
  await rm(dir, { recursive: true, force: true });
  // A clean stop of a primary and its workers is part of the contract.
  for (const [i, exit] of exits.entries()) assert.deepEqual(exit, { code: 0, signal: null }, [gwA, gwB][i]?.diagnostics());
});

/** Opens `n` channels one after the other (each accepted before the next), each starting with its tag. */
/** Waits until neither gateway carries a channel; says what was left if that does not come. */
async function bothIdle(): Promise<void> {
  const idle = async (sock: string): Promise<boolean> => (await adminRequest(sock, { op: 'sessions' }))['sessions'].length === 0;
  await waitFor(async () => (await idle(sockA)) && (await idle(sockB)), { what: 'the previous case to end on both gateways', timeoutMs: 30_000 }).catch(async (e: unknown) => {
    // Which channels are left, and how they got there, is what a failure here needs.
    const left = { a: (await adminRequest(sockA, { op: 'sessions' }))['sessions'], b: (await adminRequest(sockB, { op: 'sessions' }))['sessions'] };
    const lines = [...gwA.logs, ...gwB.logs].filter((l) => (l.level ?? 0) >= 40).slice(-20);
    throw new Error(`${String(e)}; left: ${JSON.stringify(left)}; last warnings: ${lines.map((l) => JSON.stringify(l)).join('\n')}`);
  });
}

async function openTagged(n: number): Promise<{ clients: Socket[]; tags: string[]; from: number }> {
  // A case's connections must be channels 0..n-1 of a session of their own: the last
  // case's channels finish their END/ACK exchange just after their clients saw the end.
  await bothIdle();
  const run = `case${caseNo++}`;
  const clients: Socket[] = [];
  const tags: string[] = [];
  const from = target.arrivals.length;
  for (let k = 0; k < n; k += 1) {
    const c = await connectLoopback(routePort);
    c.on('error', () => undefined);
    const tag = `${run}-ch${k}`.padEnd(TAG_BYTES, '.');
    c.write(tag, 'latin1');
    clients.push(c);
    tags.push(tag);
  }
  await target.tagged(from + n);
  return { clients, tags, from };
}

/** Reads (a socket that does not read never learns of a reset) and resolves with how the socket ended. */
function howItEnds(c: Socket): Promise<string> {
  return new Promise<string>((resolve) => {
    c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    c.on('end', () => resolve('end'));
    c.on('close', () => resolve('closed'));
    c.resume();
  });
}

const events = (gw: GatewayProcess, event: string, from: number): GatewayLogLine[] => gw.logs.slice(from).filter((l) => l.event === event);

test('four-channels-across-workers: data intact both ways, at least two worker pids per gateway, destination connects in source order', async () => {
  const fromA = gwA.logs.length;
  const fromB = gwB.logs.length;
  const { clients, tags, from } = await openTagged(CHANNELS);
  // The destination connected its target in the order the source accepted.
  assert.deepEqual(target.arrivals.slice(from).map((a) => a.tag), tags, 'destination connection order differs from source accept order');

  const cli = await runCli(['sessions', '--json', '--socket', sockA]);
  assert.equal(cli.code, 0, cli.stderr);
  const view = JSON.parse(cli.stdout) as SessionView[];
  assert.equal(view.length, 1, 'one session on the source');
  const source = view[0] as SessionView;
  assert.deepEqual(source.channels.map((c) => c.channel), [0, 1, 2, 3]);
  assert.ok(new Set(source.channels.map((c) => c.pid)).size >= 2, `source channels ran in one process: ${JSON.stringify(source.channels)}`);
  assert.ok(!source.channels.some((c) => c.pid === gwA.pid), 'no channel runs in the primary');

  const transfers = await Promise.all(clients.map(async (c) => {
    const [sent, received] = await Promise.all([sendRandom(c, 8 << 20), receiveAll(c)]);
    return { sent, received };
  }));
  for (const [k, t] of transfers.entries()) {
    const arrival = target.arrivals[from + k] as Arrival;
    assert.deepEqual(await arrival.received, t.sent, `channel ${k}: source -> destination bytes differ`);
    assert.deepEqual(await arrival.sent, t.received, `channel ${k}: destination -> source bytes differ`);
  }
  const closesA = await gwA.waitForLogs((l) => l.event === 'channel-close', CHANNELS, 10_000, fromA);
  const closesB = await gwB.waitForLogs((l) => l.event === 'channel-close', CHANNELS, 10_000, fromB);
  assert.deepEqual([...closesA, ...closesB].map((l) => l['cause']), new Array(2 * CHANNELS).fill('ok'));
  for (const [gw, closes] of [[gwA, closesA], [gwB, closesB]] as const) {
    const pids = new Set(closes.map((l) => l['pid']));
    assert.ok(pids.size >= 2, `${gw.name}: channels logged by one process only: ${[...pids].join(', ')}`);
    assert.ok(!pids.has(gw.pid), `${gw.name}: a channel was carried by the primary`);
  }
  assert.equal(new Set([...closesA, ...closesB].map((l) => l['session'])).size, 1, 'one session on both gateways');
  assert.deepEqual(events(gwB, 'channel-refused', fromB), []);

  // One /metrics for the gateway, summed over its workers.
  const s = await scrape(metricsB);
  assert.equal(s.value('vmgate_channels_total', { role: 'server', outcome: 'ok' }), CHANNELS);
  assert.equal(s.value('vmgate_bytes_total', { role: 'server', direction: 'from_peer' }), closesB.reduce((n, l) => n + Number(l['bytesIn']), 0));
  assert.equal(s.sum('vmgate_build_info'), 1, 'one build, not one per worker');
  assert.equal((await get(metricsB, '/readyz')).status, 200);
});

/**
 * Whether a destination worker resumes a TLS session another destination worker issued (the
 * workers share the primary's ticket keys). Both gateways hand connections out round robin
 * (2 workers each). Channel 1 goes from source worker a to destination worker x, and a keeps
 * x's ticket. A stray connection to the destination takes y's turn; channel 2 (source worker a')
 * lands on x, channel 3 (a again) on y: y must resume a ticket that x issued.
 */
async function resumesAcrossWorkers(): Promise<void> {
  const serverB = /^(.+):(\d+)$/.exec(String(gwB.logs.find((l) => l.event === 'ready')?.['server']));
  const fromA = gwA.logs.length;
  const fromB = gwB.logs.length;
  const run = `case${caseNo++}`;
  const clients: Socket[] = [];
  const open = async (k: number): Promise<GatewayLogLine> => {
    const c = await connectLoopback(routePort);
    c.on('error', () => undefined);
    c.write(`${run}-ch${k}`.padEnd(TAG_BYTES, '.'), 'latin1');
    clients.push(c);
    const opens = await gwB.waitForLogs((l) => l.event === 'channel-open', k + 1, 10_000, fromB);
    return opens[k] as GatewayLogLine;
  };
  const first = await open(0);
  const stray = connect({ host: serverB?.[1] ?? '', port: Number(serverB?.[2]) });
  stray.on('error', () => undefined);
  await new Promise<void>((resolve) => stray.once('connect', () => resolve()));
  // The primary accepts in arrival order, so the stray takes its turn before
  // channel 2's connection; kept open until channel 3 is in, it cannot be
  // dropped before a worker got it.
  await open(1);
  const third = await open(2);
  stray.destroy();
  const aOpens = await gwA.waitForLogs((l) => l.event === 'channel-open', 3, 10_000, fromA);
  // A short exchange both ways ends the session cleanly before the next test.
  await Promise.all(clients.map((c) => Promise.all([sendRandom(c, 1 << 16), receiveAll(c)])));
  await gwA.waitForLogs((l) => l.event === 'channel-close', 3, 10_000, fromA);
  await gwB.waitForLogs((l) => l.event === 'channel-close', 3, 10_000, fromB);
  assert.equal(aOpens[2]?.['pid'], aOpens[0]?.['pid'], 'the test needs channels 1 and 3 from the same source worker');
  assert.notEqual(third['pid'], first['pid'], 'the test needs channel 3 on the other destination worker');
  assert.equal(third['tlsResumed'], true, 'a destination worker could not resume a ticket the other worker issued');
}

test('resumption-across-workers: a destination worker resumes a session another worker issued (keys shared from the start)', async () => {
  await resumesAcrossWorkers();
});

test('cancel-across-workers: one cancel on the source ends every channel of the session in every worker of both gateways', async () => {
  const fromA = gwA.logs.length;
  const fromB = gwB.logs.length;
  const { clients } = await openTagged(CHANNELS);
  const view = (await adminRequest(sockA, { op: 'sessions' }))['sessions'];
  const session = view[0] as SessionView;
  assert.ok(new Set(session.channels.map((c) => c.pid)).size >= 2);
  const ended = clients.map(howItEnds);
  const r = await adminRequest(sockA, { op: 'cancel', session: session.session });
  assert.equal(r['cancelled'], CHANNELS);
  assert.deepEqual(await Promise.all(ended), new Array(CHANNELS).fill('ECONNRESET'), 'every source connection sees a failure');
  // Only this session's lines: the previous test's channels may still be closing on host-b.
  const ofSession = (l: GatewayLogLine): boolean => l.event === 'channel-close' && l['session'] === session.session;
  const closesA = await gwA.waitForLogs(ofSession, CHANNELS, 10_000, fromA);
  const closesB = await gwB.waitForLogs(ofSession, CHANNELS, 10_000, fromB);
  assert.deepEqual(closesA.map((l) => l['cause']), new Array(CHANNELS).fill('cancelled'));
  assert.deepEqual(closesB.map((l) => l['cause']), new Array(CHANNELS).fill('cancelled'), 'the ABORT reached the destination channels in every worker');
  assert.ok(new Set(closesB.map((l) => l['pid'])).size >= 2);
  const after = (await adminRequest(sockB, { op: 'sessions' }))['sessions'];
  assert.deepEqual(after, []);
});

test('unix-route-through-workers: a unix socket handed to a worker carries data intact both ways and stays private', async () => {
  assert.equal((await stat(routeUnix)).mode & 0o777, 0o600, 'the primary applies the route socket mode');
  const from = target.arrivals.length;
  const c = await new Promise<Socket>((resolve, reject) => {
    const s = connect({ path: routeUnix, allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });
  c.write('unix-route'.padEnd(TAG_BYTES, '.'), 'latin1');
  const [sent, received] = await Promise.all([sendRandom(c, 4 << 20), receiveAll(c)]);
  await target.tagged(from + 1);
  const arrival = target.arrivals[from] as Arrival;
  assert.deepEqual(await arrival.received, sent);
  assert.deepEqual(await arrival.sent, received);
});

test('reload-reaches-every-worker: SIGHUP to the primary reloads each worker', async () => {
  const from = gwB.logs.length;
  process.kill(gwB.pid, 'SIGHUP');
  const done = await gwB.waitForLog((l) => l.event === 'reload-done' && gwB.logs.indexOf(l) >= from, 10_000);
  assert.equal(done['workers'], 2);
  assert.equal(done['failed'], 0);
  const reloaded = events(gwB, 'reloaded', from);
  assert.equal(new Set(reloaded.map((l) => l['pid'])).size, 2, 'each worker logged its reload');
});

test('reload-over-the-control-socket: vmgate reload waits for every worker and says so', async () => {
  const from = gwB.logs.length;
  const r = await runCli(['reload', '--socket', sockB]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(events(gwB, 'reload-done', from)[0]?.['failed'], 0, 'the answer came after every worker reloaded');
  assert.equal(new Set(events(gwB, 'reloaded', from).map((l) => l['pid'])).size, 2);
});

test('refused-reload-stops-at-the-primary: no worker reloads, the answer carries the code, the gateway keeps serving', async () => {
  const store = join(dir, 'users.json');
  const good = await readFile(store);
  await writeFile(store, '{ not json', { mode: 0o600 });
  try {
    const from = gwB.logs.length;
    const r = await runCli(['reload', '--socket', sockB]);
    assert.equal(r.code, 1);
    assert.equal(cliCode(r.stderr), 'credentials-invalid');
    const failed = events(gwB, 'reload-failed', from);
    assert.equal(failed.length, 1, 'the primary refused the reload once, for every worker');
    assert.equal(failed[0]?.['process'], 'primary');
    assert.deepEqual(events(gwB, 'reloaded', from), [], 'no worker took any part of it');
  } finally {
    await writeFile(store, good, { mode: 0o600 });
  }
  await resumesAcrossWorkers();
});

test('resumption-across-workers-after-reload: after a reload every destination worker has the same new keys', async () => {
  await resumesAcrossWorkers();
});

test('worker-crash: killing one worker ends only its channels, with cause worker-exited, and a replacement starts', async () => {
  const fromA = gwA.logs.length;
  const fromB = gwB.logs.length;
  const { clients } = await openTagged(CHANNELS);
  const status = await adminRequest(sockA, { op: 'status' });
  const workers = status['workers'] as Array<{ pid: number; channels: number }>;
  assert.equal(workers.length, 2);
  const view = ((await adminRequest(sockA, { op: 'sessions' }))['sessions'])[0] as SessionView;
  const victim = view.channels[0]?.pid ?? -1;
  const doomed = view.channels.filter((c) => c.pid === victim).map((c) => c.channel);
  const survivors = view.channels.filter((c) => c.pid !== victim).map((c) => c.channel);
  assert.ok(doomed.length > 0 && survivors.length > 0, `channels not spread: ${JSON.stringify(view.channels)}`);

  const doomedEnds = doomed.map((k) => howItEnds(clients[k] as Socket));
  process.kill(victim, 'SIGKILL');
  const exited = await gwA.waitForLog((l) => l.event === 'worker-exited' && l['workerPid'] === victim, 10_000);
  assert.equal(exited['pid'], gwA.pid, 'the primary logs the crash');
  assert.equal(exited['channels'], doomed.length);
  assert.equal(exited['how'], 'killed by SIGKILL');
  const closes = await gwA.waitForLogs((l) => l.event === 'channel-close' && l['workerPid'] === victim, doomed.length, 10_000, fromA);
  assert.deepEqual(closes.map((l) => l['channel']).sort(), [...doomed].sort());
  assert.deepEqual(closes.map((l) => l['cause']), doomed.map(() => 'worker-exited'));
  // The destination cannot tell the dead worker's bare FIN from a clean end: the primary's ABORT says why.
  const session = view.session;
  const closesB = await gwB.waitForLogs((l) => l.event === 'channel-close' && l['session'] === session, doomed.length, 10_000, fromB);
  assert.deepEqual(closesB.map((l) => l['channel']).sort(), [...doomed].sort());
  for (const l of closesB) {
    assert.equal(l['cause'], 'worker-exited', JSON.stringify(l));
    // Only the sentence tells the destination's operator which source worker died: no field carries it.
    assert.match(String(l['msg']), new RegExp(`source gateway: worker process ${victim} .*exited unexpectedly \\(killed by SIGKILL\\)`));
  }

  // The surviving channels still carry data, both ways, intact.
  const from = target.arrivals.length - CHANNELS;
  for (const k of survivors) {
    const c = clients[k] as Socket;
    const [sent, received] = await Promise.all([sendRandom(c, 2 << 20), receiveAll(c)]);
    const arrival = target.arrivals[from + k] as Arrival;
    assert.deepEqual(await arrival.received, sent, `surviving channel ${k} lost data`);
    assert.deepEqual(await arrival.sent, received);
  }
  // The kernel closes a dead process's sockets: with nothing unread that is a FIN, else a reset.
  for (const how of await Promise.all(doomedEnds)) assert.ok(['end', 'ECONNRESET'].includes(how), `a channel of the dead worker ended with ${how}`);

  const started = await gwA.waitForLog((l) => l.event === 'worker-started', 10_000);
  const now = (await adminRequest(sockA, { op: 'status' }))['workers'] as Array<{ pid: number }>;
  assert.equal(now.length, 2);
  assert.ok(now.some((w) => w.pid === started['workerPid']) && !now.some((w) => w.pid === victim));
  // `vmgate status` text is what the operator reads (the admin reply is asserted above).
  const statusCli = await runCli(['status', '--socket', sockA]);
  assert.match(statusCli.stdout, new RegExp(`workers: pid \\d+ \\(\\d+ channel\\(s\\)\\), pid \\d+`));
  assert.match(statusCli.stdout, new RegExp(`pid ${String(started['workerPid'])} `));
  // Every worker probes the peer; the primary shows the verdict (the replacement's first probe may still be running).
  assert.match(statusCli.stdout, /route to-b \(tcp:127\.0\.0\.1:\d+\); peer (up|not checked yet)/);
});

test('workers-probe-the-peer: each worker process probes its route, and status shows the peer up', async () => {
  const ups = await gwA.waitForLogs((l) => l.event === 'peer-up' && l['route'] === 'to-b', 2, 10_000);
  assert.ok(new Set(ups.map((l) => l['pid'])).size >= 2, `peer-up from ${JSON.stringify(ups.map((l) => l['pid']))}`);
  const status = await adminRequest(sockA, { op: 'status' });
  const route = (status['routes'] as Array<{ name: string; peer?: { state: string } }>).find((r) => r.name === 'to-b');
  assert.equal(route?.peer?.state, 'up');
});

test('destination-worker-crash: killing a destination worker ends only its channels there, cause worker-exited, and the others carry on', async () => {
  const fromB = gwB.logs.length;
  const { clients } = await openTagged(CHANNELS);
  const from = target.arrivals.length - CHANNELS;
  const view = ((await adminRequest(sockB, { op: 'sessions' }))['sessions'])[0] as SessionView;
  const victim = view.channels[0]?.pid ?? -1;
  const doomed = view.channels.filter((c) => c.pid === victim).map((c) => c.channel);
  const survivors = view.channels.filter((c) => c.pid !== victim).map((c) => c.channel);
  assert.ok(doomed.length > 0 && survivors.length > 0, `channels not spread: ${JSON.stringify(view.channels)}`);

  process.kill(victim, 'SIGKILL');
  const exited = await gwB.waitForLog((l) => l.event === 'worker-exited' && l['workerPid'] === victim, 10_000);
  assert.equal(exited['pid'], gwB.pid, 'the primary logs the crash');
  assert.equal(exited['channels'], doomed.length);
  const closes = await gwB.waitForLogs((l) => l.event === 'channel-close' && l['workerPid'] === victim, doomed.length, 10_000, fromB);
  assert.deepEqual(closes.map((l) => l['channel']).sort(), [...doomed].sort());
  assert.deepEqual(closes.map((l) => l['cause']), doomed.map(() => 'worker-exited'));

  for (const k of survivors) {
    const c = clients[k] as Socket;
    const [sent, received] = await Promise.all([sendRandom(c, 2 << 20), receiveAll(c)]);
    const arrival = target.arrivals[from + k] as Arrival;
    assert.deepEqual(await arrival.received, sent, `surviving channel ${k} lost data`);
    assert.deepEqual(await arrival.sent, received);
  }
  for (const k of doomed) (clients[k] as Socket).destroy();
  await gwB.waitForLog((l) => l.event === 'worker-started' && gwB.logs.indexOf(l) >= fromB, 10_000);
  // The source's side of the dead worker's channels heals in vain and ends (worker-exited
  // from the end record, or heal-unknown once no worker has held them for 10 s): the
  // gateways are then idle for the stop that follows.
  await bothIdle();
});
