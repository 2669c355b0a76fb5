import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { createServer, type SecureContextOptions, type Server, type TLSSocket } from 'node:tls';
import type { CredentialStore } from '../auth/credential-store.js';
import { parsePlainResponse, PlainRejectedError } from '../auth/sasl-plain.js';
import type { ServerConfig, TargetConfig } from '../config/config.js';
import { formatEndpoint, formatHostPort } from '../config/endpoint.js';
import { ControlChannel, PeerError } from '../control/control-channel.js';
import { MessageType } from '../control/messages.js';
import { VmgateError, messageOf } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { Relay } from '../relay/relay.js';
import { ALPN_PROTOCOL, type Identity } from '../tls/identity.js';
import { peerIdentity, type PeerIdentity } from '../tls/peer-identity.js';
import { classifyAuthorizationError, classifyPeerError } from '../tls/tls-errors.js';
import { authorizeOpen } from './authorize.js';
import { logChannelEnd } from './channel-record.js';
import type { ChannelTable } from './channel-table.js';
import { connectLocal } from './local-socket.js';
import { SessionOrder } from './session-order.js';

export const PROTOCOL_VERSION = 1;

export interface InboundDeps {
  config: ServerConfig;
  identity: () => Identity;
  credentials: () => CredentialStore;
  channels: ChannelTable;
  log: Logger;
  closeGraceMs: number;
}

/**
 * The server role: a TLS listener whose connections each carry one channel
 * to an allow-listed local target. Nothing reaches a target before TLS, the
 * certificate policy, SASL and the target authorization have all passed.
 */
export class InboundServer {
  private readonly server: Server;
  private readonly order: SessionOrder;
  /** Raw TCP sockets by remote address, to find the one under a TLS socket (see rawFor). */
  private readonly raws = new Map<string, Socket>();
  private handshakes = 0;

