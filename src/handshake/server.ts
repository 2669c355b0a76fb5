import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { CredentialStore, LoginCheck } from '../auth/credential-store.js';
import { parsePlainResponse } from '../auth/sasl-plain.js';
import { ControlChannel } from '../control/control-channel.js';
import { MessageType, type AbortMessage, type ContinueMessage, type OpenMessage, type ProbeMessage, type ReportMessage } from '../control/messages.js';
import { PeerError, PlainRejectedError, VmgateError, messageOf } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../metrics/gateway-metrics.js';
import { checkClient, type PeerIdentity } from '../policy/peer-policy.js';
import type { Identity } from '../tls/identity.js';
import { classifyPeerError } from '../tls/tls-errors.js';
import { remoteOf } from '../util/remote-address.js';

/**
 * The server side of the connection handshake (docs/protocol.md), in
 * protocol order: the peer policy on the verified TLS connection,
 * HELLO/WELCOME, SASL PLAIN, then the one request the connection carries
 * (OPEN, ABORT, REPORT or PROBE), answered by the server role
 * (src/server/inbound-server.ts); an OPEN is accepted with `acceptOpen`
 * (OPENED) and anything that fails on the way is refused with an ERROR
 * frame and logged once. The client side is src/handshake/client.ts.
 *
 * One deadline (server.handshakeTimeoutMs) bounds everything from the TCP
 * accept to the answer, including an OPEN's wait for its turn and the
 * target's connect, so that an unauthenticated or stuck client cannot hold
 * a handshake slot.
 */

export type Request = OpenMessage | AbortMessage | ReportMessage | ProbeMessage | ContinueMessage;
const REQUEST_TYPES = [MessageType.OPEN, MessageType.ABORT, MessageType.REPORT, MessageType.PROBE, MessageType.CONTINUE] as const;

/** A client connection after SASL: who it is, its control channel and its request. */
export interface ServerConnection {
  s: TLSSocket;
  raw: Socket;
  ctrl: ControlChannel;
  peer: PeerIdentity;
  user: string;
  /** The protocol version chosen at WELCOME: 2 heals. */
  version: number;
  /** How SASL accepted the user (a full scrypt run, or a recent or concurrent one of the same login). */
  login: LoginCheck['via'];
  log: Logger;
  /** When the TCP connection was accepted: the set-up time includes TLS. */
  started: number;
  /** Stops the deadline and frees the handshake slot; call once the request leaves the control phase. */
  handshakeDone: () => void;
}

export interface ServerHandshakeDeps {
  identity: () => Identity;
  credentials: () => CredentialStore;
  handshakeTimeoutMs: number;
  metrics: GatewayMetrics;
  log: Logger;
  /** Protocol versions this server speaks, highest first. */
  versions: readonly number[];
  /** This gateway's instance, new at each start (WELCOME of version 2). */
  instance: string;
}

/**
 * Runs the handshake on a TLS connection and hands its request to `serve`;
 * any error thrown up to the end of `serve`'s control phase refuses the
 * connection. `onDone` frees the connection's handshake slot.
 */
