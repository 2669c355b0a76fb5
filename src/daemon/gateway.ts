import type { Server, Socket } from 'node:net';
import { adminRequestSchema } from '../admin/admin-protocol.js';
import { startAdminSocket } from '../admin/admin-server.js';
import { sessionViews, snapshotOf, type ChannelSnapshot } from '../session/session-view.js';
import { CredentialStore } from '../auth/credential-store.js';
import type { Config, TargetConfig } from '../config/config.js';
import { formatHostPort } from '../config/endpoint.js';
import { loadConfig } from '../config/load.js';
import { VmgateError, messageOf, type ErrorCode } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { NO_METRICS } from '../metrics/gateway-metrics.js';
import { startMetricsEndpoint, type MetricsEndpoint, type MetricsEndpointDeps } from '../metrics/metrics-endpoint.js';
import { expiringSoon, loadIdentity, type Identity } from '../tls/identity.js';
import { groupId } from '../util/group-id.js';
import { readSecretFile } from '../util/secret-file.js';
import { ChannelTable } from '../session/channel-table.js';
import type { EndRecord } from '../session/end-records.js';
import { InboundServer, type PeerNotices } from '../server/inbound-server.js';
import { Route } from '../route/route.js';
import type { ChannelOrder } from '../session/channel-order.js';
import { StallWatch } from '../session/stall-watch.js';

const EXPIRY_WARNING_DAYS = 30;

