import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { createServer, type SecureContextOptions, type Server, type TLSSocket } from 'node:tls';
import type { CredentialStore } from '../auth/credential-store.js';
import type { ChannelConfig, ServerConfig, TargetConfig } from '../config/config.js';
import { formatEndpoint, formatHostPort, type LocalEndpoint } from '../config/endpoint.js';
import { remoteOf } from '../util/remote-address.js';
import { HEALING_VERSION, MessageType, PLAIN_VERSION, type AbortMessage, type ContinueMessage, type OpenMessage, type ProbeMessage, type ReportMessage } from '../control/messages.js';
import { VmgateError, messageOf } from '../errors.js';
import { HandshakeSlots } from '../handshake/handshake-slots.js';
import { acceptContinue, acceptOpen, serveHandshake, type ServerConnection, type ServerHandshakeDeps } from '../handshake/server.js';
import { connectLocal } from '../local/local-socket.js';
import { LogThrottle } from '../log/log-throttle.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../metrics/gateway-metrics.js';
import { authorizeOpen } from '../policy/peer-policy.js';
import { checkPorts, targetEndpoint } from './target-ports.js';
import { Relay, type ChannelRelay, type RelayResult } from '../relay/relay.js';
import { HealingRelay } from '../relay/healing-relay.js';
import type { ReplayBudget } from '../relay/replay-buffer.js';
import { ContinuableChannels } from './continuable-channels.js';
import { logChannelEnd } from '../session/channel-end-log.js';
import { SessionOrder, type ChannelOrder } from '../session/session-order.js';
import type { ChannelTable } from '../session/channel-table.js';
import { DestinationCauses, type PeerNotices } from '../session/cause-exchange.js';
import { ALPN_PROTOCOL, type Identity } from '../tls/identity.js';
import { TICKET_LIFETIME_MS } from '../tls/session-tickets.js';
import { classifyPeerError } from '../tls/tls-errors.js';

export interface InboundDeps {
  config: ServerConfig;
  /** Current allow-lists (replaced on reload). */
  targets: () => Map<string, TargetConfig>;
  identity: () => Identity;
  credentials: () => CredentialStore;
  channels: ChannelTable;
  log: Logger;
  closeGraceMs: number;
  /** Link loss and healing (channel.*). */
  channel: ChannelConfig;
  /** The bytes this process's channels keep for resending, together. */
  budget: ReplayBudget;
  /** This gateway's instance (server/gateway-instance.ts), new at each start. */
  instance: string;
  metrics: GatewayMetrics;
  /** Who keeps channel order; default: a SessionOrder of this server. */
  order?: ChannelOrder;
  /** Where ABORT and REPORT look for channels; default: this server only. */
  notices?: PeerNotices;
}

/**
 * The server role: a TLS listener whose connections each carry one request:
 * a channel to an allow-listed local target (OPEN), or a notice about
 * channels that the client gateway ended (ABORT), or a question about how a
 * channel ended here (REPORT). Nothing reaches a target before TLS, the
 * certificate policy, SASL and the target authorization have all passed.
 */
export class InboundServer {
  private readonly server: Server;
  private readonly order: ChannelOrder;
  /** The order this server keeps itself (none when the primary keeps it for its workers). */
  private readonly ownOrder: SessionOrder | undefined;
  /** Raw TCP sockets by remote address, to find the one under a TLS socket. */
  private readonly raws = new Map<string, Socket>();
  private readonly slots: HandshakeSlots;
  /** Raw sockets of connections in their data phase (see close). */
  private readonly relaying = new WeakSet<Socket>();
  private readonly throttle: LogThrottle;
  /** When each TCP connection was accepted: the set-up time includes TLS. */
  private readonly acceptedAt = new WeakMap<Socket, number>();

  private readonly handshakeDeps: ServerHandshakeDeps;
  private readonly notices: PeerNotices;
  private readonly continuable = new ContinuableChannels();

