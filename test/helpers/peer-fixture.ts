/**
 * The pieces of one gateway built by hand, in this process, for the direct
 * tests of InboundServer, PeerClient and Route: identities from a test PKI
 * host directory, a credential store, configs with small timeouts, and a
 * GatewayMetrics that records what it was told (a mock of a collaborator;
 * TLS, SASL and the sockets are real, on loopback).
 */
import { ReplayBudget } from '../../src/relay/replay-buffer.js';
import type { ChannelConfig } from '../../src/config/config.js';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { CredentialStore } from '../../src/auth/credential-store.js';
import type { RouteConfig, ServerConfig, TargetConfig, TlsFiles } from '../../src/config/config.js';
import { QEMU_TLS_LAYOUT } from '../../src/config/load.js';
import type { ErrorCode } from '../../src/errors.js';
import type { GatewayMetrics, ObservedChannel, Outcome, Role } from '../../src/metrics/gateway-metrics.js';
import { InboundServer, type InboundDeps } from '../../src/server/inbound-server.js';
import { ChannelTable, type ChannelEntry } from '../../src/session/channel-table.js';
import { loadIdentity, type Identity } from '../../src/tls/identity.js';
import { makeLocalPki } from '../../src/demo/local-pair.js';
import { captureLogs, type CapturedLogs } from './log-capture.js';
import { TEST_KEY_BITS } from './pki.js';

export const USER = 'migrate';
export const TARGET = 'incoming';
/**
 * The code of a REPORT refused for want of an end record. Its own code is
 * planned (issue 14: one code, one meaning); the tests name it only here.
 */
export const NO_END_RECORD: ErrorCode = 'report-unknown';

/** The TLS files of a host directory in QEMU's layout (the CRL when there is one). */
function tlsFilesOf(dir: string): TlsFiles {
  const f = (k: keyof typeof QEMU_TLS_LAYOUT): string => join(dir, QEMU_TLS_LAYOUT[k]);
  return { ca: f('ca'), cert: f('cert'), key: f('key'), clientCert: f('clientCert'), clientKey: f('clientKey'), crl: existsSync(f('crl')) ? f('crl') : undefined };
}

/**
 * A CA with host-a and host-b only (CN/DNS the name, IP 127.0.0.1), under a
 * fresh temp directory: three keys, a third of the full test PKI's time.
 * `remove` deletes it all.
 */
export async function makePeerPki(prefix: string): Promise<{ hostA: string; hostB: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const { hostA, hostB } = await makeLocalPki(dir, TEST_KEY_BITS);
  return { hostA, hostB, remove: () => rm(dir, { recursive: true, force: true }) };
}

export function identityOf(dir: string): Promise<Identity> {
  return loadIdentity(tlsFilesOf(dir));
}

/** One event the metrics were told of, in order. */
export type MetricsEvent =
  | { kind: 'handshakeSucceeded'; role: Role }
  | { kind: 'handshakeFailed'; role: Role; cause: ErrorCode }
  | { kind: 'channelEnded'; channel: ObservedChannel; outcome: Outcome }
  | { kind: 'peerProbed'; path: string; up: boolean }
  | { kind: 'linkLost'; role: Role; cause: ErrorCode }
  | { kind: 'linkHealed'; role: Role; resentBytes: number }
  | { kind: 'healFailed'; role: Role; cause: ErrorCode };

/** GatewayMetrics that keep every event and let a test wait for one. */
export class RecordingMetrics implements GatewayMetrics {
  readonly events: MetricsEvent[] = [];
  private readonly waiters = new Set<() => void>();

  handshakeSucceeded(role: Role): void {
    this.push({ kind: 'handshakeSucceeded', role });
  }

  handshakeFailed(role: Role, cause: ErrorCode): void {
    this.push({ kind: 'handshakeFailed', role, cause });
  }

  channelEnded(channel: ObservedChannel, outcome: Outcome): void {
    this.push({ kind: 'channelEnded', channel, outcome });
  }

  peerProbed(_route: string, _peer: string, path: string, up: boolean): void {
    this.push({ kind: 'peerProbed', path, up });
  }

  linkLost(role: Role, cause: ErrorCode): void {
    this.push({ kind: 'linkLost', role, cause });
  }

  linkHealed(role: Role, resentBytes: number): void {
    this.push({ kind: 'linkHealed', role, resentBytes });
  }

  healFailed(role: Role, cause: ErrorCode): void {
    this.push({ kind: 'healFailed', role, cause });
  }

  /** Causes of the handshakes that failed in `role`, in order. */
  failures(role: Role): ErrorCode[] {
    return this.events.flatMap((e) => (e.kind === 'handshakeFailed' && e.role === role ? [e.cause] : []));
  }

