import type { Server, Socket } from 'node:net';
import type { ChannelConfig, RouteConfig } from '../config/config.js';
import { endpointsOf, formatEndpoint, formatHostPort } from '../config/endpoint.js';
import { PeerError, VmgateError, messageOf, type ErrorCode } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../metrics/gateway-metrics.js';
import { abortConnection } from '../relay/abort-connection.js';
import { Relay, type ChannelRelay } from '../relay/relay.js';
import { HealingRelay } from '../relay/healing-relay.js';
import type { ReplayBudget } from '../relay/replay-buffer.js';
import { ChannelHealer } from './channel-healer.js';
import type { OpenedChannel } from './peer-client.js';
import type { PeerSocket } from '../tls/dial.js';
import type { Identity } from '../tls/identity.js';
import { logChannelEnd } from '../session/channel-end-log.js';
import type { ChannelTable } from '../session/channel-table.js';
import { groupId } from '../util/group-id.js';
import { listenLocal } from '../local/local-socket.js';
import { PeerClient } from './peer-client.js';
import { PeerProbe, type PeerProbeStatus } from './peer-probe.js';
import { SessionAllocator, sessionKey } from '../session/session-allocator.js';
import { SourceCauses } from '../session/cause-exchange.js';

export interface RouteDeps {
  config: RouteConfig;
  /** The SASL password for this route, from its 0600 file (re-read on reload). */
  password: () => string;
  identity: () => Identity;
  channels: ChannelTable;
  log: Logger;
  closeGraceMs: number;
  /** Link loss and healing (channel.*). */
  channel: ChannelConfig;
  /** The bytes this process's channels keep for resending, together. */
  budget: ReplayBudget;
  metrics: GatewayMetrics;
}

/**
 * The client role: a local listener for QEMU whose every connection becomes
 * one channel to the peer gateway's target. Nothing is read from QEMU until
 * the peer has said OPENED, so a refused channel loses no data: QEMU's
 * connection is reset and its migration fails at once with the cause logged.
 *
 * When a channel ends abnormally the two gateways exchange causes: if the
 * end started here, the peer is told (ABORT) so its QEMU learns at once even
 * when its socket is paused; if it started at the peer, the peer is asked
 * (REPORT) so this log says what happened over there.
 */
export class Route {
  private servers: Server[] = [];
  private readonly sessions = new SessionAllocator();
  private readonly log: Logger;
  private readonly peerClient: PeerClient;
  private readonly probe: PeerProbe;
  private readonly causes: SourceCauses;
  /** The healing channels of this route, by the path each runs over now. */
  private readonly healers = new Set<ChannelHealer>();

  constructor(private readonly deps: RouteDeps) {
    this.log = deps.log.child({ route: deps.config.name, peer: deps.config.peerName, target: deps.config.target, user: deps.config.user });
    this.peerClient = new PeerClient(deps.config, deps.identity, deps.password, deps.channel.healWindowMs > 0);
    this.causes = new SourceCauses(this.peerClient);
    const cfg = deps.config;
    const pc = this.peerClient;
    const paths = cfg.peers.map((_, i) => pc.pathName(i));
    this.probe = new PeerProbe({
      intervalMs: cfg.probeIntervalMs,
      paths,
      check: (path, signal) => pc.probePath(path, signal),
      onResult: (path, up) => {
        deps.metrics.peerProbed(cfg.name, cfg.peerName, paths[path] ?? '', up);
        if (up && path === this.probe.firstPathUp()) this.returnTo(path);
      },
      describe: (path) => describePath(cfg.peerName, cfg.target, paths, path),
      log: this.log,
    });
  }

  /** Starts checking the peer (routes.NAME.probeIntervalMs). */
  startProbe(): void {
    this.probe.start();
  }

  /** Checks the peer at once: a reload may have changed what it will say. */
  probeNow(): void {
    this.probe.now();
  }

  /** The last probe's verdict on the peer, and on each path, for `vmgate status`. */
  peerStatus(): PeerProbeStatus {
    return this.probe.status();
  }

  /**
   * The index of the most preferred path (0: the first address of
   * `routes.NAME.peer`) the last probe found up; undefined when the probe
   * found none up, has not run yet, or is off (probeIntervalMs 0). A
   * channel on a later path may move back to this one.
   */
  firstPathUp(): number | undefined {
    return this.probe.firstPathUp();
  }

  /** Path `i`'s address, HOST:PORT, for logs. */
  pathName(i: number): string {
    return this.peerClient.pathName(i);
  }

  get name(): string {
    return this.deps.config.name;
  }

  async listen(): Promise<void> {
    const group = this.deps.config.socketGroup;
    const gid = group === undefined ? undefined : await groupId(group, `routes.${this.name}.socketGroup`);
    const range = this.deps.config.listen.kind === 'tcp-range';
    for (const e of endpointsOf(this.deps.config.listen)) {
      const port = range && e.kind === 'tcp' ? e.port : undefined;
      this.servers.push(await listenLocal(e, (s) => void this.onLocal(s, port), gid));
    }
  }

  /** Where QEMU should migrate to (for tcp endpoints on port 0, the real port). */
  address(): string {
    const a = this.servers.length === 1 ? this.servers[0]?.address() : undefined;
    if (a && typeof a === 'object') return `tcp:${formatHostPort({ host: a.address, port: a.port })}`;
    return formatEndpoint(this.deps.config.listen);
  }

