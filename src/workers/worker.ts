import type { Socket } from 'node:net';
import { setDefaultHighWaterMark } from 'node:stream';
import { loadConfig } from '../config/load.js';
import { VmgateError, messageOf } from '../errors.js';
import { Gateway } from '../daemon/gateway.js';
import type { PeerNotices } from '../session/cause-exchange.js';
import type { ChannelOrder } from '../session/session-order.js';
import { isLogFormat, LOG_FORMAT_ENV, resolveLogFormat } from '../log/log-format.js';
import { createLogger, stdoutDestination, type Logger } from '../log/logger.js';
import { RELAY_HIGH_WATER_MARK } from '../relay/buffer-sizes.js';
import { IpcLink, type OpHandlers } from './ipc-link.js';
import { WorkerMetrics } from './worker-metrics.js';
import type { PrimaryNotice, PrimaryOps, WorkerNotice, WorkerOps } from './messages.js';

type PrimaryLink = IpcLink<WorkerOps, PrimaryOps, WorkerNotice, PrimaryNotice>;

/**
 * A worker process: one Gateway in its worker role. It listens on nothing;
 * the primary hands it accepted connections (route connections already
 * numbered), keeps channel order for it, and tells it to reload and stop.
 * Signals are the primary's business: a signal sent to the whole process
 * group (systemd's default, or Ctrl-C) must not stop a worker behind the
 * primary's back. If the primary disappears, the worker lets its channels
 * finish (channel.shutdownGraceMs) and exits.
 */
export async function runWorker(configFile: string): Promise<void> {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => undefined);
  // The sockets Node rebuilds from handed-over handles take the default
  // high-water marks, not RELAY_HIGH_WATER_MARK that the single-process
  // listener sets; nearly every stream of a worker is a relay socket, so the
  // worker's default is the relay's.
  setDefaultHighWaterMark(false, RELAY_HIGH_WATER_MARK);
  await new WorkerProcess().start(configFile);
}

class WorkerProcess {
  private gateway: Gateway | undefined;
  private log: Logger | undefined;
  private stopping: Promise<void> | undefined;
  private metrics: WorkerMetrics | undefined;
  /** The primary's TLS ticket keys, which may arrive before the gateway has started. */
  private ticketKeys: Buffer | undefined;
  private readonly link: PrimaryLink;

  constructor() {
    this.link = new IpcLink(process, this.handlers(), (n, handle) => this.onNotice(n, handle), 'the primary gateway process');
    process.on('disconnect', () => {
      if (this.stopping || !this.gateway || !this.log) return;
      const graceMs = this.gateway.config.channel.shutdownGraceMs;
      this.log.warn({ event: 'primary-gone', graceMs }, `the primary gateway process is gone: no new channels; letting this worker's channels finish for up to ${graceMs} ms`);
      this.stop(graceMs);
    });
  }

  /** Starts the gateway and tells the primary it is ready, or why it could not start. */
  async start(configFile: string): Promise<void> {
    try {
      const config = await loadConfig(configFile);
      const format = process.env[LOG_FORMAT_ENV];
      const log = createLogger(config.log.level, stdoutDestination(isLogFormat(format) ? format : resolveLogFormat('auto')), { gateway: config.name }).child({ process: 'worker' });
      this.log = log;
      const metrics = new WorkerMetrics(config.metrics !== undefined);
      this.metrics = metrics;
      this.gateway = await Gateway.start(config, log, { order: this.order(), notices: this.notices(), metrics: (deps) => metrics.endpoint(deps) });
    } catch (e: unknown) {
      const err = e instanceof VmgateError ? e : new VmgateError('internal', messageOf(e), { cause: e });
      this.link.notify({ kind: 'start-failed', code: err.code, message: err.message }, undefined, () => process.disconnect?.());
      return;
    }
    if (this.ticketKeys) this.gateway.server?.setTicketKeys(this.ticketKeys);
    this.link.notify({ kind: 'ready' });
  }

  private ready(): Gateway {
    if (!this.gateway) throw new VmgateError('internal', `worker ${process.pid} is not ready yet`);
    return this.gateway;
  }

