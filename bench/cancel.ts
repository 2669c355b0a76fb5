/**
 * Does `vmgate cancel` end a stalled migration about as fast as QEMU's own
 * `migrate_cancel` (issue 17)? Both are measured side by side, rounds
 * alternating, on loopback:
 *
 *   vmgate   Two `vmgate run` processes (3072-bit RSA, control sockets on),
 *            a "source QEMU" that writes until every buffer is full and a
 *            target that accepts and never reads (a stopped destination QEMU).
 *            Once the session's byte count stands still, `vmgate cancel
 *            SESSION --socket A` is spawned as its own process, as an
 *            operator would run it. Timed from the spawn until the source's
 *            connection sees its reset ("reset"), and until the CLI has
 *            exited ("cli-exit"); "at-gateway" is when the source gateway
 *            logged the cancel (its log's ms clock), the CLI's share.
 *            "qemu-failed": the same, with a real QEMU migrating through the
 *            pair, until its query-migrate says "failed".
 *   qemu     A real QEMU (random guest RAM, so nothing fits in a socket
 *            buffer) migrating over plain TCP to a listener that accepts and
 *            never reads. Once ram.transferred stands still, `migrate_cancel`
 *            goes over the already open QMP connection. Timed until its reply
 *            ("reply") and until query-migrate says "cancelled" ("cancelled",
 *            polled back to back). "socat": migrate_cancel sent by a socat
 *            process on a second QMP monitor, until "cancelled".
 *   node     A bare `node -e 0`: the floor under any Node.js CLI.
 *
 *   npm run build && node dist/bench/cancel.js [--rounds 7] [--key-bits 3072]
 *
 * Prints median / min / max in milliseconds and the ratios of the medians.
 * Not a test, never asserts: timings on a shared machine are noisy. The QEMU
 * figure has no process start in it (the QMP connection is open, as libvirt's
 * is); the vmgate figure has a whole Node.js process start in it.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { adminRequest } from '../src/admin/admin-client.js';
import { makeLocalPki, writePairFiles } from '../src/demo/local-pair.js';
import { connectLoopback } from '../src/demo/payload.js';
import { CLI_PATH, GatewayProcess } from '../test/helpers/gateway-process.js';
import { DEFAULT_MAX_BANDWIDTH, QemuVm, randomGuestImage } from '../test/helpers/qemu.js';
import { waitFor, waitUntilSteady } from '../test/helpers/wait-for.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    'key-bits': { type: 'string', default: '3072' },
  },
});
const rounds = Number(args.rounds);
const keyBits = Number(args['key-bits']);
/** A counter that has not moved for this long belongs to a writer blocked on full buffers. */
const STEADY_MS = 300;
const TIMEOUT_MS = 30_000;

const msSince = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

/** A TCP listener that accepts and never reads: the destination QEMU that stopped. */
interface StuckListener {
  server: Server;
  port: number;
  sockets: Socket[];
  /** Drops what the last round left connected. */
  clear(): void;
}

