import { randomBytes } from 'node:crypto';
import type { Server, Socket } from 'node:net';
import { sessionViews, type ChannelSnapshot, type SessionView } from '../session/session-view.js';
import { openControlSocket } from '../daemon/control.js';
import { checkReload, type CheckedReload } from '../daemon/reloadable.js';
import type { StatusReply } from '../admin/admin-protocol.js';
import type { ChannelSelector, Daemon, ReloadObserver } from '../daemon/daemon.js';
import type { PeerProbeStatus, PeerState } from '../route/peer-probe.js';
import type { Config } from '../config/config.js';
import { endpointsOf, formatEndpoint, formatHostPort } from '../config/endpoint.js';
import { VmgateError, messageOf, type ErrorCode } from '../errors.js';
import { logChannelEnd } from '../session/channel-end-log.js';
import { EndRecords } from '../session/end-records.js';
import { listenLocal } from '../local/local-socket.js';
import { SessionAllocator, sessionKey } from '../session/session-allocator.js';
import { StallWatch } from '../session/stall-watch.js';
import type { Logger } from '../log/logger.js';
import { MetricsServer } from '../metrics/metrics-server.js';
import { groupId } from '../util/group-id.js';
import { remoteOf } from '../util/remote-address.js';
import type { OpHandlers } from './ipc-link.js';
import type { PrimaryNotice, PrimaryOps } from './messages.js';
import { OrderService } from '../session/order-service.js';
import { WorkerHandle, describeExit } from './worker-handle.js';
import { WorkerSlots } from './worker-slots.js';
import { newInstance } from '../server/gateway-instance.js';
import { aggregatedRegistry } from './worker-metrics.js';

/** After the drain grace, how long workers get to exit before they are killed. */
const EXIT_GRACE_MS = 10_000;

/**
 * The primary process of a gateway with `workers` > 1. It owns every
 * listening socket (route listeners, the TLS port, the control socket),
 * numbers route connections in accept order (SessionAllocator: accept order is
 * channel order), and hands each accepted socket to a worker round robin.
 * Workers do TLS, SASL, OPEN and the relay. What must span workers stays
 * here: the one SessionOrder of the server role, ABORT/REPORT lookups, the
 * stall watch over whole sessions, and the control socket. A worker that
 * dies takes only its own channels with it (logged here with cause
 * `worker-exited`) and is replaced.
 */
/** Node's ticket keys: 16 bytes of name, 16 of HMAC key, 16 of AES key. */
const TICKET_KEYS_BYTES = 48;

export class WorkerPool implements Daemon {
  private readonly workers: WorkerSlots;
  private readonly order: OrderService;
  /** Route connections numbered into sessions, keyed by route name as in Route. */
  private readonly allocator = new SessionAllocator();
  /** How channels of dead workers ended, for the peer's REPORT. */
  private readonly deadEnds = new EndRecords();
  private readonly listeners: Array<{ name: string; server: Server; route: boolean }> = [];
  private admin: Server | undefined;
  reloadObserver: ReloadObserver | undefined;
  private metrics: MetricsServer | undefined;
  /** For /readyz, as in one process: new channels are taken only while `serving`. */
  private phase: 'starting' | 'serving' | 'draining' = 'starting';
  /** A worker's own reason not to take channels (an expired certificate), as of the last poll. */
  private workerNotReady: string | null = null;
  private stallWatch: StallWatch | undefined;
  private poller: NodeJS.Timeout | undefined;
  /** Every worker's channels as of the last poll (stall watch, crash accounting). */
  private cache: ChannelSnapshot[] = [];
  private polling = false;
  private stopping: Promise<void> | undefined;
  private readonly startedAt = Date.now();
  /**
   * The TLS session ticket keys of every worker's server (docs/architecture.md,
   * "Opening channels fast"): a ticket one worker issued resumes in any other,
   * as in one process. Replaced at each reload. They only cross IPC to our
   * own children and are never logged.
   */
  private ticketKeys = randomBytes(TICKET_KEYS_BYTES);
  /** This gateway's instance, which every worker it starts is given. */
  private readonly instance = newInstance();

  private constructor(
    readonly config: Config,
    private readonly log: Logger,
  ) {
    this.workers = new WorkerSlots(config.workers, (slot) => this.spawn(slot), () => this.stopping !== undefined, log);
    this.order = new OrderService(config.server?.channelOrderTimeoutMs ?? 30_000);
  }

