import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ErrorCode } from '../errors.js';
import type { Identity } from '../tls/identity.js';
import { vmgateVersion } from './build-info.js';
import type { GatewayMetrics, ObservedChannel, Outcome, Role } from './gateway-metrics.js';
import { SessionTracker } from './session-tracker.js';

/** The channels of one gateway, as the metrics read them (a ChannelTable fits). */
export interface ChannelSource {
  list(): readonly ObservedChannel[];
  /** Calls `added` when a channel enters its data phase, `removed` when its relay has ended. */
  observe(observer: { added(c: ObservedChannel): void; removed(c: ObservedChannel): void }): void;
}

const ROLES: readonly Role[] = ['route', 'server'];

/** The routes and targets of the config: the only values the `route` and `target` labels take. */
export interface MetricNames {
  routes: readonly string[];
  targets: readonly string[];
}

/**
 * The labels that say which migration path a series is about: a route
 * (source side) or a target (destination side). A port-range route is one
 * route, so one series for all its ports; never a session id or a port, so
 * the label sets stay as small as the config.
 */
interface PathLabels {
  role: Role;
  route: string;
  target: string;
}

function pathOf(role: Role, name: string): PathLabels {
  return role === 'route' ? { role, route: name, target: '' } : { role, route: '', target: name };
}

function pathsOf(names: MetricNames): PathLabels[] {
  return [...names.routes.map((n) => pathOf('route', n)), ...names.targets.map((n) => pathOf('server', n))];
}

const pathKey = (p: PathLabels): string => `${p.role}/${p.route}/${p.target}`;
const DIRECTIONS = [
  ['to_peer', 'bytesOut'],
  ['from_peer', 'bytesIn'],
] as const;
/** Loopback set-ups take milliseconds; a WAN one with a slow target tens of seconds. */
const HANDSHAKE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The vmgate_* metrics of one gateway, registered on the registry handed in
 * (never prom-client's global one, so several gateways can live in one
 * process and a multi-process gateway can aggregate per-process registries).
 * Names, types and labels are documented in docs/metrics.md.
 */
export class PrometheusMetrics implements GatewayMetrics {
  private readonly sessions = new SessionTracker();
  /** Bytes of channels that have left the table; live channels are added at scrape time. */
  private readonly endedBytes = new Map<string, number>();
  private readonly channelsTotal: Counter<'role' | 'route' | 'target' | 'outcome'>;
  private readonly sessionsTotal: Counter<'role' | 'route' | 'target' | 'outcome'>;
  private readonly handshakeFailures: Counter<'role' | 'cause'>;
  private readonly handshakeSeconds: Histogram<'role'>;
  private readonly certExpiry: Gauge<'cert' | 'file' | 'subject'>;
  private readonly peerUp: Gauge<'route' | 'peer' | 'path'>;
  private readonly linkLosses: Counter<'role' | 'cause'>;
  private readonly heals: Counter<'role'>;
  private readonly healFailures: Counter<'role' | 'cause'>;
  private readonly resentBytes: Counter<'role'>;