  /** Channel order lives in the primary: a session's channels land in several workers. */
  private order(): ChannelOrder {
    return {
      turn: async (owner, session, channel) => {
        await this.link.request('order-turn', { owner, session, channel });
      },
      release: (owner, session, channel) => this.link.notify({ kind: 'order-release', owner, session, channel }),
      closed: (owner, session) => this.link.notify({ kind: 'order-closed', owner, session }),
    };
  }

  /** ABORT and REPORT may name channels of other workers: the primary asks them all. */
  private notices(): PeerNotices {
    return {
      abort: (owner, session, channels, code, message) => this.link.request('peer-abort', { owner, session, channels, code, message }),
      report: async (owner, session, channel) => (await this.link.request('peer-report', { owner, session, channel })) ?? undefined,
    };
  }

  private handlers(): OpHandlers<WorkerOps> {
    return {
      snapshot: () => this.ready().snapshot(),
      status: () => this.ready().status(),
      'not-ready': () => this.ready().notReady() ?? null,
      metrics: () => this.metrics?.json() ?? [],
      cancel: (a) => this.ready().endChannels(a, a.cause, a.message),
      'end-peer-channels': (a) => this.ready().server?.causes.endChannels(a.owner, a.session, a.channels, a.code, a.message) ?? 0,
      'lookup-end': (a) => this.ready().server?.causes.lookupEnd(a.owner, a.session, a.channel) ?? null,
      'tell-peer': (a) => this.ready().route(a.route).tellPeer(a.session, a.channels, a.code, a.message),
      reload: async (a) => {
        const gw = this.ready();
        const e = await gw.reload(a.checked);
        // Even when this worker's reload failed: every worker keeps the same keys.
        gw.server?.setTicketKeys(Buffer.from(a.ticketKeys, 'base64'));
        return e ? { code: e.code, message: e.message } : null;
      },
    };
  }

  private onNotice(n: WorkerNotice, handle: Socket | undefined): void {
    switch (n.kind) {
      case 'route-conn':
        if (handle) this.carry(n.route, n.port, handle, n.session, n.channel);
        return;
      case 'inbound-conn':
        if (handle) this.acceptInbound(handle);
        return;
      case 'ticket-keys':
        // Sent before any connection; the gateway may still be starting.
        this.ticketKeys = Buffer.from(n.keys, 'base64');
        this.gateway?.server?.setTicketKeys(this.ticketKeys);
        return;
      case 'stop':
        this.stop(n.graceMs);
        return;
    }
  }

  private stop(graceMs: number): void {
    const gw = this.gateway;
    if (!gw) {
      this.link.close();
      process.disconnect?.();
      return;
    }
    const run = gw.stop(graceMs);
    this.stopping ??= run.then(() => {
      this.log?.info({ event: 'worker-stopped' }, `worker ${process.pid} stopped`);
      // What is still waiting on the primary (a channel's turn) ends because we stop, not because the primary went.
      this.link.close(new VmgateError('shutdown', 'the gateway is stopping; the channel was still being opened'));
      if (process.connected) process.disconnect?.();
    });
  }

  private acceptInbound(raw: Socket): void {
    // The socket Node rebuilds from the handle does not allow half-open;
    // the TLS socket copies this setting, and the relay needs it.
    raw.allowHalfOpen = true;
    const server = this.ready().server;
    if (server) server.accept(raw);
    else raw.destroy();
  }

  private carry(route: string, port: number | undefined, local: Socket, session: string, channel: number): void {
    local.allowHalfOpen = true;
    local.pause();
    Promise.resolve()
      .then(() => this.ready().route(route).carry(local, session, channel, port))
      .catch((e: unknown) => {
        // Route.carry settles every channel it takes; this is a route the worker does not know.
        if (!local.destroyed) local.resetAndDestroy();
        this.log?.error({ event: 'channel-refused', cause: e instanceof VmgateError ? e.code : 'internal', session, channel }, messageOf(e));
      })
      .finally(() => this.link.notify({ kind: 'route-released', route, port, session, channel }));
  }
}