  /** Starts every worker (each loads and checks every file), then opens the listeners. */
  static async start(config: Config, log: Logger): Promise<WorkerPool> {
    const pool = new WorkerPool(config, log);
    try {
      // First, so that /readyz says 503 while the workers start.
      if (config.metrics) {
        const registry = aggregatedRegistry(() => Promise.all(pool.live(true).map((w) => w.link.request('metrics', null).catch(() => []))));
        pool.metrics = await MetricsServer.start({ listen: config.metrics.listen, registry, notReady: () => pool.notReady(), log: log.child({ role: 'metrics' }) });
      }
      await pool.workers.startAll();
      await pool.open();
    } catch (e: unknown) {
      await pool.stop(0);
      throw e;
    }
    return pool;
  }

  /** The TLS port's bound address (useful with port 0). */
  serverAddress(): { host: string; port: number } | undefined {
    const l = this.listeners.find((x) => !x.route);
    const a = l?.server.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
  }

  routeAddress(name: string): string | undefined {
    const ls = this.listeners.filter((x) => x.route && x.name === name);
    const a = ls.length === 1 ? ls[0]?.server.address() : undefined;
    if (a && typeof a === 'object') return `tcp:${formatHostPort({ host: a.address, port: a.port })}`;
    const rc = this.config.routes.find((r) => r.name === name);
    return rc ? formatEndpoint(rc.listen) : undefined;
  }

  /** The metrics listener's bound address; undefined when metrics are off. */
  metricsAddress(): { host: string; port: number } | undefined {
    return this.metrics?.address();
  }

  /** Why the gateway takes no new channels now (one line for /readyz), or undefined when it does. */
  notReady(): string | undefined {
    if (this.phase === 'starting') return 'starting: the gateway listeners are not open yet';
    if (this.phase === 'draining') return 'draining: the gateway is shutting down and takes no new channels';
    if (this.live().length === 0) return 'no worker process is running (a replacement is starting)';
    return this.workerNotReady ?? undefined;
  }

  /** Worker pids, slot by slot (a slot being restarted has none). */
  workerPids(): number[] {
    return this.workers.pids();
  }

  /**
   * SIGHUP: the config and every file it names are read and checked once,
   * here; a refused reload stops here and every worker keeps its state.
   * Otherwise every worker takes the very bytes that were checked, with new
   * TLS ticket keys (no session of the old identity resumes, in any worker).
   * Returns the first failure.
   */
  async reload(): Promise<VmgateError | undefined> {
    let checked: CheckedReload;
    try {
      checked = await checkReload(this.config);
    } catch (e: unknown) {
      const err = e instanceof VmgateError ? e : new VmgateError('internal', messageOf(e), { cause: e });
      this.log.error({ event: 'reload-failed', cause: err.code }, `reload failed, every worker keeps the last good state: ${err.message}`);
      return err;
    }
    this.ticketKeys = randomBytes(TICKET_KEYS_BYTES);
    const args = { ticketKeys: this.ticketKeys.toString('base64'), checked };
    const results = await Promise.all(this.live().map((w) => w.link.request('reload', args).catch((e: unknown) => ({ code: 'worker-exited' as ErrorCode, message: messageOf(e) }))));
    const failed = results.filter((r) => r !== null);
    const first = failed[0];
    this.log.info({ event: 'reload-done', workers: results.length, failed: failed.length }, `reload: ${results.length - failed.length} of ${results.length} worker(s) reloaded`);
    return first ? new VmgateError(first.code, first.message) : undefined;
  }

  /**
   * Stops accepting, lets every worker drain for up to `graceMs`, then ends
   * the rest with `shutdown`. Called again while stopping (a second
   * SIGTERM), it tells the workers the new grace and returns the same wait.
   */
  stop(graceMs = 0): Promise<void> {
    if (this.stopping) {
      for (const w of this.live(true)) w.stop(graceMs);
      return this.stopping;
    }
    this.stopping = this.shutdown(graceMs);
    return this.stopping;
  }

