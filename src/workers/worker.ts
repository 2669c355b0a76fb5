import type { Socket } from 'node:net';
import { setDefaultHighWaterMark } from 'node:stream';
import { loadConfig } from '../config/load.js';
import { VmgateError, messageOf } from '../errors.js';
import { Gateway } from '../daemon/gateway.js';
import type { ChannelOrder } from '../session/channel-order.js';
import { createLogger, type Logger } from '../log/logger.js';
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
  let gateway: Gateway | undefined;
  let log: Logger | undefined;
  let stopping: Promise<void> | undefined;
  let metrics: WorkerMetrics | undefined;
  let ticketKeys: Buffer | undefined;
  const ready = (): Gateway => {
    if (!gateway) throw new VmgateError('internal', `worker ${process.pid} is not ready yet`);
    return gateway;
  };
  const handlers: OpHandlers<WorkerOps> = {
    snapshot: () => ready().snapshot(),
    status: () => ready().status(),
    'not-ready': () => ready().notReady() ?? null,
    metrics: () => metrics?.json() ?? [],
    cancel: (a) => ready().channels.abortAll(a.cause, a.message, a.session, a.channel),
    'end-peer-channels': (a) => ready().endPeerChannels(a.owner, a.session, a.channels, a.code, a.message),
    'lookup-end': (a) => ready().lookupEnd(a.owner, a.session, a.channel) ?? null,
    'tell-peer': (a) => ready().tellPeer(a.route, a.session, a.channels, a.code, a.message),
    reload: async (a) => {
      const gw = ready();
      const e = await gw.reload();
      // Even when this worker's reload failed: every worker keeps the same keys.
      gw.setTicketKeys(Buffer.from(a.ticketKeys, 'base64'));
      return e ? { code: e.code, message: e.message } : null;
    },
  };
  const stop = (graceMs: number): void => {
    const gw = gateway;
    if (!gw) {
      link.close();
      process.disconnect?.();
      return;
    }
    const run = gw.stop(graceMs);
    stopping ??= run.then(() => {
      log?.info({ event: 'worker-stopped' }, `worker ${process.pid} stopped`);
      // What is still waiting on the primary (a channel's turn) ends because we stop, not because the primary went.
      link.close(new VmgateError('shutdown', 'the gateway is stopping; the channel was still being opened'));
      if (process.connected) process.disconnect?.();
    });
  };
  const onNotice = (n: WorkerNotice, handle: Socket | undefined): void => {
    switch (n.kind) {
      case 'route-conn':
        if (handle) carry(n.route, handle, n.session, n.channel);
        return;
      case 'inbound-conn':
        if (!handle) return;
        // The socket Node rebuilds from the handle does not allow half-open;
        // the TLS socket copies this setting, and the relay needs it.
        handle.allowHalfOpen = true;
        ready().acceptInbound(handle);
        return;
      case 'ticket-keys':
        // Sent before any connection; the gateway may still be starting.
        ticketKeys = Buffer.from(n.keys, 'base64');
        gateway?.setTicketKeys(ticketKeys);
        return;
      case 'stop':
        stop(n.graceMs);
        return;
    }
  };
  const carry = (route: string, local: Socket, session: string, channel: number): void => {
    local.allowHalfOpen = true;
    local.pause();
    ready()
      .carryLocal(route, local, session, channel)
      .catch((e: unknown) => log?.error({ event: 'channel-refused', cause: e instanceof VmgateError ? e.code : 'internal', session, channel }, messageOf(e)))
      .finally(() => link.notify({ kind: 'route-released', route, session, channel }));
  };
  const link: PrimaryLink = new IpcLink(process, handlers, onNotice, 'the primary gateway process');
  process.on('disconnect', () => {
    if (stopping || !gateway || !log) return;
    const graceMs = gateway.config.channel.shutdownGraceMs;
    log.warn({ event: 'primary-gone', graceMs }, `the primary gateway process is gone: no new channels; letting this worker's channels finish for up to ${graceMs} ms`);
    stop(graceMs);
  });

  try {
    const config = await loadConfig(configFile);
    log = createLogger(config.log.level).child({ gateway: config.name, process: 'worker' });
    const order: ChannelOrder = {
      turn: async (owner, session, channel) => {
        await link.request('order-turn', { owner, session, channel });
      },
      release: (owner, session, channel) => link.notify({ kind: 'order-release', owner, session, channel }),
      closed: (owner, session) => link.notify({ kind: 'order-closed', owner, session }),
    };
    const workerMetrics = new WorkerMetrics(config.metrics !== undefined);
    metrics = workerMetrics;
    gateway = await Gateway.start(config, log, {
      order,
      metrics: (deps) => workerMetrics.endpoint(deps),
      notices: {
        abort: (owner, session, channels, code, message) => link.request('peer-abort', { owner, session, channels, code, message }),
        report: async (owner, session, channel) => (await link.request('peer-report', { owner, session, channel })) ?? undefined,
      },
    });
  } catch (e: unknown) {
    const err = e instanceof VmgateError ? e : new VmgateError('internal', messageOf(e), { cause: e });
    link.notify({ kind: 'start-failed', code: err.code, message: err.message }, undefined, () => process.disconnect?.());
    return;
  }
  if (ticketKeys) gateway.setTicketKeys(ticketKeys);
  link.notify({ kind: 'ready' });
}
