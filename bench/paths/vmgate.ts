/**
 * A vmgate pair as real processes (the built CLI, `vmgate run`), configured
 * as an operator would: host-a has a route, host-b a server with one target.
 *
 *   sender -> host-a route ==TLS 1.3 + SASL==> host-b server -> target
 */
import { join } from 'node:path';
import { GatewayProcess, writeGatewayConfig, type GatewayConfig, type GatewayLogLine } from '../../test/helpers/gateway-process.js';
import type { Fixture } from '../fixture.js';
import { applyWorkers, type KeyPath } from '../workers-setting.js';
import { RANGE_GATEWAY_HOST, type GatewaySide, type PathSpec, type RunningPath, type RunningRange } from './path.js';

export interface VmgatePathOptions {
  /** The `workers` setting; above 1 needs `workersPaths` (from the config schema). */
  workers: number;
  workersPaths: readonly KeyPath[];
  /** Another build's CLI entry (dist/src/cli/main.js), to compare a change with what it replaces. */
  cli?: string;
  /** Path name; default vmgate, or vmgate-wN with workers. */
  name?: string;
  /** Write V8 CPU profiles of both gateways here (node --cpu-prof). */
  cpuProfDir?: string;
  /**
   * The route's peer probe (routes.NAME.probeIntervalMs). `wait`: measure the
   * pair as the running daemons they are, once the route has probed its peer
   * (every process that carries channels logs peer-up). `off`: no probe, so
   * the first channel pays the full TLS handshake and scrypt run of a cold
   * pair. Unset: the build's default, not waited for (another build's CLI
   * may not know the setting).
   */
  probe?: 'wait' | 'off';
}

/** How long a fresh pair may take to probe its peer. */
const PROBE_WAIT_MS = 15_000;

export function vmgatePath(fx: Fixture, o: VmgatePathOptions): PathSpec {
  let count = 0;
  const name = o.name ?? (o.workers === 1 ? 'vmgate' : `vmgate-w${o.workers}`);
  const cli = {
    ...(o.cli === undefined ? {} : { cli: o.cli }),
    ...(o.cpuProfDir === undefined ? {} : { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`] }),
  };
  /** Starts host-b (target `connect`) and host-a (route `listen`); resolves once host-a is ready (and has probed its peer, with probe 'wait'). */
  async function startPair(connect: string, listen: string): Promise<{ a: GatewayProcess; b: GatewayProcess }> {
    const n = count++;
    // A short shutdown grace: a bench that stops a pair has nothing in flight worth waiting for.
    const channel = { shutdownGraceMs: 1_000 };
    const configB: Record<string, unknown> = {
      name: 'host-b',
      tls: { dir: fx.pki.hostB },
      channel,
      server: {
        listen: '127.0.0.1:0',
        credentials: fx.usersFile,
        targets: { incoming: { connect, allow: [{ peer: 'host-a', user: fx.user }] } },
      },
    };
    if (o.workers > 1) applyWorkers(configB, o.workersPaths, o.workers);
    const fileB = join(fx.dir, `${name}-${n}-b.yaml`);
    await writeGatewayConfig(fileB, configB as unknown as GatewayConfig);
    const b = await GatewayProcess.start({ configPath: fileB, name: 'host-b', ...cli });
    try {
      const server = String(readyField(b, 'server'));
      const configA: Record<string, unknown> = {
        name: 'host-a',
        tls: { dir: fx.pki.hostA },
        channel,
        routes: {
          'to-b': {
            listen, peer: server, peerName: 'host-b', target: 'incoming', user: fx.user, passwordFile: fx.passwordFile,
            ...(o.probe === 'off' ? { probeIntervalMs: 0 } : {}),
          },
        },
      };
      if (o.workers > 1) applyWorkers(configA, o.workersPaths, o.workers);
      const fileA = join(fx.dir, `${name}-${n}-a.yaml`);
      await writeGatewayConfig(fileA, configA as unknown as GatewayConfig);
      const a = await GatewayProcess.start({ configPath: fileA, name: 'host-a', ...cli });
      if (o.probe === 'wait') await a.waitForLogs((l) => l.event === 'peer-up', o.workers, PROBE_WAIT_MS).catch(async (e: unknown) => {
        await a.stop();
        throw e;
      });
      return { a, b };
    } catch (e: unknown) {
      await b.stop();
      throw e;
    }
  }
  const sides = (a: GatewayProcess, b: GatewayProcess): GatewaySide[] => [{ side: 'A', pid: a.pid }, { side: 'B', pid: b.pid }];

  return {
    name,
    kind: 'vmgate',
    workers: o.workers,
    async start(targetPort: number): Promise<RunningPath> {
      const { a, b } = await startPair(`tcp:127.0.0.1:${targetPort}`, 'tcp:127.0.0.1:0');
      const routes = readyField(a, 'routes') as Array<{ listen: string }>;
      const port = Number(/:(\d+)$/.exec(routes[0]?.listen ?? '')?.[1]);
      return { port, gateways: sides(a, b), stop: () => Promise.all([a.stop(), b.stop()]).then(() => undefined) };
    },
    /** One port-range route and one port-range target, as an operator configures vmgate for libvirt's migration ports. */
    async startRange(first: number, n: number): Promise<RunningRange> {
      const last = first + n - 1;
      const { a, b } = await startPair(`tcp:127.0.0.1:${first}-${last}`, `tcp:${RANGE_GATEWAY_HOST}:${first}-${last}`);
      return { host: RANGE_GATEWAY_HOST, gateways: sides(a, b), stop: () => Promise.all([a.stop(), b.stop()]).then(() => undefined) };
    },
  };
}

function readyField(gw: GatewayProcess, key: string): unknown {
  const ready = gw.logs.find((l: GatewayLogLine) => l.event === 'ready');
  const value = ready?.[key];
  if (value === undefined || value === null) throw new Error(`gateway ${gw.name}: no ${key} in its ready line\n${gw.diagnostics(5)}`);
  return value;
}