  private async shutdown(graceMs: number): Promise<void> {
    this.phase = 'draining';
    // close() stops accepting at once; its callback would wait for connections the workers own.
    for (const l of this.listeners) l.server.close();
    const workers = this.workers.all();
    for (const w of workers) w.stop(graceMs);
    // Channels still waiting for their turn are refused with `shutdown` now
    // (as without workers), not when the primary is gone or their wait runs out.
    this.order.stop();
    await Promise.all(workers.map(async (w) => {
      const timer = setTimeout(() => {
        this.log.error({ event: 'worker-killed', workerPid: w.pid }, `worker process ${w.pid} did not exit ${EXIT_GRACE_MS} ms after the drain; killing it`);
        w.kill();
      }, graceMs + EXIT_GRACE_MS);
      await w.exited;
      clearTimeout(timer);
    }));
    this.stallWatch?.stop();
    if (this.poller) clearInterval(this.poller);
    await new Promise<void>((resolve) => (this.admin ? this.admin.close(() => resolve()) : resolve()));
    // Last, so a scrape during the drain still sees the final counts.
    await this.metrics?.close();
  }

  private live(includeStopping = false): WorkerHandle[] {
    return this.workers.live(includeStopping);
  }

  private pick(): WorkerHandle | undefined {
    return this.workers.pick();
  }

  private spawn(slot: number): WorkerHandle {
    const w = new WorkerHandle(this.config.file, this.instance, (x) => this.handlers(x), (x, n) => this.onNotice(x, n));
    // First message, ahead of any connection: all workers resume each other's TLS sessions.
    w.link.notify({ kind: 'ticket-keys', keys: this.ticketKeys.toString('base64') });
    void w.exited.then((exit) => this.onExit(slot, w, describeExit(exit)));
    return w;
  }

  private async open(): Promise<void> {
    const server = this.config.server;
    if (server) {
      const endpoint = { kind: 'tcp' as const, host: server.listen.host, port: server.listen.port };
      this.listeners.push({ name: 'server', route: false, server: await listenLocal(endpoint, (s) => this.onInbound(s)) });
    }
    for (const rc of this.config.routes) {
      const gid = rc.socketGroup === undefined ? undefined : await groupId(rc.socketGroup, `routes.${rc.name}.socketGroup`);
      const range = rc.listen.kind === 'tcp-range';
      for (const e of endpointsOf(rc.listen)) {
        const port = range && e.kind === 'tcp' ? e.port : undefined;
        this.listeners.push({ name: rc.name, route: true, server: await listenLocal(e, (s) => this.onRouteConnection(rc.name, port, s), gid) });
      }
    }
    if (this.config.control) this.admin = await openControlSocket(this.config.control, this, this.log);
    const stallMs = this.config.channel.stallTimeoutMs;
    this.poller = setInterval(() => void this.poll(), stallMs > 0 ? Math.max(100, Math.min(1000, stallMs / 4)) : 1000);
    this.poller.unref();
    this.stallWatch = new StallWatch({ snapshot: () => this.cache, endSession: (session, message) => this.endChannels({ session }, 'stalled', message) }, stallMs, this.log);
    this.phase = 'serving';
    const address = this.serverAddress();
    const metricsAt = this.metricsAddress();
    this.log.info(
      {
        event: 'ready',
        metrics: metricsAt ? `http://${formatHostPort(metricsAt)}` : null,
        server: address ? formatHostPort(address) : null,
        routes: this.config.routes.map((r) => ({ name: r.name, listen: this.routeAddress(r.name) })),
        control: this.config.control?.socket ?? null,
        workers: this.workerPids(),
      },
      `vmgate ${this.config.name} ready with ${this.config.workers} worker processes (${this.workerPids().join(', ')})`,
    );
  }

  private onRouteConnection(route: string, port: number | undefined, local: Socket): void {
    local.on('error', () => undefined);
    // Numbered here, in accept order: that is the order the destination must connect in.
    const sk = sessionKey(route, port);
    const { session, channel } = this.allocator.accept(sk);
    const w = this.pick();
    if (!w) {
      this.allocator.release(sk, session);
      this.log.warn({ event: 'channel-refused', cause: 'worker-exited', route, session, channel }, `no worker process is running (one is being restarted): reset QEMU's connection on route ${route}; retry the migration`);
      local.resetAndDestroy();
      return;
    }
    const key = routeChannelKey(route, port, session, channel);
    w.routeChannels.add(key);
    w.link.notify({ kind: 'route-conn', route, port, session, channel }, local, (e) => {
      if (!e) return;
      w.routeChannels.delete(key);
      this.allocator.release(sk, session);
      this.log.warn({ event: 'channel-refused', cause: 'worker-exited', route, session, channel, workerPid: w.pid }, `could not hand channel ${channel} of session ${session} to worker ${w.pid}: ${e.message}; reset QEMU's connection`);
      if (!local.destroyed) local.resetAndDestroy();
    });
  }

