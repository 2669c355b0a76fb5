/**
 * Two gateway *processes* (the built CLI) on loopback: host-b serves one
 * target, host-a routes to it. For tests that need what only a real process
 * shows: its uid and capabilities, its RSS, everything it writes.
 *
 *   const pair = await startProcessPair({ dir, pki, password, targetPort: sink.port });
 *   const client = await connectLoopback(pair.routePort);
 *   await pair.stop();
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { GatewayProcess, addUser, writeGatewayConfig, writeSecretFile, type GatewayConfig } from './gateway-process.js';
import type { TestPki } from './pki.js';

export interface ProcessPairOptions {
  dir: string;
  pki: TestPki;
  password: string;
  /** Loopback port of host-b's target ("incoming"). */
  targetPort: number;
  user?: string;
  /** Extra keys for host-b's `server` section (caps, deadlines). */
  server?: Record<string, unknown>;
  logLevel?: string;
  /** Runs each gateway under this command (see GatewayStartOptions.wrap). */
  wrap?: readonly string[];
  /** Called after the files are written and before the gateways start (e.g. to chown them). */
  beforeStart?: () => Promise<void>;
}

export interface ProcessPair {
  a: GatewayProcess;
  b: GatewayProcess;
  /** Where a source connects (host-a's route listener). */
  routePort: number;
  /** host-b's TLS port. */
  serverPort: number;
  stop(): Promise<void>;
}

/** `127.0.0.1:PORT` or `tcp:127.0.0.1:PORT` → PORT. */
function portOf(address: unknown): number {
  const m = /:(\d+)$/.exec(String(address));
  if (!m) throw new Error(`no port in ${String(address)}`);
  return Number(m[1]);
}

export async function startProcessPair(o: ProcessPairOptions): Promise<ProcessPair> {
  const user = o.user ?? 'migrate';
  const dirA = join(o.dir, 'a');
  const dirB = join(o.dir, 'b');
  await mkdir(dirA, { recursive: true, mode: 0o700 });
  await mkdir(dirB, { recursive: true, mode: 0o700 });
  await addUser({ store: join(dirB, 'users.json'), user, password: o.password });
  await writeSecretFile(join(dirA, 'to-b.password'), o.password);
  const log = { level: o.logLevel ?? 'info' };
  const configB: GatewayConfig = {
    name: 'host-b',
    tls: { dir: o.pki.hostB },
    log,
    server: {
      listen: '127.0.0.1:0',
      credentials: './users.json',
      targets: { incoming: { connect: `tcp:127.0.0.1:${o.targetPort}`, allow: [{ peer: 'host-a', user }] } },
      ...o.server,
    },
  };
  await writeGatewayConfig(join(dirB, 'gateway.yaml'), configB);
  await o.beforeStart?.();
  const wrap = o.wrap ? { wrap: o.wrap } : {};
  const b = await GatewayProcess.start({ configPath: join(dirB, 'gateway.yaml'), name: 'host-b', ...wrap });
  try {
    const serverPort = portOf((await b.waitForLog((l) => l.event === 'ready', 1_000))['server']);
    await writeGatewayConfig(join(dirA, 'gateway.yaml'), {
      name: 'host-a',
      tls: { dir: o.pki.hostA },
      log,
      routes: {
        'to-b': { listen: 'tcp:127.0.0.1:0', peer: `127.0.0.1:${serverPort}`, peerName: 'host-b', target: 'incoming', user, passwordFile: './to-b.password' },
      },
    });
    await o.beforeStart?.();
    const a = await GatewayProcess.start({ configPath: join(dirA, 'gateway.yaml'), name: 'host-a', ...wrap });
    const ready = await a.waitForLog((l) => l.event === 'ready', 1_000);
    const routes = ready['routes'] as Array<{ listen: string }>;
    return {
      a,
      b,
      routePort: portOf(routes[0]?.listen),
      serverPort,
      async stop() {
        await Promise.all([a.stop(), b.stop()]);
      },
    };
  } catch (e: unknown) {
    await b.stop();
    throw e;
  }
}
