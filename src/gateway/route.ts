import type { Server, Socket } from 'node:net';
import { buildPlainResponse } from '../auth/sasl-plain.js';
import type { RouteConfig } from '../config/config.js';
import { formatEndpoint, formatHostPort } from '../config/endpoint.js';
import { ControlChannel, PeerError } from '../control/control-channel.js';
import { MessageType } from '../control/messages.js';
import { VmgateError, messageOf } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { Relay } from '../relay/relay.js';
import { dialPeer, type PeerSocket } from '../tls/dial.js';
import type { Identity } from '../tls/identity.js';
import { classifyPeerError } from '../tls/tls-errors.js';
import { logChannelEnd } from './channel-record.js';
import type { ChannelTable } from './channel-table.js';
import { PROTOCOL_VERSION } from './inbound-server.js';
import { listenLocal } from './local-socket.js';
import { RouteSessions } from './route-sessions.js';

export interface RouteDeps {
  config: RouteConfig;
  /** The SASL password for this route, read once from its 0600 file. */
  password: string;
  identity: () => Identity;
  channels: ChannelTable;
  log: Logger;
  closeGraceMs: number;
}

/**
 * The client role: a local listener for QEMU whose every connection becomes
 * one channel to the peer gateway's target. Nothing is read from QEMU until
 * the peer has said OPENED, so a refused channel loses no data: QEMU's
 * connection is reset and its migration fails at once with the cause logged.
 */
export class Route {
  private server: Server | undefined;
  private readonly sessions = new RouteSessions();
  private readonly log: Logger;

  constructor(private readonly deps: RouteDeps) {
    this.log = deps.log.child({ route: deps.config.name });
  }

  get name(): string {
    return this.deps.config.name;
  }

  async listen(): Promise<void> {
    this.server = await listenLocal(this.deps.config.listen, (s) => void this.onLocal(s));
  }

  /** Where QEMU should migrate to (for tcp endpoints on port 0, the real port). */
  address(): string {
    const a = this.server?.address();
    if (a && typeof a === 'object') return `tcp:${formatHostPort({ host: a.address, port: a.port })}`;
    return formatEndpoint(this.deps.config.listen);
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async onLocal(local: Socket): Promise<void> {
    const { session, channel } = this.sessions.accept();
    const cfg = this.deps.config;
    const log = this.log.child({ session, channel, peer: formatHostPort(cfg.peer), target: cfg.target });
    const started = Date.now();
    // If QEMU gives up while we dial, stop dialling.
    const abandon = new AbortController();
    const onEarlyClose = (): void => abandon.abort();
    local.once('close', onEarlyClose);
    local.on('error', () => abandon.abort());
    let peer: PeerSocket | undefined;
    try {
      peer = await dialPeer({ peer: cfg.peer, peerName: cfg.peerName, context: this.deps.identity().clientContext, timeoutMs: cfg.connectTimeoutMs, signal: abandon.signal });
      const remainder = await this.handshake(peer, session, channel);
      local.off('close', onEarlyClose);
      if (local.destroyed) throw new VmgateError('local-closed', 'QEMU closed its connection while the channel was being opened');
      log.info({ event: 'channel-open', setupMs: Date.now() - started }, `channel ${channel} of session ${session} open to ${cfg.peerName} target ${cfg.target}`);
      const relay = new Relay(local, peer.tls, peer.raw, { localCause: 'local-closed', closeGraceMs: this.deps.closeGraceMs, initialFromPeer: remainder });
      const entry = this.deps.channels.add({ relay, role: 'route', session, channel, target: cfg.name, peer: cfg.peerName });
      const result = await relay.done;
      this.deps.channels.remove(entry);
      logChannelEnd(log, result);
    } catch (e: unknown) {
      const err = e instanceof VmgateError ? e : new VmgateError('internal', messageOf(e), { cause: e });
      const who = err instanceof PeerError ? 'the peer gateway refused: ' : '';
      log.warn({ event: 'channel-refused', cause: err.code, setupMs: Date.now() - started }, `channel could not be opened (${err.code}): ${who}${err.message}`);
      // Reset, not close: QEMU must see a failed connection, not an empty migration.
      if (!local.destroyed) local.resetAndDestroy();
      if (peer) {
        peer.tls.destroy();
        peer.raw.destroy();
      }
    } finally {
      this.sessions.release(session);
    }
  }

  /** HELLO, AUTH, OPEN; returns any data bytes that followed OPENED. */
  private async handshake(peer: PeerSocket, session: string, channel: number): Promise<Buffer> {
    const cfg = this.deps.config;
    const ctrl = new ControlChannel(peer.tls, classifyPeerError);
    const timer = setTimeout(() => peer.tls.destroy(new VmgateError('handshake-timeout', `the peer did not complete the control handshake within ${cfg.connectTimeoutMs} ms`)), cfg.connectTimeoutMs);
    try {
      ctrl.send({ type: MessageType.HELLO, versions: [PROTOCOL_VERSION] });
      const welcome = await ctrl.expect(MessageType.WELCOME);
      if (welcome.version !== PROTOCOL_VERSION) throw new VmgateError('version-unsupported', `the peer chose protocol version ${welcome.version}`);
      if (!welcome.mechanisms.includes('PLAIN')) throw new VmgateError('auth-mechanism', `the peer offers ${welcome.mechanisms.join(', ')}, not PLAIN`);
      ctrl.send({ type: MessageType.AUTH, mechanism: 'PLAIN', response: buildPlainResponse(cfg.user, this.deps.password) });
      await ctrl.expect(MessageType.AUTH_OK);
      ctrl.send({ type: MessageType.OPEN, target: cfg.target, session, channel });
      await ctrl.expect(MessageType.OPENED);
      return ctrl.detach();
    } finally {
      clearTimeout(timer);
    }
  }
}