  /** Resolves with the first event (from index `from` on) that `match` accepts. */
  waitFor<K extends MetricsEvent['kind']>(kind: K, match: (e: Extract<MetricsEvent, { kind: K }>) => boolean = () => true, from = 0, timeoutMs = 10_000): Promise<Extract<MetricsEvent, { kind: K }>> {
    const find = (): Extract<MetricsEvent, { kind: K }> | undefined =>
      this.events.slice(from).find((e): e is Extract<MetricsEvent, { kind: K }> => e.kind === kind && match(e as Extract<MetricsEvent, { kind: K }>));
    const hit = find();
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no ${kind} metrics event within ${timeoutMs} ms; have ${JSON.stringify(this.events.map((e) => e.kind))}`));
      }, timeoutMs);
      const check = (): void => {
        const h = find();
        if (!h) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(h);
      };
      this.waiters.add(check);
    });
  }

  private push(e: MetricsEvent): void {
    this.events.push(e);
    for (const w of [...this.waiters]) w();
  }
}

/** Resolves with the next channel the table takes in. */
export function nextChannel(channels: ChannelTable): Promise<ChannelEntry> {
  return new Promise((resolve) => {
    let done = false;
    channels.observe({
      added: (e) => {
        if (done) return;
        done = true;
        resolve(e);
      },
      removed: () => undefined,
    });
  });
}

function serverConfig(targetPort: number, o: Partial<ServerConfig> = {}): ServerConfig {
  const target: TargetConfig = { name: TARGET, connect: { kind: 'tcp', host: '127.0.0.1', port: targetPort }, allow: [{ peer: 'host-a', user: USER }] };
  return {
    listen: { host: '127.0.0.1', port: 0 },
    credentials: '/nonexistent/users.json',
    targets: new Map([[TARGET, target]]),
    handshakeTimeoutMs: 10_000,
    maxHandshakes: 16,
    maxHandshakesPerAddress: 16,
    maxChannels: 16,
    channelOrderTimeoutMs: 10_000,
    ...o,
  };
}

export function routeConfig(serverPort: number, o: Partial<RouteConfig> = {}): RouteConfig {
  return {
    name: 'to-b',
    listen: { kind: 'tcp', host: '127.0.0.1', port: 0 },
    peers: [{ host: '127.0.0.1', port: serverPort }],
    peerName: 'host-b',
    target: TARGET,
    user: USER,
    passwordFile: '/nonexistent/to-b.password',
    connectTimeoutMs: 10_000,
    probeIntervalMs: 0,
    socketGroup: undefined,
    ...o,
  };
}

/** A local target (destination QEMU stand-in) that keeps its connections open and hands them to the test. */
export interface HeldTarget {
  port: number;
  sockets: Socket[];
  /** Resolves with the `n`th connection (1-based) once it arrived. */
  connection(n: number): Promise<Socket>;
  close(): Promise<void>;
}

export async function heldTarget(): Promise<HeldTarget> {
  const sockets: Socket[] = [];
  const waiters = new Set<() => void>();
  const server: Server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    sockets.push(s);
    for (const w of [...waiters]) w();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    sockets,
    connection: (n) =>
      new Promise((resolve) => {
        const check = (): void => {
          const s = sockets[n - 1];
          if (!s) return;
          waiters.delete(check);
          resolve(s);
        };
        waiters.add(check);
        check();
      }),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** host-b's server role alone, listening on 127.0.0.1:0, with one user and one target. */
export interface InboundFixture {
  server: InboundServer;
  port: number;
  channels: ChannelTable;
  metrics: RecordingMetrics;
  logs: CapturedLogs;
  password: string;
  close(): Promise<void>;
}

export interface InboundOptions {
  /** Host directory of the server (host-b). */
  dir: string;
  targetPort: number;
  config?: Partial<ServerConfig>;
  /** Called on every look-up of the allow-list: an OPEN or PROBE is being authorized. */
  onTargets?: () => void;
  deps?: Partial<InboundDeps>;
}

export async function startInbound(o: InboundOptions): Promise<InboundFixture> {
  const identity = await identityOf(o.dir);
  const password = randomBytes(18).toString('base64url');
  const store = CredentialStore.empty();
  await store.setPassword(USER, password);
  const config = serverConfig(o.targetPort, o.config);
  const channels = new ChannelTable();
  const metrics = new RecordingMetrics();
  const logs = captureLogs('debug');
  const server = new InboundServer({
    config,
    targets: () => {
      o.onTargets?.();
      return config.targets;
    },
    identity: () => identity,
    credentials: () => store,
    channels,
    log: logs.log,
    closeGraceMs: 1_000,
    channel: testChannelConfig(),
    budget: new ReplayBudget(64 << 20),
    instance: randomBytes(16).toString('hex'),
    metrics,
    ...o.deps,
  });
  await server.listen();
  return {
    server,
    port: server.address().port,
    channels,
    metrics,
    logs,
    password,
    // Channels are the gateway's to end, not close()'s: end any a test left open first.
    close: () => {
      channels.abortAll('shutdown', 'the test is over');
      return server.close();
    },
  };
}

/** The channel section of a config as the defaults make it, with `over` on top. */
export function testChannelConfig(over: Partial<ChannelConfig> = {}): ChannelConfig {
  return { closeGraceMs: 1_000, stallTimeoutMs: 60_000, shutdownGraceMs: 30_000, linkTimeoutMs: 10_000, healWindowMs: 960_000, replayBufferBytes: 16 << 20, replayBudgetBytes: 512 << 20, ...over };
}