async function stuckListener(): Promise<StuckListener> {
  const sockets: Socket[] = [];
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    s.on('error', () => undefined);
    sockets.push(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return { server, port, sockets, clear: () => void sockets.splice(0).forEach((s) => s.destroy()) };
}

/** Writes until every buffer on the way is full and stays blocked; resolves with the hrtime of the socket's end. */
function blockedWriter(s: Socket): Promise<bigint> {
  return new Promise((resolve) => {
    const chunk = Buffer.alloc(1 << 20, 1);
    const pump = (): void => {
      while (!s.destroyed && s.write(chunk)) { /* fill every buffer on the way */ }
    };
    const ended = (): void => resolve(process.hrtime.bigint());
    s.on('drain', pump);
    s.on('error', ended);
    s.on('end', ended);
    s.on('close', ended);
    s.resume();
    pump();
  });
}

interface Pair {
  a: GatewayProcess;
  b: GatewayProcess;
  routePort: number;
  sockA: string;
  stop(): Promise<void>;
}

async function startPair(dir: string, pki: { hostA: string; hostB: string }, targetPort: number): Promise<Pair> {
  const sockA = join(dir, 'a.sock');
  const files = await writePairFiles({
    dir, targetConnect: `tcp:127.0.0.1:${targetPort}`, pkiA: pki.hostA, pkiB: pki.hostB,
    tweakA: (c) => Object.assign(c, { control: { socket: sockA } }),
    tweakB: (c) => Object.assign(c, { control: { socket: join(dir, 'b.sock') } }),
  });
  const b = await GatewayProcess.start({ configPath: files.fileB, name: 'host-b' });
  const bPort = Number(/:(\d+)$/.exec(String(b.logs.find((l) => l.event === 'ready')?.['server']))?.[1]);
  const a = await GatewayProcess.start({ configPath: await files.writeA(bPort), name: 'host-a' });
  const routes = a.logs.find((l) => l.event === 'ready')?.['routes'] as Array<{ listen: string }>;
  const routePort = Number(/:(\d+)$/.exec(routes[0]?.listen ?? '')?.[1]);
  return { a, b, routePort, sockA, stop: async () => void (await Promise.all([a.stop(), b.stop()])) };
}

interface VmgateSample { atGateway: number; reset: number; cliExit: number }

/**
 * Once the pair's one session stands still, spawns `vmgate cancel SESSION`;
 * resolves with the spawn's hrtime and wall-clock time, the session id and
 * a promise of the CLI's exit hrtime.
 */
async function cancelByCli(pair: Pair): Promise<{ t0: bigint; wall0: number; id: string; exited: Promise<bigint> }> {
  const session = async (): Promise<{ session: string; bytesOut: number } | undefined> => (await adminRequest(pair.sockA, { op: 'sessions' })).sessions[0];
  // A session that moved bytes first: a missing session would look "steady" too.
  await waitFor(async () => ((await session())?.bytesOut ?? 0) > 0, { what: 'the source gateway to relay a first byte', timeoutMs: TIMEOUT_MS });
  await waitUntilSteady(async () => (await session())?.bytesOut ?? -1, STEADY_MS, { what: 'the source gateway to block on the stuck target', timeoutMs: TIMEOUT_MS });
  const id = (await session())?.session;
  if (id === undefined) throw new Error('the pair lists no session for the stalled channel');
  const wall0 = Date.now();
  const t0 = process.hrtime.bigint();
  const cli = spawn(process.execPath, [CLI_PATH, 'cancel', id, '--socket', pair.sockA], { stdio: ['ignore', 'ignore', 'inherit'] });
  return { t0, wall0, id, exited: new Promise<bigint>((resolve) => cli.once('exit', () => resolve(process.hrtime.bigint()))) };
}

/** (a) A stalled socket client through the pair, ended by a `vmgate cancel` process. */
async function vmgateRound(pair: Pair, target: StuckListener): Promise<VmgateSample> {
  const client = await connectLoopback(pair.routePort);
  const ended = blockedWriter(client);
  const from = pair.a.logs.length;
  const { t0, wall0, id, exited } = await cancelByCli(pair);
  const [resetAt, exitAt] = await Promise.all([ended, exited]);
  // The gateway's own log line (ms resolution): how much of the time the CLI spent before its request arrived.
  const [logged] = await pair.a.waitForLogs((l) => l.event === 'cancelled' && l['session'] === id, 1, TIMEOUT_MS, from);
  client.destroy();
  target.clear();
  const loggedAt = typeof logged?.time === 'number' ? logged.time : Date.parse(String(logged?.time));
  return { atGateway: loggedAt - wall0, reset: Number(resetAt - t0) / 1e6, cliExit: Number(exitAt - t0) / 1e6 };
}

/** Resolves once `vm`'s migration has sent bytes and then stood still (blocked in a write). */
async function waitStalled(vm: QemuVm): Promise<void> {
  const transferred = async (): Promise<number> => {
    const info = await vm.qmp.queryMigrate();
    if (info.status === 'setup') return 0;
    if (info.status !== 'active') throw new Error(`migration is "${info.status ?? 'none'}" before it stalled (${info['error-desc'] ?? ''})`);
    return info.ram?.transferred ?? 0;
  };
  await waitFor(transferred, { what: 'the source QEMU to send a first byte', timeoutMs: TIMEOUT_MS });
  await waitUntilSteady(transferred, STEADY_MS, { what: 'the source QEMU to block on the stuck listener', timeoutMs: TIMEOUT_MS });
}

/** Polls query-migrate back to back (each is one QMP round trip, a fraction of a ms) until `status`; ms since t0. */
async function msUntilStatus(vm: QemuVm, status: string, t0: bigint): Promise<number> {
  for (;;) {
    const now = (await vm.qmp.queryMigrate()).status;
    if (now === status) return msSince(t0);
    if (msSince(t0) > TIMEOUT_MS) throw new Error(`QEMU still "${now ?? 'none'}" ${TIMEOUT_MS} ms after the cancel, waiting for "${status}"`);
  }
}

/** (a') A real QEMU migrating through the pair to the stuck target, ended by a `vmgate cancel` process: until QEMU says "failed". */
async function vmgateQemuRound(pair: Pair, vm: QemuVm, target: StuckListener): Promise<number> {
  await vm.migrate(`tcp:127.0.0.1:${pair.routePort}`);
  await waitStalled(vm);
  const { t0, exited } = await cancelByCli(pair);
  const failed = await msUntilStatus(vm, 'failed', t0);
  await exited;
  target.clear();
  return failed;
}

interface QemuSample { reply: number; cancelled: number; socat: number }

/**
 * (b) QEMU straight to the stuck listener, `migrate_cancel` over the open QMP
 * connection; (b') the same, sent by a `socat` process on a second QMP
 * monitor (a C client started per command, as an operator's tool is).
 */
async function qemuRound(vm: QemuVm, qmp2: string, target: StuckListener): Promise<QemuSample> {
  await vm.migrate(`tcp:127.0.0.1:${target.port}`);
  await waitStalled(vm);
  let t0 = process.hrtime.bigint();
  await vm.cancelMigration();
  const reply = msSince(t0);
  const cancelled = await msUntilStatus(vm, 'cancelled', t0);
  target.clear();

  await vm.migrate(`tcp:127.0.0.1:${target.port}`);
  await waitStalled(vm);
  t0 = process.hrtime.bigint();
  const socat = spawn('socat', ['-', `UNIX-CONNECT:${qmp2}`], { stdio: ['pipe', 'pipe', 'inherit'] });
  let replies = 0;
  socat.stdout.setEncoding('utf8');
  socat.stdout.on('data', (chunk: string) => {
    replies += chunk.split('"return"').length - 1;
    if (replies >= 2) socat.stdin.end();
  });
  const socatExited = new Promise<void>((resolve) => socat.once('exit', () => resolve()));
  socat.stdin.write('{"execute":"qmp_capabilities"}\n{"execute":"migrate_cancel"}\n');
  const bySocat = await msUntilStatus(vm, 'cancelled', t0);
  await socatExited;
  target.clear();
  return { reply, cancelled, socat: bySocat };
}

/** A bare `node -e 0`: the floor under any Node.js CLI. */
async function nodeStart(): Promise<number> {
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve) => spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' }).once('exit', () => resolve()));
  return msSince(t0);
}