  private onInbound(raw: Socket): void {
    raw.on('error', () => undefined);
    const w = this.pick();
    if (!w) {
      this.log.warn({ event: 'channel-refused', cause: 'worker-exited', remote: remoteOf(raw) }, 'no worker process is running (one is being restarted): closed a connection from a peer gateway; it will report the failure');
      raw.destroy();
      return;
    }
    w.link.notify({ kind: 'inbound-conn' }, raw, (e) => {
      if (!e) return;
      this.log.warn({ event: 'channel-refused', cause: 'worker-exited', remote: remoteOf(raw), workerPid: w.pid }, `could not hand a peer connection to worker ${w.pid}: ${e.message}`);
      raw.destroy();
    });
  }

  private onNotice(w: WorkerHandle, n: PrimaryNotice): void {
    switch (n.kind) {
      case 'route-released':
        if (w.routeChannels.delete(routeChannelKey(n.route, n.port, n.session, n.channel))) this.allocator.release(sessionKey(n.route, n.port), n.session);
        return;
      case 'order-release':
        this.order.release(w.id, n.owner, n.session, n.channel);
        return;
      case 'order-closed':
        this.order.closed(w.id, n.owner, n.session);
        return;
      default:
        return;
    }
  }

  private handlers(w: WorkerHandle): OpHandlers<PrimaryOps> {
    return {
      'order-turn': async (a) => {
        await this.order.turn(w.id, a.owner, a.session, a.channel);
        return null;
      },
      'peer-abort': async (a) => {
        const counts = await Promise.all(this.live(true).map((x) => x.link.request('end-peer-channels', a).catch(() => 0)));
        return counts.reduce((s, c) => s + c, 0);
      },
      'peer-report': async (a) => {
        const found = await Promise.all(this.live(true).map((x) => x.link.request('lookup-end', a).catch(() => null)));
        return found.find((r) => r !== null) ?? this.deadEnds.lookup(a.owner, a.session, a.channel) ?? null;
      },
    };
  }

  /** Refreshes the cache of every worker's channels. */
  private async poll(): Promise<ChannelSnapshot[]> {
    if (this.polling) return this.cache;
    this.polling = true;
    try {
      // A worker whose IPC closed but whose exit is not handled yet keeps its
      // last known channels: onExit accounts for them.
      const known = this.workers.all();
      const kept = (w: WorkerHandle): ChannelSnapshot[] => this.cache.filter((c) => c.pid === w.pid);
      const parts = await Promise.all(known.map(async (w) => (w.link.connected ? await w.link.request('snapshot', null).catch(() => kept(w)) : kept(w))));
      const current = new Set(this.workers.all().map((w) => w.pid));
      this.cache = parts.flat().filter((c) => current.has(c.pid));
      const first = this.live(true)[0];
      if (first) this.workerNotReady = await first.link.request('not-ready', null).catch(() => this.workerNotReady);
      return this.cache;
    } finally {
      this.polling = false;
    }
  }

  endChannels(sel: ChannelSelector, cause: ErrorCode, message: string): Promise<number> {
    const args = { session: sel.session, cause, message, ...(sel.channel === undefined ? {} : { channel: sel.channel }) };
    return Promise.all(this.live(true).map((w) => w.link.request('cancel', args).catch(() => 0))).then((counts) => counts.reduce((s, c) => s + c, 0));
  }

  async sessions(): Promise<SessionView[]> {
    return sessionViews(await this.poll());
  }

  async status(): Promise<StatusReply> {
    const channels = await this.poll();
    const all = await Promise.all(this.live().map((w) => w.link.request('status', null).catch(() => undefined)));
    const answers = all.filter((a): a is StatusReply => a !== undefined);
    const address = this.serverAddress();
    return {
      name: this.config.name,
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      server: address ? formatHostPort(address) : null,
      // Every worker probes each route's peer; show the worst verdict (docs/metrics.md, vmgate_peer_up).
      routes: this.config.routes.map((r) => ({ name: r.name, listen: this.routeAddress(r.name) ?? formatEndpoint(r.listen), peer: worstPeer(answers, r.name) })),
      targets: [...(this.config.server?.targets.keys() ?? [])],
      channels: channels.length,
      sessions: sessionViews(channels).length,
      identity: answers[0]?.identity,
      workers: this.live(true).map((w) => ({ pid: w.pid, channels: channels.filter((c) => c.pid === w.pid).length, uptimeS: Math.round((Date.now() - w.startedAt) / 1000) })),
    };
  }

