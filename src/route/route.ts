import type { Server, Socket } from 'node:net';
import type { RouteConfig } from '../config/config.js';
import { endpointsOf, formatEndpoint, formatHostPort } from '../config/endpoint.js';
import { PeerError, VmgateError, messageOf, type ErrorCode } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../metrics/gateway-metrics.js';
import { abortConnection } from '../relay/abort-connection.js';
import { Relay } from '../relay/relay.js';
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

  constructor(private readonly deps: RouteDeps) {
    this.log = deps.log.child({ route: deps.config.name, peer: deps.config.peerName, remote: formatHostPort(deps.config.peer), target: deps.config.target, user: deps.config.user });
    this.peerClient = new PeerClient(deps.config, deps.identity, deps.password);
    this.causes = new SourceCauses(this.peerClient);
    const cfg = deps.config;
    this.probe = new PeerProbe({
      intervalMs: cfg.probeIntervalMs,
      check: (signal) => this.peerClient.probe(signal),
      onResult: (up) => deps.metrics.peerProbed(cfg.name, cfg.peerName, up),
      describe: `${cfg.peerName} (${formatHostPort(cfg.peer)}) target ${cfg.target}`,
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

  /** The last probe's verdict on the peer, for `vmgate status`. */
  peerStatus(): PeerProbeStatus {
    return this.probe.status();
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
      const opened = await this.peerClient.open(session, channel, { port, signal: abandon.signal });
      peer = opened.peer;
      if (local.destroyed) throw new VmgateError('local-closed', 'QEMU closed its connection while the channel was being opened');
      this.deps.metrics.handshakeSucceeded('route', Date.now() - started);
      log.info({ event: 'channel-open', setupMs: Date.now() - started, tlsResumed: peer.resumed }, `channel ${channel} of session ${session} open to ${cfg.peerName} target ${cfg.target}`);
      const relay = new Relay(local, peer.tls, peer.raw, { localCause: 'local-closed', closeGraceMs: this.deps.closeGraceMs, initialFromPeer: opened.remainder });
      const owner = peer.serverCert.fingerprint256;
      const entry = this.deps.channels.add({ relay, role: 'route', session, channel, target: cfg.name, peer: cfg.peerName, owner, port });
      const result = await relay.done;
      this.deps.channels.remove(entry);
      const final = await this.causes.afterEnd(session, channel, result, log);
      logChannelEnd(log, final);
      this.deps.metrics.channelEnded(entry, final.cause);
    } catch (e: unknown) {
      const err = e instanceof VmgateError ? e : new VmgateError('internal', messageOf(e), { cause: e });
      const who = err instanceof PeerError ? 'the peer gateway refused: ' : '';
      log.warn({ event: 'channel-refused', cause: err.code, setupMs: Date.now() - started }, `channel could not be opened (${err.code}): ${who}${err.message}`);
      this.deps.metrics.handshakeFailed('route', err.code);
      // Reset, not close: QEMU must see a failed connection, not an empty migration.
      abortConnection(local);
      if (peer) {
        peer.tls.destroy();
        peer.raw.destroy();
      }
    }
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
