import type { PeerCertificate, TLSSocket } from 'node:tls';
import { buildPlainResponse } from '../auth/sasl-plain.js';
import { formatHostPort, type HostPort } from '../config/endpoint.js';
import { ControlChannel } from '../control/control-channel.js';
import { encodeMessage, MessageType, type ContinuedMessage } from '../control/messages.js';
import { VmgateError } from '../errors.js';
import { checkServer } from '../policy/peer-policy.js';
import { dialPeer, type PeerSocket } from '../tls/dial.js';
import type { Identity } from '../tls/identity.js';
import type { TicketCache } from '../tls/session-tickets.js';
import { classifyPeerError } from '../tls/tls-errors.js';

/**
 * The client side of the connection handshake (docs/protocol.md), in
 * protocol order: TLS 1.3 and the peer policy, HELLO/WELCOME, SASL PLAIN;
 * then one request, of which OPEN/OPENED is the one that starts a channel
 * (`openChannel`). The server side is src/handshake/server.ts.
 */

/** Who we dial and how we log in: a route's peer. */
export interface PeerLogin {
  peer: HostPort;
  /** The name the peer's certificate must carry (src/policy/peer-policy.ts). */
  peerName: string;
  user: string;
  password: () => string;
  identity: () => Identity;
  /** Bounds the dial, and the control phase that follows it. */
  timeoutMs: number;
  /** The peer's TLS session tickets: later connections resume. */
  tickets: TicketCache;
  /** Protocol versions to offer, highest first (docs/protocol.md §1). */
  versions: readonly number[];
}

/** A connection that passed TLS, the peer policy, HELLO and SASL: ready for one request. */
export interface ClientConnection {
  peer: PeerSocket;
  ctrl: ControlChannel;
  /** The protocol version the peer chose: 2 heals. */
  version: number;
  /** The peer gateway's instance (version 2): another one after it restarted. */
  instance: string | undefined;
  /** Stops the control-phase deadline; call once the request is answered. */
  done: () => void;
}

/** Message types after which the control phase is over: what follows is data or the end. */
const LAST_TYPES = [MessageType.OPENED, MessageType.ABORTED, MessageType.REPORTED, MessageType.PROBED, MessageType.CONTINUED] as const;

export async function connectPeer(o: PeerLogin, signal?: AbortSignal): Promise<ClientConnection> {
  const { peer, release } = await dialVerified(o, signal);
  const ctrl = new ControlChannel(peer.tls, classifyPeerError, LAST_TYPES);
  const timer = setTimeout(
    () => peer.tls.destroy(new VmgateError('handshake-timeout', `the peer did not complete the control handshake within ${o.timeoutMs} ms`)),
    o.timeoutMs,
  );
  const done = (): void => clearTimeout(timer);
  try {
    ctrl.send({ type: MessageType.HELLO, versions: [...o.versions] });
    const welcome = await ctrl.expect(MessageType.WELCOME);
    // The server's tickets precede its first frame: any ticket is kept by now.
    release();
    if (!o.versions.includes(welcome.version)) throw new VmgateError('version-unsupported', `the peer chose protocol version ${welcome.version}; this gateway offered ${o.versions.join(', ')}`);
    if (welcome.version >= 2 && welcome.instance === undefined) throw new VmgateError('protocol-violation', `the peer chose protocol version ${welcome.version} without naming its instance`);
    if (!welcome.mechanisms.includes('PLAIN')) throw new VmgateError('auth-mechanism', `the peer offers ${welcome.mechanisms.join(', ')}, not PLAIN`);
    ctrl.send({ type: MessageType.AUTH, mechanism: 'PLAIN', response: buildPlainResponse(o.user, o.password()) });
    await ctrl.expect(MessageType.AUTH_OK);
    return { peer, ctrl, done, version: welcome.version, instance: welcome.instance };
  } catch (e: unknown) {
    // A refusal may be about the session we resumed (its certificate expired since): the next dial is a full one.
    o.tickets.drop();
    release();
    done();
    destroyPeer(peer);
    throw e;
  }
}

/** OPEN: asks the peer to connect `target` as channel `channel` of `session`; returns the data bytes that followed OPENED, and the channel's secret (version 2). */
export async function openChannel(c: ClientConnection, target: string, session: string, channel: number, port?: number): Promise<{ remainder: Buffer; secret: string | undefined }> {
  try {
    c.ctrl.send({ type: MessageType.OPEN, target, session, channel, port });
    const opened = await c.ctrl.expect(MessageType.OPENED);
    if (c.version >= 2 && opened.secret === undefined) throw new VmgateError('protocol-violation', 'the peer opened a version 2 channel without its secret');
    return { remainder: c.ctrl.detach(), secret: opened.secret };
  } catch (e: unknown) {
    destroyPeer(c.peer);
    throw e;
  } finally {
    c.done();
  }
}

/** What a CONTINUE says: the channel, its current secret, and what we have read of the peer's bytes. */
export interface ContinueRequest {
  session: string;
  channel: number;
  secret: string;
  received: number;
  ended: boolean;
}

/** CONTINUE: asks the peer to go on with a channel over this connection; returns its CONTINUED and the data bytes that followed it. */
export async function continueChannel(c: ClientConnection, req: ContinueRequest): Promise<{ reply: ContinuedMessage; remainder: Buffer }> {
  try {
    c.ctrl.send({ type: MessageType.CONTINUE, ...req });
    const reply = await c.ctrl.expect(MessageType.CONTINUED);
    return { reply, remainder: c.ctrl.detach() };
  } catch (e: unknown) {
    destroyPeer(c.peer);
    throw e;
  } finally {
    c.done();
  }
}

export function destroyPeer(peer: PeerSocket): void {
  peer.tls.destroy();
  peer.raw.destroy();
}

/**
 * TCP, TLS and the peer policy. A server the policy refuses is told why in
 * an ERROR frame (it logs the refusal with our reason) and closed; nothing
 * else is ever sent to it. `release` lets other dials waiting for this one's
 * session ticket go ahead (TicketCache.forDial).
 */
async function dialVerified(o: PeerLogin, signal: AbortSignal | undefined): Promise<{ peer: PeerSocket; release: () => void }> {
  const identity = o.identity();
  const { ticket, release } = await o.tickets.forDial(identity);
  let peer: PeerSocket;
  try {
    peer = await dialPeer({
      peer: o.peer,
      peerName: o.peerName,
      identity,
      ticket,
      verify: (s: TLSSocket, cert: PeerCertificate) => checkServer(s, cert, o.peerName, identity),
      onTicket: (t) => o.tickets.put(identity, t),
      timeoutMs: o.timeoutMs,
      ...(signal ? { signal } : {}),
    });
  } catch (e: unknown) {
    // Whatever went wrong, the next dial starts from a full handshake.
    o.tickets.drop();
    release();
    throw e;
  }
  const refusal = peer.refusal;
  if (refusal === undefined) return { peer, release };
  o.tickets.drop();
  release();
  peer.tls.end(encodeMessage({ type: MessageType.ERROR, code: refusal.code, message: `the client gateway rejected the server: ${refusal.message}` }));
  destroyPeer(peer);
  throw new VmgateError(refusal.code, `${formatHostPort(o.peer)}: ${refusal.message}`);
}
