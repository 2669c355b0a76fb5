import { ReplayBudget } from '../relay/replay-buffer.js';
import { inheritedInstance, newInstance } from '../server/gateway-instance.js';
import type { Server } from 'node:net';
import { sessionViews, snapshotOf, type ChannelSnapshot, type SessionView } from '../session/session-view.js';
import type { Config } from '../config/config.js';
import { loadFromChecked, loadFromDisk, loadReloadable, type CheckedReload, type Reloadable } from './reloadable.js';
import { formatHostPort } from '../config/endpoint.js';
import { VmgateError, messageOf, type ErrorCode } from '../errors.js';
import type { StatusReply } from '../admin/admin-protocol.js';
import type { ChannelSelector, Daemon, ReloadObserver } from './daemon.js';
import { openControlSocket } from './control.js';
import type { Logger } from '../log/logger.js';
import { NO_METRICS } from '../metrics/gateway-metrics.js';
import { startMetricsEndpoint, type MetricsEndpoint, type MetricsEndpointDeps } from '../metrics/metrics-endpoint.js';
import { expiringSoon, type Identity } from '../tls/identity.js';
import { ChannelTable } from '../session/channel-table.js';
import { InboundServer } from '../server/inbound-server.js';
import type { PeerNotices } from '../session/cause-exchange.js';
import { Route } from '../route/route.js';
import type { ChannelOrder } from '../session/session-order.js';
import { StallWatch } from '../session/stall-watch.js';

const EXPIRY_WARNING_DAYS = 30;

/**
 * How a worker process (src/workers) runs a gateway: it listens on nothing
 * (the primary accepts and hands connections over), and channel order and
 * ABORT/REPORT lookups span every worker, so they go through the primary.
 * The control socket, the stall watch and the metrics listener live in the
 * primary too: the worker's metrics are a registry the primary aggregates.
 */
export interface WorkerRole {
  order: ChannelOrder;
  notices: PeerNotices;
  metrics: (deps: MetricsEndpointDeps) => MetricsEndpoint;
}

/**
 * One gateway daemon: the server role (if configured), every route and the
 * control socket. Loads and checks every file before opening any listener,
 * so a bad file stops the start with a clear error, and a bad file at reload
 * keeps the last good state.
 */
export class Gateway implements Daemon {
  readonly channels = new ChannelTable();
  private state: Reloadable;
  private inbound: InboundServer | undefined;
  private readonly routes: Route[] = [];
  private admin: Server | undefined;
  reloadObserver: ReloadObserver | undefined;
  private stallWatch: StallWatch | undefined;
  private readonly startedAt = Date.now();
  private metrics: MetricsEndpoint | undefined;
  /** For /readyz: new channels are taken only while `serving`. */
  private phase: 'starting' | 'serving' | 'draining' = 'starting';

  private constructor(
    readonly config: Config,
    private readonly log: Logger,
    state: Reloadable,
    private readonly worker: WorkerRole | undefined,
  ) {
    this.state = state;
  }

  static async start(config: Config, log: Logger, worker?: WorkerRole): Promise<Gateway> {
    const gw = await Gateway.load(config, log, worker);
    try {
      await gw.open();
    } catch (e: unknown) {
      await gw.stop();
      throw e;
    }
    return gw;
  }

  /**
   * Loads and checks every file and starts the metrics listener (whose
   * /readyz says 503 until `open`), but opens no gateway listener yet.
   * `start` is load + open; tests use the two steps to see the gap.
   */
  static async load(config: Config, log: Logger, worker?: WorkerRole): Promise<Gateway> {
    const gw = new Gateway(config, log, await loadReloadable(config), worker);
    gw.warnExpiry();
    const names = { routes: config.routes.map((r) => r.name), targets: [...(config.server?.targets.keys() ?? [])] };
    const deps = { channels: gw.channels, names, identity: gw.state.identity, notReady: () => gw.notReady(), log: log.child({ role: 'metrics' }) };
    gw.metrics = worker ? worker.metrics(deps) : await startMetricsEndpoint(config.metrics, deps);
    return gw;
  }