function stats(xs: number[]): { median: number; min: number; max: number } {
  const s = [...xs].sort((p, q) => p - q);
  return { median: s[Math.floor(s.length / 2)] ?? NaN, min: s[0] ?? NaN, max: s.at(-1) ?? NaN };
}

function line(name: string, xs: number[]): string {
  const { median, min, max } = stats(xs);
  const f = (x: number): string => x.toFixed(1).padStart(7);
  return `${name.padEnd(18)} median ${f(median)} ms   min ${f(min)}   max ${f(max)}`;
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'vmgate-cancel-'));
  const target = await stuckListener();
  let pair: Pair | undefined;
  let vm: QemuVm | undefined;
  const v: VmgateSample[] = [];
  const vq: number[] = [];
  const q: QemuSample[] = [];
  const node: number[] = [];
  try {
    const pki = await makeLocalPki(join(root, 'pki'), keyBits);
    pair = await startPair(join(root, 'pair'), pki, target.port);
    // Random RAM: zero pages would shrink to headers that fit in the socket buffers and the migration would complete.
    const image = await randomGuestImage(root, 64);
    const qmp2 = join(root, 'qmp2.sock');
    vm = await QemuVm.launch({ name: 'cancel-src', memMiB: 128, loadFile: image.path, extraArgs: ['-qmp', `unix:${qmp2},server=on,wait=off`] });
    // Unthrottled (7.2's default is 32 MiB/s), so the migration thread blocks in a write, not in the rate limit.
    await vm.setParameters({ 'max-bandwidth': DEFAULT_MAX_BANDWIDTH });
    for (let r = 0; r < rounds; r += 1) {
      const steps: Array<() => Promise<void>> = [
        async () => void v.push(await vmgateRound(pair as Pair, target)),
        async () => void vq.push(await vmgateQemuRound(pair as Pair, vm as QemuVm, target)),
        async () => void q.push(await qemuRound(vm as QemuVm, qmp2, target)),
        async () => void node.push(await nodeStart()),
      ];
      // Rotate the order, so no step always meets a colder or busier machine.
      for (let i = 0; i < steps.length; i += 1) await steps[(i + r) % steps.length]?.();
    }
    console.log(`cancel of a stalled migration: ${rounds} rounds on loopback (vmgate: two gateway processes, RSA-${keyBits}; QEMU 7.2: ${await vm.accelerator()}, 128 MiB guest)`);
    console.log(line('vmgate at-gateway', v.map((s) => s.atGateway)));
    console.log(line('vmgate reset', v.map((s) => s.reset)));
    console.log(line('vmgate cli-exit', v.map((s) => s.cliExit)));
    console.log(line('vmgate qemu-failed', vq));
    console.log(line('qemu qmp-reply', q.map((s) => s.reply)));
    console.log(line('qemu cancelled', q.map((s) => s.cancelled)));
    console.log(line('qemu socat', q.map((s) => s.socat)));
    console.log(line('node -e 0', node));
    const ratio = (name: string, xs: number[], ys: number[]): void => {
      console.log(`ratio ${name.padEnd(36)} ${(stats(xs).median / stats(ys).median).toFixed(2)}`);
    };
    ratio('vmgate reset / qemu cancelled', v.map((s) => s.reset), q.map((s) => s.cancelled));
    ratio('vmgate cli-exit / qemu cancelled', v.map((s) => s.cliExit), q.map((s) => s.cancelled));
    ratio('vmgate qemu-failed / qemu cancelled', vq, q.map((s) => s.cancelled));
    ratio('vmgate qemu-failed / qemu socat', vq, q.map((s) => s.socat));
  } finally {
    await vm?.kill();
    await pair?.stop();
    target.clear();
    target.server.close();
    await rm(root, { recursive: true, force: true });
  }
}

await main();