  constructor(registry: Registry, channels: ChannelSource, names: MetricNames) {
    const registers = [registry];
    const sessions = this.sessions;
    const endedBytes = this.endedBytes;
    const paths = pathsOf(names);

    // `aggregator` says how an AggregatorRegistry merges the processes of one gateway; counters sum (the default).
    new Gauge({ name: 'vmgate_build_info', help: 'Always 1; labels carry the vmgate and Node.js versions', labelNames: ['version', 'node'], registers, aggregator: 'first' })
      .set({ version: vmgateVersion(), node: process.version }, 1);

    new Counter({
      name: 'vmgate_bytes_total',
      help: 'Migration bytes carried between the local QEMU and the peer gateway, by direction relative to the peer',
      labelNames: ['role', 'route', 'target', 'direction'],
      registers,
      // Read from the relay counters at scrape time, so the data path does no metrics work per chunk.
      collect(this: Counter<'role' | 'route' | 'target' | 'direction'>) {
        const totals = new Map(endedBytes);
        for (const c of channels.list()) {
          for (const [direction, field] of DIRECTIONS) add(totals, `${pathKey(pathOf(c.role, c.target))}/${direction}`, c.relay.counters[field]);
        }
        this.reset();
        for (const p of paths) {
          for (const [direction] of DIRECTIONS) this.inc({ ...p, direction }, totals.get(`${pathKey(p)}/${direction}`) ?? 0);
        }
      },
    });
    new Gauge({
      name: 'vmgate_channels_active',
      help: 'Channels in their data phase',
      labelNames: ['role', 'route', 'target'],
      registers,
      collect(this: Gauge<'role' | 'route' | 'target'>) {
        for (const p of paths) this.set({ ...p }, sessions.active(p.role, p.route || p.target).channels);
      },
    });
    new Gauge({
      name: 'vmgate_sessions_active',
      help: 'Migration sessions with at least one channel in its data phase',
      labelNames: ['role', 'route', 'target'],
      registers,
      collect(this: Gauge<'role' | 'route' | 'target'>) {
        for (const p of paths) this.set({ ...p }, sessions.active(p.role, p.route || p.target).sessions);
      },
    });
    this.channelsTotal = new Counter({ name: 'vmgate_channels_total', help: 'Channels that ended after their data phase began, by outcome (ok or the cause class)', labelNames: ['role', 'route', 'target', 'outcome'], registers });
    this.sessionsTotal = new Counter({ name: 'vmgate_sessions_total', help: 'Migration sessions that ended, by outcome (ok, or the cause of the first channel that failed)', labelNames: ['role', 'route', 'target', 'outcome'], registers });
    this.handshakeFailures = new Counter({ name: 'vmgate_handshake_failures_total', help: 'Connections refused before their data phase (TLS, SASL, authorization, target), by cause code', labelNames: ['role', 'cause'], registers });
    this.handshakeSeconds = new Histogram({ name: 'vmgate_handshake_duration_seconds', help: 'Time to set up a channel that opened: TCP, TLS, SASL and OPEN (including the target connect)', labelNames: ['role'], buckets: HANDSHAKE_BUCKETS, registers });
    this.certExpiry = new Gauge({ name: 'vmgate_certificate_expiry_timestamp_seconds', help: 'notAfter of each loaded certificate, as a unix timestamp in seconds', labelNames: ['cert', 'file', 'subject'], registers, aggregator: 'min' });
    // With workers every process probes; the peer is up only if every probe got through.
    this.peerUp = new Gauge({ name: 'vmgate_peer_up', help: "1 when the route's last probe of its peer over this path (peer address) passed TLS, SASL and the target's allow-list; 0 when it failed", labelNames: ['route', 'peer', 'path'], registers, aggregator: 'min' });
    this.linkLosses = new Counter({ name: 'vmgate_link_losses_total', help: 'Times a channel lost its connection to the peer gateway and began to heal, by cause', labelNames: ['role', 'cause'], registers });
    this.heals = new Counter({ name: 'vmgate_heals_total', help: 'Times a healing channel went on over a new connection', labelNames: ['role'], registers });
    this.healFailures = new Counter({ name: 'vmgate_heal_failures_total', help: 'Channels that ended while healing, by cause (heal-expired, peer-restarted, ...)', labelNames: ['role', 'cause'], registers });
    this.resentBytes = new Counter({ name: 'vmgate_heal_resent_bytes_total', help: 'Bytes sent again after a heal: what the peer had not received when the link was lost', labelNames: ['role'], registers });
    // Series exist from the start so rate() and increase() see the first event.
    for (const role of ROLES) {
      this.handshakeSeconds.zero({ role });
      this.heals.inc({ role }, 0);
      this.resentBytes.inc({ role }, 0);
    }
    for (const p of paths) {
      this.channelsTotal.inc({ ...p, outcome: 'ok' }, 0);
      this.sessionsTotal.inc({ ...p, outcome: 'ok' }, 0);
      for (const [direction] of DIRECTIONS) endedBytes.set(`${pathKey(p)}/${direction}`, 0);
    }

    channels.observe({
      added: (c) => this.sessions.channelStarted(c),
      removed: (c) => {
        for (const [direction, field] of DIRECTIONS) add(endedBytes, `${pathKey(pathOf(c.role, c.target))}/${direction}`, c.relay.counters[field]);
      },
    });
  }

  handshakeSucceeded(role: Role, ms: number): void {
    this.handshakeSeconds.observe({ role }, ms / 1000);
  }

  handshakeFailed(role: Role, cause: ErrorCode): void {
    this.handshakeFailures.inc({ role, cause });
  }

  channelEnded(c: ObservedChannel, outcome: Outcome): void {
    const path = pathOf(c.role, c.target);
    this.channelsTotal.inc({ ...path, outcome });
    const session = this.sessions.channelEnded(c, outcome);
    if (session !== undefined) this.sessionsTotal.inc({ ...path, outcome: session });
  }

  peerProbed(route: string, peer: string, path: string, up: boolean): void {
    // `path` is one of the route's configured addresses (at most 8): the series stay bounded by the config.
    this.peerUp.set({ route, peer, path }, up ? 1 : 0);
  }

  linkLost(role: Role, cause: ErrorCode): void {
    this.linkLosses.inc({ role, cause });
  }

  linkHealed(role: Role, resentBytes: number): void {
    this.heals.inc({ role });
    this.resentBytes.inc({ role }, resentBytes);
  }

  healFailed(role: Role, cause: ErrorCode): void {
    this.healFailures.inc({ role, cause });
  }

  /** Sets the expiry gauges to the identity in use; called at start and after each successful reload. */
  setIdentity(id: Identity): void {
    this.certExpiry.reset(); // a renewed certificate may have a new subject: drop the old series
    const certs = [
      ['ca', id.files.ca, id.caCert],
      ['server', id.files.cert, id.server.cert],
      ['client', id.files.clientCert, id.client.cert],
    ] as const;
    for (const [cert, file, x509] of certs) {
      this.certExpiry.set({ cert, file, subject: x509.subject.replace(/\n/g, ', ') }, Math.floor(Date.parse(x509.validTo) / 1000));
    }
  }
}

/** The one entry point: registers every vmgate_* metric of one gateway on `registry`. */
export function registerGatewayMetrics(registry: Registry, channels: ChannelSource, names: MetricNames): PrometheusMetrics {
  return new PrometheusMetrics(registry, channels, names);
}

function add(m: Map<string, number>, k: string, n: number): void {
  m.set(k, (m.get(k) ?? 0) + n);
}