  /** The TLS listener's bound address (useful with port 0). */
  serverAddress(): { host: string; port: number } | undefined {
    return this.inbound?.address();
  }

  /** The metrics listener's bound address; undefined when metrics are off. */
  metricsAddress(): { host: string; port: number } | undefined {
    return this.metrics?.address();
  }

  /** Why the gateway does not take new channels now (one line for /readyz), or undefined when it does. */
  notReady(now = new Date()): string | undefined {
    if (this.phase === 'starting') return 'starting: the gateway listeners are not open yet';
    if (this.phase === 'draining') return 'draining: the gateway is shutting down and takes no new channels';
    const expired = expiringSoon(this.state.identity, 0, now)[0];
    if (expired) return `certificate ${expired.file} (${expired.subject}) has expired; renew it and reload (SIGHUP)`;
    return undefined;
  }

  /** Where QEMU migrates to on route `name` (with port 0, the real port). */
  routeAddress(name: string): string | undefined {
    return this.routes.find((r) => r.name === name)?.address();
  }

  /**
   * The two roles, for a worker process (src/workers/worker.ts): the primary
   * accepts the connections and hands them to these.
   */
  get server(): InboundServer | undefined {
    return this.inbound;
  }

  /**
   * The route named `name`. Only a worker can lack one the primary hands it:
   * a replacement worker reads the config file as it is now, and routes are
   * applied only at a restart, so the file was edited since the gateway
   * started. The file itself may be valid: `config-changed`, not `config-invalid`.
   */
  route(name: string): Route {
    const route = this.routes.find((r) => r.name === name);
    if (route) return route;
    throw new VmgateError('config-changed', `route ${name} is not in the config file this worker process read: the file changed since the gateway started (routes apply only at a restart); restore it, or restart the gateway once no migration runs`);
  }

  /** This process's channels as plain data. */
  snapshot(): ChannelSnapshot[] {
    return this.channels.list().map(snapshotOf);
  }

  /**
   * Re-reads the config file and reloads certificates, CRL, credential store,
   * allow-lists and route passwords. All or nothing: on any error the last
   * good state stays and the error is returned (and logged). Listeners and
   * channels in flight are untouched. A worker process passes the reload
   * its primary read and checked, and reads no file itself.
   */
  async reload(checked?: CheckedReload): Promise<VmgateError | undefined> {
    try {
      const next = checked ? await loadFromChecked(this.config, checked) : await loadFromDisk(this.config);
      this.state = next;
      this.inbound?.setIdentity(next.identity);
      this.metrics?.setIdentity(next.identity);
      this.log.info({ event: 'reloaded', identity: subject(next.identity), validTo: next.identity.server.cert.validTo }, 'reloaded certificates, CRL, credentials and allow-lists');
      this.warnExpiry();
      for (const r of this.routes) r.probeNow();
      return undefined;
    } catch (e: unknown) {
      const err = e instanceof VmgateError ? e : new VmgateError('internal', messageOf(e), { cause: e });
      this.log.error({ event: 'reload-failed', cause: err.code }, `reload failed, keeping the last good state: ${err.message}`);
      return err;
    }
  }

  /**
   * Stops accepting new channels, lets channels in flight finish for up to
   * `graceMs`, then ends the rest at once with cause `shutdown`.
   */
  async stop(graceMs = 0): Promise<void> {
    this.phase = 'draining';
    const closing = [...(this.inbound ? [this.inbound.close()] : []), ...this.routes.map((r) => r.close())];
    if (graceMs > 0 && this.channels.size > 0) {
      this.log.info({ event: 'draining', channels: this.channels.size, graceMs }, `waiting up to ${graceMs} ms for ${this.channels.size} channel(s) to finish`);
      await this.channels.whenEmpty(graceMs);
    }
    this.stallWatch?.stop();
    const n = this.channels.abortAll('shutdown', 'the gateway is shutting down');
    if (n > 0) this.log.warn({ event: 'shutdown', channels: n }, `ended ${n} channel(s) because the gateway is shutting down`);
    await Promise.all(closing);
    await new Promise<void>((resolve) => (this.admin ? this.admin.close(() => resolve()) : resolve()));
    // Last, so a scrape during the drain still sees the final counts.
    await this.metrics?.close();
  }