export async function serveHandshake(
  s: TLSSocket,
  raw: Socket,
  started: number,
  deps: ServerHandshakeDeps,
  onDone: () => void,
  serve: (c: ServerConnection, req: Request) => Promise<void> | void,
): Promise<void> {
  const ctrl = new ControlChannel(s, classifyPeerError, REQUEST_TYPES);
  let log = deps.log.child({ conn: randomUUID(), remote: remoteOf(s) });
  let timedOut = false;
  let conn: ServerConnection | undefined;
  const deadline = setTimeout(() => {
    timedOut = true;
    const e = new VmgateError('handshake-timeout', `the control handshake did not finish within ${deps.handshakeTimeoutMs} ms`);
    log.warn({ event: 'channel-refused', cause: e.code }, e.message);
    deps.metrics.handshakeFailed('server', e.code);
    refuse(ctrl, s, e);
  }, deps.handshakeTimeoutMs);
  const handshakeDone = (): void => {
    clearTimeout(deadline);
    onDone();
  };
  try {
    // TLS: OpenSSL verified the chain and CRL; the policy reads its verdict.
    const peer = checkClient(s, deps.identity());
    log = log.child({ peer: peer.commonName });
    // HELLO / WELCOME
    const hello = await ctrl.expect(MessageType.HELLO);
    const version = deps.versions.find((v) => hello.versions.includes(v));
    if (version === undefined) {
      throw new VmgateError('version-unsupported', `the client speaks versions ${hello.versions.join(', ')}; this gateway speaks ${deps.versions.join(', ')}`);
    }
    ctrl.send({ type: MessageType.WELCOME, version, mechanisms: ['PLAIN'], ...(version >= 2 ? { instance: deps.instance } : {}) });
    // SASL
    // Every later line, a refusal of this login included, names the SASL user.
    const { user, login } = await authenticate(ctrl, deps.credentials(), log, (name) => (log = log.child({ user: name })));
    ctrl.send({ type: MessageType.AUTH_OK, user });
    // The request
    const req = await ctrl.expectOneOf(REQUEST_TYPES);
    if (req.type === MessageType.CONTINUE && version < 2) throw new VmgateError('protocol-violation', `CONTINUE is not part of protocol version ${version}`);
    conn = { s, raw, ctrl, peer, user, version, login, log, started, handshakeDone };
    await serve(conn, req);
  } catch (e: unknown) {
    handshakeDone();
    const err = e instanceof VmgateError ? e : new VmgateError('internal', messageOf(e), { cause: e });
    const who = err instanceof PeerError ? 'the client gateway refused: ' : '';
    // The request may have narrowed the connection's log (session, channel, target).
    log = conn?.log ?? log;
    log.warn({ event: 'channel-refused', cause: err.code, setupMs: Date.now() - started }, `channel refused (${err.code}): ${who}${err.message}`);
    if (!timedOut) deps.metrics.handshakeFailed('server', err.code); // a timeout was counted when it fired
    if (err instanceof PeerError) setTimeout(() => s.destroy(), 1000).unref();
    else refuse(ctrl, s, publicError(err));
  }
}

/** OPENED: the target is connected; returns the data bytes that followed the OPEN frame. `secret`: the channel's (version 2). */
export function acceptOpen(c: ServerConnection, secret?: string): Buffer {
  c.handshakeDone();
  c.ctrl.send({ type: MessageType.OPENED, secret });
  return c.ctrl.detach();
}

/** CONTINUED: the channel goes on over this connection; returns the data bytes that followed the CONTINUE frame. */
export function acceptContinue(c: ServerConnection, received: number, ended: boolean, secret: string): Buffer {
  c.handshakeDone();
  c.ctrl.send({ type: MessageType.CONTINUED, received, ended, secret });
  return c.ctrl.detach();
}

/** SASL PLAIN; `named` hears the user name as soon as it is read, before the password is checked. */
async function authenticate(ctrl: ControlChannel, credentials: CredentialStore, log: Logger, named: (user: string) => void): Promise<{ user: string; login: LoginCheck['via'] }> {
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
  named(username);
  const check = await credentials.check(username, password);
  if (!check.accepted) {
    log.warn({ event: 'auth-rejected', reason: 'bad-credentials', user: username }, `SASL user ${JSON.stringify(username)}: unknown user or wrong password`);
    throw new VmgateError('auth-failed', 'authentication failed');
  }
  return { user: username, login: check.via };
}

/** ERROR, then close: a polite end first, a forced one a second later. */
function refuse(ctrl: ControlChannel, s: TLSSocket, e: VmgateError): void {
  ctrl.refuse(e);
  setTimeout(() => s.destroy(), 1000).unref();
}

/**
 * What the client may learn about a refusal. Auth failures stay vague by
 * design (the server log has the detail); target errors name the target.
 */
function publicError(e: VmgateError): VmgateError {
  if (e.code === 'internal') return new VmgateError('internal', 'internal error on the server gateway; see its log');
  // Which of identity, user or secret did not match is for the server's log only.
  if (e.code === 'heal-denied') return new VmgateError('heal-denied', 'this connection may not continue that channel; see the server gateway log');
  return e;
}