  constructor(private readonly deps: InboundDeps) {
    this.order = new SessionOrder(deps.config.channelOrderTimeoutMs);
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

  /** Swaps in a new identity for new connections; channels in flight keep theirs. */
  setIdentity(id: Identity): void {
    this.server.setSecureContext(serverContextOptions(id));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(raw: Socket): void {
    if (this.handshakes >= this.deps.config.maxHandshakes) {
      this.deps.log.warn({ event: 'channel-refused', cause: 'busy', remote: raw.remoteAddress }, `refused a connection: ${this.handshakes} handshakes already in progress (server.maxHandshakes)`);
      raw.destroy();
      return;
    }
    this.handshakes += 1;
    const key = remoteKey(raw);
    this.raws.set(key, raw);
    raw.once('close', () => {
      if (this.raws.get(key) === raw) this.raws.delete(key);
    });
    let counted = true;
    const done = (): void => {
      if (counted) this.handshakes -= 1;
      counted = false;
    };
    raw.once('close', done);
    raw.once('vmgate:handshake-done', done);
  }

  private onTlsError(e: Error, s: TLSSocket): void {
    const err = classifyPeerError(e);
    this.deps.log.warn({ event: 'channel-refused', cause: err.code, remote: s.remoteAddress }, `TLS handshake with ${s.remoteAddress ?? 'a client'} failed: ${err.message}`);
  }

  private async onSecure(s: TLSSocket): Promise<void> {
    const raw = this.raws.get(remoteKey(s));
    if (!raw) {
      s.destroy();
      return;
    }
    const started = Date.now();
    const channelId = randomUUID();
    let log = this.deps.log.child({ conn: channelId, remote: `${s.remoteAddress}:${s.remotePort}` });
    const ctrl = new ControlChannel(s, classifyPeerError);
    const deadline = setTimeout(() => {
      const e = new VmgateError('handshake-timeout', `the control handshake did not finish within ${this.deps.config.handshakeTimeoutMs} ms`);
      log.warn({ event: 'channel-refused', cause: e.code }, e.message);
      ctrl.refuse(e);
      setTimeout(() => s.destroy(), 1000).unref();
    }, Math.max(0, this.deps.config.handshakeTimeoutMs - (Date.now() - started)));
    let ordered: { owner: string; session: string } | undefined;
    try {
      const peer = verifyClient(s);
      log = log.child({ identity: peer.commonName });
      const hello = await ctrl.expect(MessageType.HELLO);
      if (!hello.versions.includes(PROTOCOL_VERSION)) {
        throw new VmgateError('version-unsupported', `the client speaks versions ${hello.versions.join(', ')}; this gateway speaks ${PROTOCOL_VERSION}`);
      }
      ctrl.send({ type: MessageType.WELCOME, version: PROTOCOL_VERSION, mechanisms: ['PLAIN'] });
      const user = await this.authenticate(ctrl, log);
      log = log.child({ user });
      ctrl.send({ type: MessageType.AUTH_OK, user });
      const open = await ctrl.expect(MessageType.OPEN);
      log = log.child({ session: open.session, channel: open.channel, target: open.target });
      const target = this.authorize(open.target, peer, user);
      if (this.deps.channels.size >= this.deps.config.maxChannels) {
        throw new VmgateError('busy', `${this.deps.channels.size} channels already open (server.maxChannels)`);
      }
      ordered = { owner: peer.fingerprint256, session: open.session };
      await this.order.turn(ordered.owner, open.session, open.channel);
      let local: Socket;
      try {
        local = await connectLocal(target.connect, this.deps.config.handshakeTimeoutMs);
      } finally {
        this.order.release(ordered.owner, open.session, open.channel);
      }
      clearTimeout(deadline);
      raw.emit('vmgate:handshake-done');
      ctrl.send({ type: MessageType.OPENED });
      const remainder = ctrl.detach();
      log.info({ event: 'channel-open', connect: formatEndpoint(target.connect), setupMs: Date.now() - started }, `channel ${open.channel} of session ${open.session} open to target ${target.name}`);
      const relay = new Relay(local, s, raw, { localCause: 'target-closed', closeGraceMs: this.deps.closeGraceMs, initialFromPeer: remainder });
      const entry = this.deps.channels.add({ relay, role: 'server', session: open.session, channel: open.channel, target: target.name, peer: peer.commonName });
      const result = await relay.done;
      this.deps.channels.remove(entry);
      logChannelEnd(log, result);
    } catch (e: unknown) {
      clearTimeout(deadline);
      raw.emit('vmgate:handshake-done');
      const err = e instanceof VmgateError ? e : new VmgateError('internal', messageOf(e), { cause: e });
      const who = err instanceof PeerError ? 'the client gateway refused: ' : '';
      log.warn({ event: 'channel-refused', cause: err.code, setupMs: Date.now() - started }, `channel refused (${err.code}): ${who}${err.message}`);
      if (!(err instanceof PeerError)) ctrl.refuse(publicError(err));
      setTimeout(() => s.destroy(), 1000).unref();
    } finally {
      if (ordered) this.order.closed(ordered.owner, ordered.session);
    }
  }

  private async authenticate(ctrl: ControlChannel, log: Logger): Promise<string> {
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
    if (!(await this.deps.credentials().verify(username, password))) {
      log.warn({ event: 'auth-rejected', reason: 'bad-credentials', user: username }, `SASL user ${JSON.stringify(username)}: unknown user or wrong password`);
      throw new VmgateError('auth-failed', 'authentication failed');
    }
    return username;
  }

  private authorize(name: string, peer: PeerIdentity, user: string): TargetConfig {
    return authorizeOpen(this.deps.config.targets, name, peer, user);
  }
}

/** Checks the client certificate that OpenSSL verified (or not) during the handshake. */
function verifyClient(s: TLSSocket): PeerIdentity {
  const peer = peerIdentity(s);
  if (!peer) throw new VmgateError('tls-no-client-cert', 'the client presented no certificate');
  if (!s.authorized) {
    const e = classifyAuthorizationError(String(s.authorizationError ?? 'unknown'));
    throw new VmgateError(e.code, `client certificate ${peer.commonName}: ${e.message}`);
  }
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
