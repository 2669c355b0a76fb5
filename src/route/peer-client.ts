import { buildPlainResponse } from '../auth/sasl-plain.js';
import type { RouteConfig } from '../config/config.js';
import { ControlChannel } from '../control/control-channel.js';
import { MessageType, type ReportedMessage } from '../control/messages.js';
import { VmgateError, type ErrorCode } from '../errors.js';
import { dialPeer, type PeerSocket } from '../tls/dial.js';
import type { Identity } from '../tls/identity.js';
import { TicketCache } from '../tls/session-tickets.js';
import { classifyPeerError } from '../tls/tls-errors.js';

export const PROTOCOL_VERSION = 1;

/**
 * The client side of the control protocol towards one peer gateway: dial,
 * TLS, HELLO, SASL. A route uses it to open channels, to tell the peer
 * about (ABORT) or ask it about (REPORT) a channel's end, and to check ahead
 * of any migration that a channel could be opened (PROBE).
 */
export class PeerClient {
  /** The peer's newest TLS session ticket: later channels resume instead of a full handshake. */
  private readonly tickets = new TicketCache();

  constructor(
    private readonly config: RouteConfig,
    private readonly identity: () => Identity,
    private readonly password: () => string,
  ) {}

  /** A TLS connection that has passed HELLO and SASL, ready for one request. */
  async connect(signal?: AbortSignal): Promise<{ peer: PeerSocket; ctrl: ControlChannel; done: () => void }> {
    const cfg = this.config;
    const identity = this.identity();
    const { ticket, release } = await this.tickets.forDial(identity);
    let peer: PeerSocket;
    try {
      peer = await dialPeer({
        peer: cfg.peer,
        peerName: cfg.peerName,
        identity,
        ticket,
        onTicket: (t) => this.tickets.put(identity, t),
        timeoutMs: cfg.connectTimeoutMs,
        ...(signal ? { signal } : {}),
      });
    } catch (e: unknown) {
      // Whatever went wrong, the next dial starts from a full handshake.
      this.tickets.drop();
      release();
      throw e;
    }
    const ctrl = new ControlChannel(peer.tls, classifyPeerError, [MessageType.OPENED, MessageType.ABORTED, MessageType.REPORTED, MessageType.PROBED]);
    const timer = setTimeout(
      () => peer.tls.destroy(new VmgateError('handshake-timeout', `the peer did not complete the control handshake within ${cfg.connectTimeoutMs} ms`)),
      cfg.connectTimeoutMs,
    );
    const done = (): void => clearTimeout(timer);
    try {
      ctrl.send({ type: MessageType.HELLO, versions: [PROTOCOL_VERSION] });
      const welcome = await ctrl.expect(MessageType.WELCOME);
      // The server's tickets precede its first frame: any ticket is kept by now.
      release();
      if (welcome.version !== PROTOCOL_VERSION) throw new VmgateError('version-unsupported', `the peer chose protocol version ${welcome.version}`);
      if (!welcome.mechanisms.includes('PLAIN')) throw new VmgateError('auth-mechanism', `the peer offers ${welcome.mechanisms.join(', ')}, not PLAIN`);
      ctrl.send({ type: MessageType.AUTH, mechanism: 'PLAIN', response: buildPlainResponse(cfg.user, this.password()) });
      await ctrl.expect(MessageType.AUTH_OK);
      return { peer, ctrl, done };
    } catch (e: unknown) {
      // A refusal may be about the session we resumed (its certificate expired since): retry in full.
      this.tickets.drop();
      release();
      done();
      peer.tls.destroy();
      peer.raw.destroy();
      throw e;
    }
  }

  /** Opens a channel; returns the peer socket and any data bytes that followed OPENED. */
  async open(session: string, channel: number, signal?: AbortSignal): Promise<{ peer: PeerSocket; remainder: Buffer }> {
    const { peer, ctrl, done } = await this.connect(signal);
    try {
      ctrl.send({ type: MessageType.OPEN, target: this.config.target, session, channel });
      await ctrl.expect(MessageType.OPENED);
      return { peer, remainder: ctrl.detach() };
    } catch (e: unknown) {
      peer.tls.destroy();
      peer.raw.destroy();
      throw e;
    } finally {
      done();
    }
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
      ctrl.send({ type: MessageType.PROBE, target: this.config.target });
      await ctrl.expect(MessageType.PROBED);
    }, signal);
  }

  /** One request on its own connection; connect's timer (connectTimeoutMs) also bounds the wait for the answer. */
  private async request<T>(ask: (ctrl: ControlChannel) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const { peer, ctrl, done } = await this.connect(signal);
    const abandon = (): void => {
      peer.tls.destroy(new VmgateError('cancelled', 'abandoned: the gateway is stopping'));
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