/** Everything a reload may replace, loaded and checked as one unit. */
export interface Reloadable {
  identity: Identity;
  credentials: CredentialStore;
  targets: Map<string, TargetConfig>;
  passwords: Map<string, string>;
}

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
export class Gateway {
  readonly channels = new ChannelTable();
  private state: Reloadable;
  private server: InboundServer | undefined;
  private readonly routes: Route[] = [];
  private admin: Server | undefined;
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
    const deps = { channels: gw.channels, identity: gw.state.identity, notReady: () => gw.notReady(), log: log.child({ role: 'metrics' }) };
    gw.metrics = worker ? worker.metrics(deps) : await startMetricsEndpoint(config.metrics, deps);
    return gw;
  }

  /** The TLS listener's bound address (useful with port 0). */
  serverAddress(): { host: string; port: number } | undefined {
    return this.server?.address();
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

  /** Worker role: the TLS session ticket keys the primary gives every worker. */
  setTicketKeys(keys: Buffer): void {
    this.server?.setTicketKeys(keys);
  }

  routeAddress(name: string): string | undefined {
    return this.routes.find((r) => r.name === name)?.address();
  }

  /** Worker role: serves a connection the primary accepted on the TLS port. */
  acceptInbound(raw: Socket): void {
    if (this.server) this.server.accept(raw);
    else raw.destroy();
  }

  /** Worker role: carries a local connection the primary accepted on a route and numbered. */
  async carryLocal(routeName: string, local: Socket, session: string, channel: number): Promise<void> {
    await this.route(routeName, local).carry(local, session, channel);
  }

  /** Worker role: tells a route's peer that channels (of a worker that died) ended. */
  async tellPeer(routeName: string, session: string, channels: number[], code: ErrorCode, message: string): Promise<number> {
    return this.route(routeName).tellPeer(session, channels, code, message);
  }

  /** Worker role: the peer's ABORT, for the channels that run in this process. */
  endPeerChannels(owner: string, session: string, channels: number[], code: ErrorCode, message: string): number {
    return this.server?.endChannels(owner, session, channels, code, message) ?? 0;
  }

  /** Worker role: the peer's REPORT, for a channel that ran in this process. */
  lookupEnd(owner: string, session: string, channel: number): EndRecord | undefined {
    return this.server?.lookupEnd(owner, session, channel);
  }

  /** This process's channels as plain data. */
  snapshot(): ChannelSnapshot[] {
    return this.channels.list().map(snapshotOf);
  }

  private route(name: string, local?: Socket): Route {
    const route = this.routes.find((r) => r.name === name);
    if (route) return route;
    local?.resetAndDestroy();
    throw new VmgateError('config-invalid', `route ${name} is not in this worker's config; restart the gateway after changing routes`);
  }

  /**
   * Re-reads the config file and reloads certificates, CRL, credential store,
   * allow-lists and route passwords. All or nothing: on any error the last
   * good state stays and the error is returned (and logged). Listeners and
   * channels in flight are untouched.
   */
  async reload(): Promise<VmgateError | undefined> {
    try {
      const next = await loadReloadable(await loadConfig(this.config.file), this.config);
      this.state = next;
      this.server?.setIdentity(next.identity);
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
    const closing = [this.server?.close(), ...this.routes.map((r) => r.close())];
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
    const common = { identity: () => this.state.identity, channels: this.channels, closeGraceMs: this.config.channel.closeGraceMs, metrics };
    if (this.config.server) {
      this.server = new InboundServer({
        ...common,
        config: this.config.server,
        targets: () => this.state.targets,
        credentials: () => this.state.credentials,
        log: this.log.child({ role: 'server' }),
        ...(this.worker ? { order: this.worker.order, notices: this.worker.notices } : {}),
      });
      if (!this.worker) await this.server.listen();
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
    if (this.config.control) {
      const gid = this.config.control.group === undefined ? undefined : await groupId(this.config.control.group);
      this.admin = await startAdminSocket({ path: this.config.control.socket, gid }, (req) => this.control(req), this.log);
    }
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
        server: this.server ? formatHostPort(this.server.address()) : null,
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

  /** What `vmgate status` shows. */
  status(): Record<string, unknown> {
    return {
      name: this.config.name,
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      server: this.server && !this.worker ? formatHostPort(this.server.address()) : null,
      routes: this.routes.map((r) => ({ name: r.name, listen: r.address(), peer: r.peerStatus() })),
      targets: [...this.state.targets.keys()],
      channels: this.channels.size,
      sessions: sessionViews(this.snapshot()).length,
      identity: { subject: subject(this.state.identity), validTo: this.state.identity.server.cert.validTo },
    };
  }

  /** Answers the control socket. */
  private async control(req: ReturnType<typeof adminRequestSchema.parse>): Promise<Record<string, unknown>> {
    switch (req.op) {
      case 'status':
        return this.status();
      case 'sessions':
        return { sessions: sessionViews(this.snapshot()) };
      case 'cancel': {
        const what = req.channel === undefined ? `session ${req.session}` : `channel ${req.channel} of session ${req.session}`;
        const n = this.channels.abortAll('cancelled', `cancelled by an operator (${what})`, req.session, req.channel);
        if (n === 0) throw new VmgateError('target-unknown', `no open ${what} on this gateway (see vmgate sessions)`);
        this.log.warn({ event: 'cancelled', session: req.session, channel: req.channel, channels: n }, `operator cancelled ${what}: ended ${n} channel(s)`);
        return { cancelled: n };
      }
    }
  }

  private warnExpiry(): void {
    for (const w of expiringSoon(this.state.identity, EXPIRY_WARNING_DAYS)) {
      this.log.warn({ event: 'cert-expiring', file: w.file, daysLeft: w.daysLeft }, `certificate ${w.file} (${w.subject}) expires in ${w.daysLeft} day(s); renew it with certs/vmgate-pki renew`);
    }
  }
}

/**
 * Loads every file the config names. With `running`, the listeners of the
 * running config stay: a reload may change files and allow-lists, not ports.
 * `vmgate check-config` loads through here too, so it checks what `run` would.
 */
export async function loadReloadable(config: Config, running?: Config): Promise<Reloadable> {
  const identity = await loadIdentity(config.tls);
  const credentials = config.server ? await CredentialStore.load(config.server.credentials) : CredentialStore.empty();
  const passwords = new Map<string, string>();
  for (const r of (running ?? config).routes) {
    const fresh = config.routes.find((c) => c.name === r.name) ?? r;
    passwords.set(r.name, await readPassword(fresh.passwordFile, r.name));
  }
  return { identity, credentials, targets: config.server?.targets ?? new Map(), passwords };
}

async function readPassword(file: string, route: string): Promise<string> {
  const text = (await readSecretFile(file, `password file of route ${route}`)).toString('utf8').replace(/\r?\n$/, '');
  if (text.length === 0) throw new VmgateError('config-invalid', `password file ${file} of route ${route} is empty`);
  return text;
}

function subject(id: Identity): string {
  return id.server.cert.subject.replace(/\n/g, ', ');
}
