/**
 * How long does it take to open channels through a real gateway pair on
 * loopback? Two `vmgate run` processes (as on two hosts: each side's TLS and
 * scrypt work on its own thread), 3072-bit RSA certificates from a fresh CA
 * (the PKI default), and an echo target. A channel counts as open when a byte
 * written by the "source QEMU" has come back through both gateways, so the
 * figure covers dial, TLS, SASL, OPEN, the session order and the relay.
 *
 *   npm run build && node dist/bench/handshake-probe.js [--rounds 5] [--channels 8] [--key-bits 3072]
 *       [--baseline OTHER/dist/src/cli/main.js]
 *
 * Per round, on a fresh pair:
 *   first      1 channel, the first one the pair ever opens (no ticket, empty auth cache)
 *   next       1 channel, a later migration
 *   burst      N channels at once, a later migration (QEMU multifd opens its channels together)
 * and on another fresh pair:
 *   cold-burst N channels at once as the first thing the pair does
 *
 * Prints median / min / max per step in milliseconds. Not a test: timings
 * on a shared machine are noisy. With --baseline (another build's CLI, e.g.
 * a `git worktree` of main), both builds run in alternating rounds and the
 * ratio of their medians is printed: compare that, not figures across runs.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeLocalPki, writePairFiles } from '../src/demo/local-pair.js';
import { connectLoopback } from '../src/demo/payload.js';
import { GatewayProcess } from '../test/helpers/gateway-process.js';

interface Pair {
  a: GatewayProcess;
  b: GatewayProcess;
  routePort: number;
  stop(): Promise<void>;
}

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    channels: { type: 'string', default: '8' },
    'key-bits': { type: 'string', default: '3072' },
    baseline: { type: 'string' },
  },
});
const rounds = Number(args.rounds);
const channels = Number(args.channels);
const keyBits = Number(args['key-bits']);

async function startEcho(): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

async function startPair(dir: string, pki: { hostA: string; hostB: string }, echoPort: number, cli: string | undefined): Promise<Pair> {
  const files = await writePairFiles({ dir, targetConnect: `tcp:127.0.0.1:${echoPort}`, pkiA: pki.hostA, pkiB: pki.hostB });
  const withCli = cli === undefined ? {} : { cli };
  const b = await GatewayProcess.start({ configPath: files.fileB, name: 'host-b', ...withCli });
  const bPort = Number(/:(\d+)$/.exec(String(b.logs.find((l) => l.event === 'ready')?.['server']))?.[1]);
  const a = await GatewayProcess.start({ configPath: await files.writeA(bPort), name: 'host-a', ...withCli });
  const routes = a.logs.find((l) => l.event === 'ready')?.['routes'] as Array<{ listen: string }>;
  const routePort = Number(/:(\d+)$/.exec(routes[0]?.listen ?? '')?.[1]);
  return { a, b, routePort, stop: async () => void (await Promise.all([a.stop(), b.stop()])) };
}

interface Step {
  /** ms until every channel has echoed a byte. */
  total: number;
  /** Longest server-side set-up (TLS established to OPENED: SASL, authorization, session order, target connect). */
  serverSetup: number;
}

/** Opens `n` channels at once and says how long it took. */
async function openChannels(pair: Pair, n: number): Promise<Step> {
  const closesBefore = pair.a.logs.length;
  const opensBefore = pair.b.logs.length;
  const started = process.hrtime.bigint();
  const sockets = await Promise.all(
    Array.from({ length: n }, async () => {
      const s = await connectLoopback(pair.routePort);
      await new Promise<void>((resolve, reject) => {
        s.once('data', () => resolve());
        s.once('error', reject);
        s.write('x');
      });
      return s;
    }),
  );
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  await Promise.all(sockets.map((s: Socket) => new Promise<void>((resolve) => s.end(() => resolve()))));
  // The next step must start a new session: wait until the route saw every channel end.
  await pair.a.waitForLogs((l) => l.event === 'channel-close', n, 10_000, closesBefore);
  const opens = await pair.b.waitForLogs((l) => l.event === 'channel-open', n, 10_000, opensBefore);
  return { total: ms, serverSetup: Math.max(...opens.map((l) => Number(l['setupMs']))) };
}

function median(steps: Step[]): Step | undefined {
  return [...steps].sort((p, q) => p.total - q.total)[Math.floor(steps.length / 2)];
}

function summary(name: string, steps: Step[]): string {
  const s = [...steps].sort((p, q) => p.total - q.total);
  const med = median(steps);
  const f = (x: number | undefined): string => (x ?? NaN).toFixed(0).padStart(5);
  return `${name.padEnd(12)} median ${f(med?.total)} ms   min ${f(s[0]?.total)}   max ${f(s.at(-1)?.total)}   (server set-up of that median: ${f(med?.serverSetup)} ms)`;
}

type Results = Record<string, Step[]>;

/** One round on two fresh pairs of `cli` (undefined: this build). */
async function round(root: string, tag: string, pki: { hostA: string; hostB: string }, echoPort: number, cli: string | undefined, into: Results): Promise<void> {
  const pair = await startPair(join(root, `${tag}-warm`), pki, echoPort, cli);
  try {
    into['first']!.push(await openChannels(pair, 1));
    into['next']!.push(await openChannels(pair, 1));
    into['burst']!.push(await openChannels(pair, channels));
  } finally {
    await pair.stop();
  }
  const cold = await startPair(join(root, `${tag}-cold`), pki, echoPort, cli);
  try {
    into['cold-burst']!.push(await openChannels(cold, channels));
  } finally {
    await cold.stop();
  }
}

const emptyResults = (): Results => ({ first: [], next: [], burst: [], 'cold-burst': [] });

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'vmgate-probe-'));
  const echo = await startEcho();
  const mine = emptyResults();
  const base = emptyResults();
  try {
    const pki = await makeLocalPki(join(root, 'pki'), keyBits);
    for (let r = 0; r < rounds; r += 1) {
      // Alternate which build goes first, so neither always meets a colder or busier machine.
      const order: Array<[string, string | undefined, Results]> = [['this', undefined, mine]];
      if (args.baseline !== undefined) order.splice(r % 2, 0, ['base', args.baseline, base]);
      for (const [tag, cli, into] of order) await round(root, `${tag}${r}`, pki, echo.port, cli, into);
    }
    console.log(`vmgate handshake probe: ${rounds} rounds, burst of ${channels} channels, RSA-${keyBits}, two gateway processes on loopback`);
    if (args.baseline !== undefined) {
      console.log(`baseline: ${args.baseline}`);
      for (const [name, xs] of Object.entries(base)) console.log(`base ${summary(name, xs)}`);
    }
    for (const [name, xs] of Object.entries(mine)) console.log(`this ${summary(name, xs)}`);
    if (args.baseline !== undefined) {
      for (const name of Object.keys(mine)) {
        const ratio = (median(mine[name] ?? [])?.total ?? NaN) / (median(base[name] ?? [])?.total ?? NaN);
        console.log(`ratio ${name.padEnd(12)} this/base ${ratio.toFixed(2)}`);
      }
    }
  } finally {
    echo.server.close();
    await rm(root, { recursive: true, force: true });
  }
}

await main();