  async close(): Promise<void> {
    this.probe.stop();
    await Promise.all(this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }

  /** `port`: the port of a port-range route the connection arrived on; each port carries its own migrations. */
  private async onLocal(local: Socket, port: number | undefined): Promise<void> {
    const key = sessionKey(this.name, port);
    const { session, channel } = this.sessions.accept(key);
    try {
      await this.carry(local, session, channel, port);
    } finally {
      this.sessions.release(key, session);
    }
  }

  /**
   * Carries one local connection as channel `channel` of `session` until it
   * ends (on a port-range route, accepted on `port`). Public for worker processes (src/workers), whose connections were
   * accepted and numbered by the primary.
   */
  async carry(local: Socket, session: string, channel: number, port?: number): Promise<void> {
    const cfg = this.deps.config;
    const log = this.log.child({ session, channel, ...(port === undefined ? {} : { port }) });
    const started = Date.now();
    // If QEMU gives up while we dial, stop dialling.
    const abandon = new AbortController();
    local.on('error', () => abandon.abort(new VmgateError('local-closed', 'QEMU closed its connection while the channel was being opened')));
    let peer: PeerSocket | undefined;
    try {
      const onPathFailed = (p: number, e: VmgateError): void =>
        log.debug({ event: 'path-failed', path: p, address: this.peerClient.pathName(p), cause: e.code }, `path ${p + 1} to ${cfg.peerName} failed (${e.code}): ${e.message}; trying the next`);
      const opened = await this.peerClient.open(session, channel, { port, signal: abandon.signal, onPathFailed });
      peer = opened.peer;
      if (local.destroyed) throw new VmgateError('local-closed', 'QEMU closed its connection while the channel was being opened');
      this.deps.metrics.handshakeSucceeded('route', Date.now() - started);
      const via = this.peerClient.paths > 1 ? ` over path ${opened.path + 1} (${this.peerClient.pathName(opened.path)})` : '';
      log.info({ event: 'channel-open', remote: this.peerClient.pathName(opened.path), setupMs: Date.now() - started, tlsResumed: peer.resumed, path: opened.path, heals: opened.heal !== undefined }, `channel ${channel} of session ${session} open to ${cfg.peerName} target ${cfg.target}${via}`);
      const relay = this.relayFor(local, opened, session, channel, log);
      const owner = peer.serverCert.fingerprint256;
      const entry = this.deps.channels.add({ relay, role: 'route', session, channel, target: cfg.name, peer: cfg.peerName, owner, port });
      const result = await relay.done;
      this.deps.channels.remove(entry);
      if (relay.state === 'healing' && result.cause !== 'ok') this.deps.metrics.healFailed('route', result.cause);
      const final = await this.causes.afterEnd(session, channel, result, log);
      logChannelEnd(log, final);
      this.deps.metrics.channelEnded(entry, final.cause);
    } catch (e: unknown) {
      const err = e instanceof VmgateError ? e : new VmgateError('internal', messageOf(e), { cause: e });
      const who = err instanceof PeerError ? 'the peer gateway refused: ' : '';
      log.warn({ event: 'channel-refused', remote: this.peerClient.pathName(0), cause: err.code, setupMs: Date.now() - started }, `channel could not be opened (${err.code}): ${who}${err.message}`);
      this.deps.metrics.handshakeFailed('route', err.code);
      // Reset, not close: QEMU must see a failed connection, not an empty migration.
      abortConnection(local);
      if (peer) {
        peer.tls.destroy();
        peer.raw.destroy();
      }
    }
  }

  /** The channel's data phase: one that heals when the peer speaks version 2, else the raw relay of version 1. */
  private relayFor(local: Socket, opened: OpenedChannel, session: string, channel: number, log: Logger): ChannelRelay {
    const { peer, remainder, heal } = opened;
    if (heal === undefined) return new Relay(local, peer.tls, peer.raw, { localCause: 'local-closed', closeGraceMs: this.deps.closeGraceMs, initialFromPeer: remainder });
    const ch = this.deps.channel;
    const relay: HealingRelay = new HealingRelay(local, {
      localCause: 'local-closed',
      names: { local: 'QEMU', peer: 'destination' },
      closeGraceMs: this.deps.closeGraceMs,
      linkTimeoutMs: ch.linkTimeoutMs,
      healWindowMs: ch.healWindowMs,
      replayBufferBytes: ch.replayBufferBytes,
      budget: this.deps.budget,
      onLinkLost: (cause, message) => healer.lost(cause, message),
    });
    const healer = new ChannelHealer({ peer: this.peerClient, relay, session, channel, ...heal, path: opened.path, log, metrics: this.deps.metrics });
    this.healers.add(healer);
    void relay.done.then(() => this.healers.delete(healer));
    relay.start({ tls: peer.tls, raw: peer.raw }, remainder);
    return relay;
  }

  /** Path `path` is the most preferred one up: channels that moved to a later path come back to it. */
  private returnTo(path: number): void {
    for (const h of this.healers) h.returnTo(path, `path ${path + 1} (${this.peerClient.pathName(path)}) is up again`);
  }

  /**
   * Tells the peer that these channels ended on this side (ABORT). The
   * primary of a gateway with workers uses it, through a live worker, for
   * the channels of a worker that died: the peer cannot tell that end from a
   * clean close otherwise.
   */
  tellPeer(session: string, channels: number[], code: ErrorCode, message: string): Promise<number> {
    return this.peerClient.abort(session, channels, code, message);
  }

}

/** Who a probe of path `i` checks, for its log lines: with several paths, which one it is. */
function describePath(peerName: string, target: string, paths: readonly string[], i: number): string {
  const which = paths.length > 1 ? ` path ${i + 1} of ${paths.length}` : '';
  return `${peerName}${which} (${paths[i] ?? '?'}) target ${target}`;
}