  constructor(private readonly deps: InboundDeps) {
    this.causes = new DestinationCauses(deps.channels);
    this.notices = deps.notices ?? this.causes.local();
    this.handshakeDeps = {
      identity: deps.identity,
      credentials: deps.credentials,
      handshakeTimeoutMs: deps.config.handshakeTimeoutMs,
      metrics: deps.metrics,
      log: deps.log,
      // Without a heal window, channels are version 1: nothing to continue.
      versions: deps.channel.healWindowMs > 0 ? [HEALING_VERSION, PLAIN_VERSION] : [PLAIN_VERSION],
      instance: deps.instance,
    };
    if (deps.order) {
      this.order = deps.order;
      this.ownOrder = undefined;
    } else {
      this.ownOrder = new SessionOrder(deps.config.channelOrderTimeoutMs);
      this.order = this.ownOrder;
    }
    this.throttle = new LogThrottle(deps.log);
    this.slots = new HandshakeSlots(deps.config.maxHandshakes, deps.config.maxHandshakesPerAddress);
    this.server = createServer({
      ...serverContextOptions(deps.identity()),
      requestCert: true,
      // Verified in onSecure so the client can be told why it was refused;
      // nothing is read from an unverified client.
      rejectUnauthorized: false,
      ALPNProtocols: [ALPN_PROTOCOL],
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      allowHalfOpen: true,
      handshakeTimeout: deps.config.handshakeTimeoutMs,
      // Stateless TLS 1.3 tickets: a gateway's later channels resume (see setIdentity).
      sessionTimeout: TICKET_LIFETIME_MS / 1000,
    });
    // Registered after tls.Server's own listener, so the TLS socket exists already.
    this.server.on('connection', (raw: Socket) => this.onConnection(raw));
    this.server.on('secureConnection', (s: TLSSocket) => void this.onSecure(s));
    this.server.on('tlsClientError', (e: Error, s: TLSSocket) => this.onTlsError(e, s));
  }

