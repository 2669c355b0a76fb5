import { randomBytes, randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { createServer, type SecureContextOptions, type Server, type TLSSocket } from 'node:tls';
import type { CredentialStore, LoginCheck } from '../auth/credential-store.js';
import { parsePlainResponse, PlainRejectedError } from '../auth/sasl-plain.js';
import type { ServerConfig, TargetConfig } from '../config/config.js';
import { formatEndpoint, formatHostPort } from '../config/endpoint.js';
import { ControlChannel, PeerError } from '../control/control-channel.js';
import { MessageType, type AbortMessage, type OpenMessage, type ProbeMessage, type ReportMessage } from '../control/messages.js';
import { VmgateError, messageOf, type ErrorCode } from '../errors.js';
import { LogThrottle } from '../log/log-throttle.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../metrics/gateway-metrics.js';
import { Relay, type RelayResult } from '../relay/relay.js';
import { ALPN_PROTOCOL, type Identity } from '../tls/identity.js';
import { peerIdentity, type PeerIdentity } from '../policy/peer-identity.js';
import { checkResumedPeer } from '../policy/resumed-peer.js';
import { TICKET_LIFETIME_MS } from '../tls/session-tickets.js';
import { classifyAuthorizationError, classifyPeerError } from '../tls/tls-errors.js';
import { authorizeOpen } from '../policy/authorize.js';
import { logChannelEnd } from '../session/channel-end-log.js';
import type { ChannelTable } from '../session/channel-table.js';
import { EndRecords, type EndRecord } from '../session/end-records.js';
import { HandshakeSlots } from '../handshake/handshake-slots.js';
import { connectLocal } from '../local/local-socket.js';
import { PROTOCOL_VERSION } from '../route/peer-client.js';
import { SessionOrder, type ChannelOrder } from '../session/channel-order.js';

/** After a reset from the source gateway, how long to wait for its ABORT saying why. */
const NOTICE_WAIT_MS = 1_000;

export interface InboundDeps {
  config: ServerConfig;
  /** Current allow-lists (replaced on reload). */
  targets: () => Map<string, TargetConfig>;
  identity: () => Identity;
  credentials: () => CredentialStore;
  channels: ChannelTable;
  log: Logger;
  closeGraceMs: number;
  metrics: GatewayMetrics;
  /** Who keeps channel order; default: a SessionOrder of this server. */
  order?: ChannelOrder;
  /** Where ABORT and REPORT look for channels; default: this server only. */
  notices?: PeerNotices;
}

/**
 * ABORT and REPORT arrive on their own connection, which with `workers` > 1
 * may land in another worker than the channels they name; a worker passes
 * an implementation that asks every worker (src/workers).
 */
export interface PeerNotices {
  /** Ends these channels of the owner's session wherever they run; returns how many ended. */
  abort(owner: string, session: string, channels: number[], code: ErrorCode, message: string): Promise<number>;
  /** How a channel of the owner's session ended, wherever it ran. */
  report(owner: string, session: string, channel: number): Promise<EndRecord | undefined>;
}

/** An authenticated client connection after SASL: who it is and its control channel. */
interface Authenticated {
  s: TLSSocket;
  raw: Socket;
  ctrl: ControlChannel;
  peer: PeerIdentity;
  user: string;
  /** How SASL accepted the user (a full scrypt run, or a recent or concurrent one of the same login). */
  login: LoginCheck['via'];
  log: Logger;
  started: number;
  /** Stops the handshake deadline; call once the connection leaves the control phase. */
  handshakeDone: () => void;
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
  private readonly ends = new EndRecords();
  /** Raw TCP sockets by remote address, to find the one under a TLS socket. */
  private readonly raws = new Map<string, Socket>();
  private readonly slots: HandshakeSlots;
  /** Raw sockets of connections in their data phase (see close). */
  private readonly relaying = new WeakSet<Socket>();
  private readonly throttle: LogThrottle;
  /** When each TCP connection was accepted: the set-up time includes TLS. */
  private readonly acceptedAt = new WeakMap<Socket, number>();

  constructor(private readonly deps: InboundDeps) {
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
      this.server.once('error', (e) => reject(new VmgateError('config-invalid', `cannot listen on ${formatHostPort({ host, port })}: ${messageOf(e)}`, { cause: e })));
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

  /** Ends these channels of the owner's session that run here, and keeps the cause for a relay about to end. Returns how many ended. */
  endChannels(owner: string, session: string, channels: number[], code: ErrorCode, message: string): number {
    let count = 0;
    for (const channel of channels) {
      const entry = this.deps.channels.find(owner, session, channel);
      if (entry) {
        entry.relay.abort(code, `source gateway: ${message}`);
        count += 1;
      }
      this.ends.notice(owner, session, channel, { code, message });
    }
    return count;
  }

  /** How a channel of the owner's session ended here, if it ran here. */
  lookupEnd(owner: string, session: string, channel: number): EndRecord | undefined {
    return this.ends.lookup(owner, session, channel);
  }

  private onConnection(raw: Socket): void {
    const address = raw.remoteAddress ?? '?';
    const refused = this.slots.take(address);
    if (refused !== undefined) {
      const { maxHandshakes, maxHandshakesPerAddress } = this.deps.config;
      const why = refused === 'total'
        ? `${maxHandshakes} handshakes already in progress (server.maxHandshakes)`
        : `${maxHandshakesPerAddress} handshakes from ${address} already in progress (server.maxHandshakesPerAddress)`;
      this.throttle.warn(`busy-${refused}`, { event: 'channel-refused', cause: 'busy', cap: refused, remote: address }, `refused a connection from ${address}: ${why}; a flood, or raise the cap if this is a real peer`);
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
    const remote = s.remoteAddress;
    this.throttle.warn(`tls-${err.code}`, { event: 'channel-refused', cause: err.code, remote }, `TLS handshake with ${remote ?? 'a client'} failed: ${err.message}`);
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
    const ctrl = new ControlChannel(s, classifyPeerError, [MessageType.OPEN, MessageType.ABORT, MessageType.REPORT, MessageType.PROBE]);
    let log = this.deps.log.child({ conn: randomUUID(), remote: `${s.remoteAddress}:${s.remotePort}` });
    let conn: Authenticated | undefined;
    let timedOut = false;
    const deadline = setTimeout(() => {
      const e = new VmgateError('handshake-timeout', `the control handshake did not finish within ${this.deps.config.handshakeTimeoutMs} ms`);
      log.warn({ event: 'channel-refused', cause: e.code }, e.message);
      timedOut = true;
      this.deps.metrics.handshakeFailed('server', e.code);
      ctrl.refuse(e);
      setTimeout(() => s.destroy(), 1000).unref();
    }, this.deps.config.handshakeTimeoutMs);
    const handshakeDone = (): void => {
      clearTimeout(deadline);
      raw.emit('vmgate:handshake-done');
    };
    try {
      const peer = verifyClient(s, this.deps.identity());
      log = log.child({ identity: peer.commonName });
      const hello = await ctrl.expect(MessageType.HELLO);
      if (!hello.versions.includes(PROTOCOL_VERSION)) {
        throw new VmgateError('version-unsupported', `the client speaks versions ${hello.versions.join(', ')}; this gateway speaks ${PROTOCOL_VERSION}`);
      }
      ctrl.send({ type: MessageType.WELCOME, version: PROTOCOL_VERSION, mechanisms: ['PLAIN'] });
      const { user, login } = await this.authenticate(ctrl, log);
      log = log.child({ user });
      ctrl.send({ type: MessageType.AUTH_OK, user });
      conn = { s, raw, ctrl, peer, user, login, log, started, handshakeDone };
      const req = await ctrl.expectOneOf([MessageType.OPEN, MessageType.ABORT, MessageType.REPORT, MessageType.PROBE]);
      if (req.type === MessageType.OPEN) await this.open(conn, req);
      else if (req.type === MessageType.ABORT) await this.abort(conn, req);
      else if (req.type === MessageType.REPORT) await this.report(conn, req);
      else this.probe(conn, req);
    } catch (e: unknown) {
      handshakeDone();
      const err = e instanceof VmgateError ? e : new VmgateError('internal', messageOf(e), { cause: e });
      const who = err instanceof PeerError ? 'the client gateway refused: ' : '';
      log = conn?.log ?? log;
      log.warn({ event: 'channel-refused', cause: err.code, setupMs: Date.now() - started }, `channel refused (${err.code}): ${who}${err.message}`);
      if (!timedOut) this.deps.metrics.handshakeFailed('server', err.code); // a timeout was counted when it fired
      if (!(err instanceof PeerError)) ctrl.refuse(publicError(err));
      setTimeout(() => s.destroy(), 1000).unref();
    }
  }

  private async authenticate(ctrl: ControlChannel, log: Logger): Promise<{ user: string; login: LoginCheck['via'] }> {
    const auth = await ctrl.expect(MessageType.AUTH);
    if (auth.mechanism !== 'PLAIN') {
      throw new VmgateError('auth-mechanism', `mechanism ${auth.mechanism} is not offered (PLAIN is)`);
    }
    let username: string;
    let password: string;
    try {
      ({ username, password } = parsePlainResponse(auth.response));
    } catch (e: unknown) {
      const reason = e instanceof PlainRejectedError ? e.reason : 'malformed';
      log.warn({ event: 'auth-rejected', reason }, `SASL PLAIN response rejected before any password check: ${messageOf(e)}`);
      throw new VmgateError('auth-failed', 'authentication failed');
    }
    const check = await this.deps.credentials().check(username, password);
    if (!check.accepted) {
      log.warn({ event: 'auth-rejected', reason: 'bad-credentials', user: username }, `SASL user ${JSON.stringify(username)}: unknown user or wrong password`);
      throw new VmgateError('auth-failed', 'authentication failed');
    }
    return { user: username, login: check.via };
  }

  /** OPEN: connect the target in session order, answer OPENED, relay until the end. */
  private async open(c: Authenticated, open: OpenMessage): Promise<void> {
    const log = c.log.child({ session: open.session, channel: open.channel, target: open.target });
    c.log = log;
    const target = authorizeOpen(this.deps.targets(), open.target, c.peer, c.user);
    if (this.deps.channels.size >= this.deps.config.maxChannels) {
      throw new VmgateError('busy', `${this.deps.channels.size} channels already open (server.maxChannels)`);
    }
    const owner = c.peer.fingerprint256;
    let local: Socket;
    await this.order.turn(owner, open.session, open.channel);
    try {
      local = await connectLocal(target.connect, this.deps.config.handshakeTimeoutMs);
    } catch (e: unknown) {
      this.order.closed(owner, open.session);
      throw e;
    } finally {
      this.order.release(owner, open.session, open.channel);
    }
    c.handshakeDone();
    this.deps.metrics.handshakeSucceeded('server', Date.now() - c.started);
    c.ctrl.send({ type: MessageType.OPENED });
    const remainder = c.ctrl.detach();
    log.info({ event: 'channel-open', connect: formatEndpoint(target.connect), setupMs: Date.now() - c.started, tlsResumed: c.s.isSessionReused(), login: c.login }, `channel ${open.channel} of session ${open.session} open to target ${target.name}`);
    this.relaying.add(c.raw);
    const relay = new Relay(local, c.s, c.raw, { localCause: 'target-closed', closeGraceMs: this.deps.closeGraceMs, initialFromPeer: remainder });
    const entry = this.deps.channels.add({ relay, role: 'server', session: open.session, channel: open.channel, target: target.name, peer: c.peer.commonName, owner });
    let result: RelayResult = await relay.done;
    this.deps.channels.remove(entry);
    this.order.closed(owner, open.session);
    if (result.cause === 'target-closed') result = { ...result, message: `target ${formatEndpoint(target.connect)}: ${result.message}` };
    this.ends.record(owner, open.session, open.channel, { cause: result.cause, message: result.message, bytesIn: result.bytesIn, bytesOut: result.bytesOut });
    if (result.cause === 'peer-reset') {
      // The source gateway's reset usually races ahead of its ABORT saying why.
      const notice = await this.ends.waitForNotice(owner, open.session, open.channel, NOTICE_WAIT_MS);
      if (notice) result = { ...result, cause: notice.code, message: `source gateway: ${notice.message}` };
    }
    logChannelEnd(log, result);
    this.deps.metrics.channelEnded(entry, result.cause);
  }

  /** ABORT: the client gateway ended these channels; end ours the same way, at once. */
  private async abort(c: Authenticated, req: AbortMessage): Promise<void> {
    c.handshakeDone();
    const owner = c.peer.fingerprint256;
    const count = this.deps.notices
      ? await this.deps.notices.abort(owner, req.session, req.channels, req.code, req.message)
      : this.endChannels(owner, req.session, req.channels, req.code, req.message);
    c.log.info({ event: 'peer-abort', session: req.session, channels: req.channels, cause: req.code, ended: count }, `the source gateway ended ${req.channels.length} channel(s) of session ${req.session} (${req.code}): ${req.message}`);
    c.ctrl.send({ type: MessageType.ABORTED, count });
    c.s.end();
  }

  /**
   * PROBE: the client gateway checks, ahead of any migration, that it could
   * open a channel to this target (TLS, SASL and authorization all passed by
   * now). The target is not connected: a connection to it IS a migration.
   */
  private probe(c: Authenticated, req: ProbeMessage): void {
    c.handshakeDone();
    authorizeOpen(this.deps.targets(), req.target, c.peer, c.user);
    c.log.debug({ event: 'peer-probe', target: req.target, login: c.login }, `probe from ${c.peer.commonName}: target ${req.target} may be opened`);
    c.ctrl.send({ type: MessageType.PROBED });
    c.s.end();
  }

  /** REPORT: say how a channel of this peer's session ended here. */
  private async report(c: Authenticated, req: ReportMessage): Promise<void> {
    c.handshakeDone();
    const owner = c.peer.fingerprint256;
    const r = this.deps.notices ? await this.deps.notices.report(owner, req.session, req.channel) : this.lookupEnd(owner, req.session, req.channel);
    if (!r) throw new VmgateError('target-unknown', `no record of channel ${req.channel} of session ${req.session} on this gateway`);
    c.ctrl.send({ type: MessageType.REPORTED, code: r.cause, message: r.message, bytesIn: r.bytesIn, bytesOut: r.bytesOut });
    c.s.end();
  }
}

/**
 * Checks the client certificate that OpenSSL verified (or not) during the
 * handshake. On a resumed session that is the certificate and verdict of the
 * full handshake it resumes, so its time and the current CRL are checked again.
 */
function verifyClient(s: TLSSocket, id: Identity): PeerIdentity {
  const peer = peerIdentity(s);
  // First, and never after `authorized`: a client that sent no certificate
  // and resumes its session is reported authorized by Node 20 / OpenSSL.
  if (!peer) throw new VmgateError('tls-no-client-cert', 'the client presented no certificate');
  if (!s.authorized) {
    const e = classifyAuthorizationError(String(s.authorizationError ?? 'unknown'));
    throw new VmgateError(e.code, `client certificate ${peer.commonName}: ${e.message}`);
  }
  const stale = s.isSessionReused() ? checkResumedPeer(s.getPeerCertificate(), id) : undefined;
  if (stale) throw stale;
  if (s.alpnProtocol !== ALPN_PROTOCOL) {
    throw new VmgateError('tls-protocol', `the client did not negotiate ALPN ${ALPN_PROTOCOL} (is it a vmgate gateway?)`);
  }
  return peer;
}

/**
 * What the client may learn about a refusal. Auth failures stay vague by
 * design (the server log has the detail); target errors name the target.
 */
function publicError(e: VmgateError): VmgateError {
  if (e.code === 'internal') return new VmgateError('internal', 'internal error on the server gateway; see its log');
  return e;
}

function serverContextOptions(id: Identity): SecureContextOptions {
  return { ca: id.ca, cert: id.server.certPem, key: id.server.keyPem, ...(id.crl ? { crl: id.crl } : {}) };
}

function remoteKey(s: Socket): string {
  return `${s.remoteAddress}|${s.remotePort}`;
}