  /** Opens the server and route listeners and the control socket; then /readyz says 200. */
  async open(): Promise<void> {
    const metrics = this.metrics?.metrics ?? NO_METRICS;
    const channel = this.config.channel;
    // With workers, each process keeps its share of the gateway's replay budget.
    const budget = new ReplayBudget(Math.max(1 << 20, Math.floor(channel.replayBudgetBytes / this.config.workers)));
    const common = { identity: () => this.state.identity, channels: this.channels, closeGraceMs: channel.closeGraceMs, channel, budget, metrics };
    if (this.config.server) {
      this.inbound = new InboundServer({
        ...common,
        config: this.config.server,
        targets: () => this.state.targets,
        credentials: () => this.state.credentials,
        // A worker is its primary's instance; a gateway in one process draws its own at each start.
        instance: (this.worker ? inheritedInstance() : undefined) ?? newInstance(),
        log: this.log.child({ role: 'server' }),
        ...(this.worker ? { order: this.worker.order, notices: this.worker.notices } : {}),
      });
      if (!this.worker) await this.inbound.listen();
    }
    for (const rc of this.config.routes) {
      const route = new Route({ ...common, config: rc, password: () => this.state.passwords.get(rc.name) ?? '', log: this.log.child({ role: 'route' }) });
      this.routes.push(route);
      if (!this.worker) await route.listen();
      route.startProbe();
    }
    if (this.worker) {
      this.phase = 'serving';
      this.log.info({ event: 'worker-ready', identity: subject(this.state.identity) }, `worker ${process.pid} of vmgate ${this.config.name} ready`);
      return;
    }
    if (this.config.control) this.admin = await openControlSocket(this.config.control, this, this.log);
    const stallSubject = {
      snapshot: () => this.snapshot(),
      endSession: (session: string, message: string) => this.channels.abortAll('stalled', message, session),
    };
    this.stallWatch = new StallWatch(stallSubject, this.config.channel.stallTimeoutMs, this.log);
    this.phase = 'serving';
    const metricsAt = this.metrics?.address();
    this.log.info(
      {
        event: 'ready',
        server: this.inbound ? formatHostPort(this.inbound.address()) : null,
        targets: [...this.state.targets.keys()],
        routes: this.routes.map((r) => ({ name: r.name, listen: r.address() })),
        control: this.config.control?.socket ?? null,
        metrics: metricsAt ? `http://${formatHostPort(metricsAt)}` : null,
        identity: subject(this.state.identity),
        crl: this.config.tls.crl ?? null,
      },
      `vmgate ${this.config.name} ready`,
    );
  }

  status(): Promise<StatusReply> {
    return Promise.resolve({
      name: this.config.name,
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      server: this.inbound && !this.worker ? formatHostPort(this.inbound.address()) : null,
      routes: this.routes.map((r) => ({ name: r.name, listen: r.address(), peer: r.peerStatus() })),
      targets: [...this.state.targets.keys()],
      channels: this.channels.size,
      sessions: sessionViews(this.snapshot()).length,
      identity: { subject: subject(this.state.identity), validTo: this.state.identity.server.cert.validTo },
    });
  }

  sessions(): Promise<SessionView[]> {
    return Promise.resolve(sessionViews(this.snapshot()));
  }

  endChannels(sel: ChannelSelector, cause: ErrorCode, message: string): Promise<number> {
    return Promise.resolve(this.channels.abortAll(cause, message, sel.session, sel.channel));
  }

  private warnExpiry(): void {
    for (const w of expiringSoon(this.state.identity, EXPIRY_WARNING_DAYS)) {
      this.log.warn({ event: 'cert-expiring', file: w.file, daysLeft: w.daysLeft }, `certificate ${w.file} (${w.subject}) expires in ${w.daysLeft} day(s); renew it with certs/vmgate-pki renew`);
    }
  }
}

function subject(id: Identity): string {
  return id.server.cert.subject.replace(/\n/g, ', ');
}