  async listen(): Promise<void> {
    const { host, port } = this.deps.config.listen;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (e) => {
        const address = formatHostPort({ host, port });
        reject(new VmgateError('listen-failed', `cannot listen on server.listen ${address}: ${messageOf(e)}`, { cause: e, detail: { key: 'server.listen', address } }));
      });
      this.server.listen(port, host, () => resolve());
    });
  }

  address(): { host: string; port: number } {
    const a = this.server.address();
    if (a === null || typeof a === 'string') throw new VmgateError('internal', 'server is not listening on TCP');
    return { host: a.address, port: a.port };
  }

  /**
   * Swaps in a new identity for new connections; channels in flight keep
   * theirs. New ticket keys too, so no session of the old identity (its CA,
   * its CRL) can be resumed: every client's next handshake is a full one,
   * checked against what was just loaded.
   */
  setIdentity(id: Identity): void {
    this.server.setSecureContext(serverContextOptions(id));
    this.server.setTicketKeys(randomBytes(48));
  }

  /** Uses these session ticket keys from now on (workers share the primary's). */
  setTicketKeys(keys: Buffer): void {
    this.server.setTicketKeys(keys);
  }

  /**
   * Stops listening and drops every connection that is not carrying a
   * channel (in handshake, or refused and lingering): server.close() would
   * otherwise wait for them, and a client that stopped reading mid-handshake
   * could hold the stop for ever. Channels are the gateway's to end.
   */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // A channel waiting for its turn is refused with `shutdown` now, not when its wait runs out.
    this.ownOrder?.abandonAll();
    for (const raw of this.raws.values()) if (!this.relaying.has(raw)) raw.destroy();
    return closed;
  }

  /** Serves a TCP connection accepted elsewhere (a worker's connections come from the primary's listener). */
  accept(raw: Socket): void {
    this.server.emit('connection', raw);
  }

  /** The destination side of the cause exchange, for this process's channels (a worker answers the primary from it). */
  readonly causes: DestinationCauses;

  private onConnection(raw: Socket): void {
    const address = raw.remoteAddress ?? '?';
    const refused = this.slots.take(address);
    if (refused !== undefined) {
      const { maxHandshakes, maxHandshakesPerAddress } = this.deps.config;
      const why = refused === 'total'
        ? `${maxHandshakes} handshakes already in progress (server.maxHandshakes)`
        : `${maxHandshakesPerAddress} handshakes from ${address} already in progress (server.maxHandshakesPerAddress)`;
      this.throttle.warn(`busy-${refused}`, { event: 'channel-refused', cause: 'busy', cap: refused, remote: remoteOf(raw) }, `refused a connection from ${address}: ${why}; a flood, or raise the cap if this is a real peer`);
      this.deps.metrics.handshakeFailed('server', 'busy');
      raw.destroy();
      return;
    }
    this.acceptedAt.set(raw, Date.now());
    const key = remoteKey(raw);
    this.raws.set(key, raw);
    let counted = true;
    const done = (): void => {
      if (counted) this.slots.release(address);
      counted = false;
    };
    raw.once('close', () => {
      done();
      if (this.raws.get(key) === raw) this.raws.delete(key);
    });
    raw.once('vmgate:handshake-done', done);
  }

  private onTlsError(e: Error, s: TLSSocket): void {
    const err = classifyPeerError(e);
    const remote = remoteOf(s);
    this.throttle.warn(`tls-${err.code}`, { event: 'channel-refused', cause: err.code, remote }, `TLS handshake with ${remote} failed: ${err.message}`);
    this.deps.metrics.handshakeFailed('server', err.code);
    // Node leaves the socket open once a tlsClientError listener exists: after a
    // handshake timeout an idle client would otherwise keep its slot for ever.
    const raw = this.raws.get(remoteKey(s));
    s.destroy();
    raw?.destroy();
  }

  private async onSecure(s: TLSSocket): Promise<void> {
    const raw = this.raws.get(remoteKey(s));
    if (!raw) {
      s.destroy();
      return;
    }
    const started = this.acceptedAt.get(raw) ?? Date.now();
    await serveHandshake(s, raw, started, this.handshakeDeps, () => raw.emit('vmgate:handshake-done'), (c, req) => {
      switch (req.type) {
        case MessageType.OPEN:
          return this.open(c, req);
        case MessageType.ABORT:
          return this.abort(c, req);
        case MessageType.REPORT:
          return this.report(c, req);
        case MessageType.PROBE:
          return this.probe(c, req);
        case MessageType.CONTINUE:
          return this.continueChannel(c, req);
      }
    });
  }

  /** OPEN: connect the target in session order, answer OPENED, relay until the end. */
  private async open(c: ServerConnection, open: OpenMessage): Promise<void> {
    const log = c.log.child({ session: open.session, channel: open.channel, target: open.target, ...(open.port === undefined ? {} : { port: open.port }) });
    c.log = log;
    const target = authorizeOpen(this.deps.targets(), open.target, c.peer, c.user);
    const connect = targetEndpoint(target, open.port);
    if (this.deps.channels.size >= this.deps.config.maxChannels) {
      throw new VmgateError('channels-full', `${this.deps.channels.size} channels already open (server.maxChannels); raise it or look for channels that should have ended (vmgate sessions)`);
    }
    const owner = c.peer.fingerprint256;
    let local: Socket;
    await this.order.turn(owner, open.session, open.channel);
    try {
      local = await connectLocal(connect, this.deps.config.handshakeTimeoutMs);
    } catch (e: unknown) {
      this.order.closed(owner, open.session);
      throw e;
    } finally {
      this.order.release(owner, open.session, open.channel);
    }
    this.deps.metrics.handshakeSucceeded('server', Date.now() - c.started);
    const entryOf = (relay: ChannelRelay) => ({ relay, role: 'server' as const, session: open.session, channel: open.channel, target: target.name, peer: c.peer.commonName, owner, port: open.port });
    let relay: ChannelRelay;
    let entry;
    if (c.version >= HEALING_VERSION) {
      const healing = this.healingRelay(local, connect, log);
      entry = this.deps.channels.add(entryOf(healing));
      relay = healing;
      healing.start({ tls: c.s, raw: c.raw }, acceptOpen(c, this.continuable.add(entry, healing, c)));
    } else {
      relay = new Relay(local, c.s, c.raw, { localCause: 'target-closed', closeGraceMs: this.deps.closeGraceMs, initialFromPeer: acceptOpen(c) });
      entry = this.deps.channels.add(entryOf(relay));
    }
    log.info({ event: 'channel-open', connect: formatEndpoint(connect), setupMs: Date.now() - c.started, tlsResumed: c.s.isSessionReused(), login: c.login, version: c.version }, `channel ${open.channel} of session ${open.session} open to target ${target.name}`);
    this.relaying.add(c.raw);
    let result: RelayResult = await relay.done;
    this.deps.channels.remove(entry);
    this.continuable.remove(entry);
    if (relay.state === 'healing' && result.cause !== 'ok') this.deps.metrics.healFailed('server', result.cause);
    this.order.closed(owner, open.session);
    if (result.cause === 'target-closed' && relay instanceof Relay) result = { ...result, message: `target ${formatEndpoint(connect)}: ${result.message}` };
    result = await this.causes.afterEnd(owner, open.session, open.channel, result);
    logChannelEnd(log, result);
    this.deps.metrics.channelEnded(entry, result.cause);
  }

  /** A version 2 channel's relay; started once OPENED is sent (the channel must be in the table, and continuable, first). */
  private healingRelay(local: Socket, connect: LocalEndpoint, log: Logger): HealingRelay {
    const ch = this.deps.channel;
    const relay: HealingRelay = new HealingRelay(local, {
      localCause: 'target-closed',
      names: { local: `target ${formatEndpoint(connect)}`, peer: 'source gateway' },
      closeGraceMs: this.deps.closeGraceMs,
      linkTimeoutMs: ch.linkTimeoutMs,
      healWindowMs: ch.healWindowMs,
      replayBufferBytes: ch.replayBufferBytes,
      budget: this.deps.budget,
      onLinkLost: (cause, message) => {
        const { bytesIn, bytesOut } = relay.counters;
        log.warn({ event: 'link-lost', cause, bytesIn, bytesOut, healWindowMs: ch.healWindowMs }, `link to the source gateway lost (${cause}): ${message}; the target's connection stays open while the source gateway has ${Math.round(ch.healWindowMs / 1000)} s to continue the channel`);
        if (cause !== 'path-return') this.deps.metrics.linkLost('server', cause);
      },
    });
    return relay;
  }

  /**
   * CONTINUE (version 2): the source gateway lost its connection for a
   * channel and has made a new one (TLS and SASL passed again). Authorized
   * by ContinuableChannels; every refusal changes nothing. The channel then
   * goes on over this connection from the counts both sides give.
   */
  private async continueChannel(c: ServerConnection, req: ContinueMessage): Promise<void> {
    c.log = c.log.child({ session: req.session, channel: req.channel });
    const entry = this.deps.channels.list().find((e) => e.role === 'server' && e.session === req.session && e.channel === req.channel);
    if (!entry) {
      const ended = await this.notices.report(c.peer.fingerprint256, req.session, req.channel);
      if (ended && ended.cause !== 'ok') throw new VmgateError(ended.cause, `channel ${req.channel} of session ${req.session} already ended on this gateway: ${ended.message}`);
      if (this.deps.notices && !ended) throw new VmgateError('heal-elsewhere', `channel ${req.channel} of session ${req.session} is not carried by worker ${process.pid}; dial again`);
      throw new VmgateError('heal-unknown', `no channel ${req.channel} of session ${req.session} on this gateway${ended ? ' (it ended normally)' : ''}`);
    }
    const { relay, secret } = this.continuable.authorize(entry, c, req);
    const { bytes, ended } = relay.received;
    const remainder = acceptContinue(c, bytes, ended, secret);
    this.relaying.add(c.raw);
    const healed = relay.resume({ tls: c.s, raw: c.raw }, req.received, req.ended, remainder);
    c.log.info({ event: 'link-healed', outageMs: healed.outageMs, resentBytes: healed.resentBytes, tlsResumed: c.s.isSessionReused() }, `channel ${req.channel} of session ${req.session} continued by the source gateway after ${(healed.outageMs / 1000).toFixed(1)} s; resent ${healed.resentBytes} bytes`);
    this.deps.metrics.linkHealed('server', healed.resentBytes);
  }

  /** ABORT: the client gateway ended these channels; end ours the same way, at once. */
  private async abort(c: ServerConnection, req: AbortMessage): Promise<void> {
    c.handshakeDone();
    const owner = c.peer.fingerprint256;
    const count = await this.notices.abort(owner, req.session, req.channels, req.code, req.message);
    c.log.info({ event: 'peer-abort', session: req.session, channels: req.channels, cause: req.code, ended: count }, `the source gateway ended ${req.channels.length} channel(s) of session ${req.session} (${req.code}): ${req.message}`);
    c.ctrl.send({ type: MessageType.ABORTED, count });
    c.s.end();
  }

  /**
   * PROBE: the client gateway checks, ahead of any migration, that it could
   * open a channel to this target (TLS, SASL and authorization all passed by
   * now). The target is not connected: a connection to it IS a migration.
   */
  private probe(c: ServerConnection, req: ProbeMessage): void {
    c.handshakeDone();
    checkPorts(authorizeOpen(this.deps.targets(), req.target, c.peer, c.user), req.ports);
    c.log.debug({ event: 'peer-probe', target: req.target, login: c.login }, `probe from ${c.peer.commonName}: target ${req.target} may be opened`);
    c.ctrl.send({ type: MessageType.PROBED });
    c.s.end();
  }

  /** REPORT: say how a channel of this peer's session ended here. */
  private async report(c: ServerConnection, req: ReportMessage): Promise<void> {
    c.handshakeDone();
    const owner = c.peer.fingerprint256;
    const r = await this.notices.report(owner, req.session, req.channel);
    if (!r) throw new VmgateError('report-unknown', `no record of channel ${req.channel} of session ${req.session} on this gateway`);
    c.ctrl.send({ type: MessageType.REPORTED, code: r.cause, message: r.message, bytesIn: r.bytesIn, bytesOut: r.bytesOut });
    c.s.end();
  }
}

function serverContextOptions(id: Identity): SecureContextOptions {
  return { ca: id.ca, cert: id.server.certPem, key: id.server.keyPem, ...(id.crl ? { crl: id.crl } : {}) };
}

function remoteKey(s: Socket): string {
  return `${s.remoteAddress}|${s.remotePort}`;
}
