import type { RouteConfig } from '../config/config.js';
import type { ControlChannel } from '../control/control-channel.js';
import { MessageType, type PortSpan, type ReportedMessage } from '../control/messages.js';
import { formatHostPort } from '../config/endpoint.js';
import { VmgateError, type ErrorCode } from '../errors.js';
import { HEALING_VERSION, PLAIN_VERSION } from '../control/messages.js';
import { connectPeer, continueChannel, destroyPeer, openChannel, type ContinueRequest, type PeerLogin } from '../handshake/client.js';
import type { Continued, ContinuePeer } from './channel-healer.js';
import type { PeerSocket } from '../tls/dial.js';
import type { Identity } from '../tls/identity.js';
import { TicketCache } from '../tls/session-tickets.js';

/**
 * What a route asks its peer gateway, each on a connection of its own that
 * passed the client handshake (src/handshake/client.ts): open a channel
 * (OPEN), tell it about a channel's end (ABORT), ask it how a channel ended
 * there (REPORT), and check ahead of any migration that a channel could be
 * opened (PROBE). Keeps the peer's TLS session ticket, so later connections
 * resume.
 */
export class PeerClient implements ContinuePeer {
  private readonly login: PeerLogin;
  private readonly target: string;
  /** A port-range route's range: the peer checks at PROBE that its target holds it. */
  private readonly ports: PortSpan | undefined;

  /** `heals`: offer protocol version 2 (channel.healWindowMs > 0). */
  constructor(config: RouteConfig, identity: () => Identity, password: () => string, heals = true) {
    this.login = {
      versions: heals ? [HEALING_VERSION, PLAIN_VERSION] : [PLAIN_VERSION],
      peer: config.peer,
      peerName: config.peerName,
      user: config.user,
      password,
      identity,
      timeoutMs: config.connectTimeoutMs,
      tickets: new TicketCache(),
    };
    this.target = config.target;
    this.ports = config.listen.kind === 'tcp-range' ? { first: config.listen.first, last: config.listen.last } : undefined;
  }

  /**
   * Opens a channel (on a port-range route: for local `o.port`; `o.signal`
   * abandons the dial); returns the peer socket, any data bytes that followed
   * OPENED, and for a channel that heals (version 2) its secret and the
   * peer's instance.
   */
  async open(session: string, channel: number, o: { port?: number | undefined; signal?: AbortSignal } = {}): Promise<OpenedChannel> {
    const conn = await connectPeer(this.login, o.signal);
    const { remainder, secret } = await openChannel(conn, this.target, session, channel, o.port);
    const heal = conn.version >= HEALING_VERSION && secret !== undefined && conn.instance !== undefined ? { secret, instance: conn.instance } : undefined;
    return { peer: conn.peer, remainder, heal };
  }

  /** CONTINUE on a new connection, to a peer that must still be `instance`. */
  async continue(req: ContinueRequest, instance: string, signal: AbortSignal): Promise<Continued> {
    const conn = await connectPeer(this.login, signal);
    if (conn.instance !== instance) {
      conn.done();
      destroyPeer(conn.peer);
      throw new VmgateError('peer-restarted', `the peer gateway restarted since the channel opened (it is instance ${conn.instance ?? '(version 1)'}, the channel opened on ${instance}): its side of the channel is gone; the migration must start again`);
    }
    const { reply, remainder } = await continueChannel(conn, req);
    const { tls, raw } = conn.peer;
    return { hop: { tls, raw }, received: reply.received, ended: reply.ended, secret: reply.secret, remainder, path: formatHostPort(this.login.peer), tlsResumed: conn.peer.resumed };
  }

  /** Tells the peer we ended these channels, so it ends its legs with the same cause. */
  async abort(session: string, channels: number[], code: ErrorCode, message: string): Promise<number> {
    return this.request(async (ctrl) => {
      ctrl.send({ type: MessageType.ABORT, session, channels, code, message });
      return (await ctrl.expect(MessageType.ABORTED)).count;
    });
  }

  /** Asks the peer how a channel ended on its side. */
  async report(session: string, channel: number): Promise<ReportedMessage> {
    return this.request(async (ctrl) => {
      ctrl.send({ type: MessageType.REPORT, session, channel });
      return ctrl.expect(MessageType.REPORTED);
    });
  }

  /** Checks that the peer would open this route's target for us, without opening it. `signal` abandons the check. */
  async probe(signal?: AbortSignal): Promise<void> {
    await this.request(async (ctrl) => {
      ctrl.send({ type: MessageType.PROBE, target: this.target, ports: this.ports });
      await ctrl.expect(MessageType.PROBED);
    }, signal);
  }

  /** One request on its own connection; the handshake's deadline (connectTimeoutMs) also bounds the wait for the answer. */
  private async request<T>(ask: (ctrl: ControlChannel) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const { peer, ctrl, done } = await connectPeer(this.login, signal);
    const abandon = (): void => {
      // The signal is the probe's: it fires when the gateway stops (PeerProbe.stop).
      peer.tls.destroy(new VmgateError('shutdown', 'abandoned: the gateway is stopping'));
    };
    signal?.addEventListener('abort', abandon);
    try {
      return await ask(ctrl);
    } finally {
      signal?.removeEventListener('abort', abandon);
      done();
      peer.tls.end();
      setTimeout(() => peer.raw.destroy(), 1000).unref();
    }
  }
}

/** A channel the peer opened. */
export interface OpenedChannel {
  peer: PeerSocket;
  /** Data bytes that followed OPENED. */
  remainder: Buffer;
  /** Version 2: the channel's secret and the peer's instance, which healing needs; undefined for a version 1 peer. */
  heal: { secret: string; instance: string } | undefined;
}