  /** A worker exited. Expected when stopping; otherwise account for its channels and replace it. */
  private onExit(slot: number, w: WorkerHandle, how: string): void {
    this.workers.vacate(slot, w);
    this.order.forget(w.id);
    if (w.stopping || this.stopping) return;
    if (!w.isReady) {
      // A replacement that failed to start: start.ts or the respawn path reports it.
      return;
    }
    const lost = this.cache.filter((c) => c.pid === w.pid);
    this.cache = this.cache.filter((c) => c.pid !== w.pid);
    const toTell = new Map<string, number[]>();
    for (const key of w.routeChannels) {
      const [route = '', port = '', session = '', channel = ''] = key.split('/');
      this.allocator.release(sessionKey(route, port === '' ? undefined : Number(port)), session);
      const k = `${route}/${session}`;
      toTell.set(k, [...(toTell.get(k) ?? []), Number(channel)]);
    }
    const inSetup = Math.max(0, w.routeChannels.size - lost.filter((c) => c.role === 'route').length);
    w.routeChannels.clear();
    const message = `worker process ${w.pid} of the gateway exited unexpectedly (${how}) while carrying the channel`;
    this.log.error(
      { event: 'worker-exited', workerPid: w.pid, how, channels: lost.length, inSetup },
      `worker process ${w.pid} exited unexpectedly (${how}): its ${lost.length} channel(s) in flight` +
        (inSetup > 0 ? ` and ${inSetup} being opened` : '') +
        ' ended with cause worker-exited (QEMU sees those connections fail; retry the migration); channels of the other workers go on; starting a replacement',
    );
    const now = Date.now();
    for (const c of lost) {
      const log = this.log.child({ role: c.role, session: c.session, channel: c.channel, target: c.target, peer: c.peer, workerPid: c.pid });
      logChannelEnd(log, { cause: 'worker-exited', message: `${message} (byte counts as of the last poll)`, bytesIn: c.bytesIn, bytesOut: c.bytesOut, durationMs: now - c.startedAt });
      if (c.role === 'server') this.deadEnds.record(c.owner, c.session, c.channel, { cause: 'worker-exited', message, bytesIn: c.bytesIn, bytesOut: c.bytesOut });
    }
    for (const [key, channels] of toTell) this.tellPeer(key, channels, message);
    this.workers.replace(slot, now - w.startedAt);
  }

  /**
   * The dead worker's TLS legs ended with a bare FIN, which the peer cannot
   * tell from a clean end: a live worker sends the ABORT that says why.
   */
  private tellPeer(routeSession: string, channels: number[], message: string): void {
    const [route = '', session = ''] = routeSession.split('/');
    const w = this.pick();
    if (!w) return;
    w.link.request('tell-peer', { route, session, channels, code: 'worker-exited', message }).then(
      (n) => this.log.debug({ event: 'abort-announced', session, channels, ended: n }, `told the peer to end ${n} channel(s) of the worker that exited`),
      (e: unknown) => this.log.warn({ event: 'abort-announce-failed', session, channels }, `could not tell the peer that channels of the worker that exited ended: ${messageOf(e)}; it will notice by reset or stall`),
    );
  }

}

/** A route channel handed to a worker, as the primary tracks it until the worker releases it: `route/port/session/channel`. */
function routeChannelKey(route: string, port: number | undefined, session: string, channel: number): string {
  return `${route}/${port ?? ''}/${session}/${channel}`;
}

/**
 * The least healthy peer verdict for `route` among the workers' status
 * answers: down, then not checked, then up; and so for each path.
 */
function worstPeer(answers: readonly StatusReply[], route: string): PeerProbeStatus | undefined {
  const peers = answers.flatMap((a) => a.routes.find((r) => r.name === route)?.peer ?? []);
  const worst = worstOf(peers);
  if (worst === undefined) return undefined;
  const paths = worst.paths.map((p, i) => worstOf(peers.flatMap((q) => q.paths[i] ?? [])) ?? p);
  return { ...worst, paths };
}

function worstOf<T extends { state: PeerState }>(verdicts: readonly T[]): T | undefined {
  const rank = (p: T): number => (p.state === 'down' ? 0 : p.state === 'up' ? 2 : 1);
  let worst: T | undefined;
  for (const v of verdicts) if (worst === undefined || rank(v) < rank(worst)) worst = v;
  return worst;
}
