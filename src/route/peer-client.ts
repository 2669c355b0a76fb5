import type { RouteConfig } from '../config/config.js';
import { formatHostPort } from '../config/endpoint.js';
import type { ControlChannel } from '../control/control-channel.js';
import { HEALING_VERSION, MessageType, PLAIN_VERSION, type PortSpan, type ReportedMessage } from '../control/messages.js';
import { PeerError, VmgateError, type ErrorCode } from '../errors.js';
import { connectPeer, continueChannel, destroyPeer, openChannel, type ClientConnection, type ContinueRequest, type PeerLogin } from '../handshake/client.js';
import type { Continued, ContinuePeer } from './channel-healer.js';
import type { PeerSocket } from '../tls/dial.js';
import type { Identity } from '../tls/identity.js';
import { TicketCache } from '../tls/session-tickets.js';

/**
 * Failures that say "this path did not carry us to a gateway that
 * answered", after which the next path is tried: no TCP connection
 * (refused, unreachable, timed out, no DNS), a connection reset or closed
 * before the login was through, and a TLS or control handshake that did
 * not finish in time (a lossy or black-holed network). Nothing has been
 * asked of the peer yet then, so another path is safe.
 *
 * Everything else ends the attempt on this path and is not tried on the
 * next one:
 * - a refusal the peer sent us (PeerError: auth-failed, busy, target-*,
 *   ...) and a TLS alert (it refused our certificate): verdicts of the one
 *   peer gateway about us, the same on every path;
 * - our own verdict on the server (tls-verify-failed, tls-name-mismatch,
 *   tls-protocol, version-unsupported, ...): either the peer's certificate
 *   or software is wrong, the same on every path, or something else
 *   answers on that address, which the operator must see and fix rather
 *   than a migration quietly taking another network;
 * - an abandoned dial (the local QEMU went away, the gateway stops).
 */
const PATH_FAILURES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['peer-unreachable', 'peer-reset', 'peer-closed', 'tls-timeout', 'handshake-timeout']);

/** True when `e` is a failure of the path, so the next path may be tried (PATH_FAILURES). */
export function isPathFailure(e: unknown): boolean {
  return e instanceof VmgateError && !(e instanceof PeerError) && PATH_FAILURES.has(e.code);
}

/** What `connect` tells of a path that failed before the next one is tried. */
export type PathFailed = (path: number, error: VmgateError) => void;

/**
 * What a route asks its peer gateway, each on a connection of its own that
 * passed the client handshake (src/handshake/client.ts): open a channel
 * (OPEN), tell it about a channel's end (ABORT), ask it how a channel ended
 * there (REPORT), and check ahead of any migration that a channel could be
 * opened (PROBE).
 *
 * The peer may have several addresses (`routes.NAME.peer` as a list), its
 * paths in order of preference: each connection dials the first path and
 * moves on to the next only when a path fails as a network would
 * (PATH_FAILURES). Each path keeps its own TLS session tickets, so later
 * connections on it resume.
 */
export class PeerClient implements ContinuePeer {
  private readonly logins: PeerLogin[];
  private readonly target: string;
  /** A port-range route's range: the peer checks at PROBE that its target holds it. */
  private readonly ports: PortSpan | undefined;

  /** `heals`: offer protocol version 2 (channel.healWindowMs > 0). */
  constructor(config: RouteConfig, identity: () => Identity, password: () => string, heals = true) {
    const versions = heals ? [HEALING_VERSION, PLAIN_VERSION] : [PLAIN_VERSION];
    this.logins = config.peers.map((peer) => ({
      versions,
      peer,
      peerName: config.peerName,
      user: config.user,
      password,
      identity,
      timeoutMs: config.connectTimeoutMs,
      tickets: new TicketCache(),
    }));
    this.target = config.target;
    this.ports = config.listen.kind === 'tcp-range' ? { first: config.listen.first, last: config.listen.last } : undefined;
  }

  /** How many paths (peer addresses) the route has. */
  get paths(): number {
    return this.logins.length;
  }

  /** Path `i`'s address, "HOST:PORT", for logs. */
  pathName(i: number): string {
    const login = this.logins[i];
    return login === undefined ? `path ${i} (none)` : formatHostPort(login.peer);
  }

  /**
   * A connection that passed TLS, the peer policy, HELLO and SASL, over the
   * first path from `firstPath` (default 0) on that does not fail as a
   * network would; later paths only, never wrapping around to earlier
   * ones. `onPathFailed` hears of each path given up on before the next
   * is tried. Throws a refusal at once (isPathFailure); when every path
   * failed, the one path's error, or for several one that names each.
   */
  async connect(o: { signal?: AbortSignal; firstPath?: number; onPathFailed?: PathFailed } = {}): Promise<{ conn: ClientConnection; path: number }> {
    const first = o.firstPath ?? 0;
    if (!Number.isInteger(first) || first < 0 || first >= this.logins.length) {
      throw new VmgateError('internal', `path ${first} does not exist: the route has ${this.logins.length} path(s)`);
    }
    const failed: Array<{ path: number; error: VmgateError }> = [];
    for (let path = first; path < this.logins.length; path += 1) {
      try {
        return { conn: await connectPeer(this.logins[path] as PeerLogin, o.signal), path };
      } catch (e: unknown) {
        if (!isPathFailure(e) || o.signal?.aborted === true) throw e;
        const error = e as VmgateError;
        failed.push({ path, error });
        if (path + 1 < this.logins.length) o.onPathFailed?.(path, error);
      }
    }
    return this.allFailed(failed);
  }

  /**
   * Opens a channel (on a port-range route: for local `o.port`; `o.signal`
   * abandons the dial) over the first path that answers (connect);
   * returns the peer socket, any data bytes that followed OPENED, and the
   * path it took. A failure after the login (the OPEN itself) is not tried
   * on another path: the peer may have acted on the OPEN already.
   */
  async open(
    session: string,
    channel: number,
    o: { port?: number | undefined; signal?: AbortSignal; firstPath?: number; onPathFailed?: PathFailed } = {},
  ): Promise<OpenedChannel> {
    const { conn, path } = await this.connect(o);
    const { remainder, secret } = await openChannel(conn, this.target, session, channel, o.port);
    const heal = conn.version >= HEALING_VERSION && secret !== undefined && conn.instance !== undefined ? { secret, instance: conn.instance } : undefined;
    return { peer: conn.peer, remainder, path, heal };
  }

  /**
   * CONTINUE on a new connection over the first path that answers, to a
   * peer that must still be `instance` (else `peer-restarted`, before the
   * CONTINUE is sent: a restarted peer would only say it never heard of it).
   */
  async continue(req: ContinueRequest, instance: string, signal: AbortSignal): Promise<Continued> {
    const { conn, path } = await this.connect({ signal });
    if (conn.instance !== instance) {
      conn.done();
      destroyPeer(conn.peer);
      throw new VmgateError('peer-restarted', `the peer gateway restarted since the channel opened (it is instance ${conn.instance ?? '(version 1)'}, the channel opened on ${instance}): its side of the channel is gone; the migration must start again`);
    }
    const { reply, remainder } = await continueChannel(conn, req);
    const { tls, raw } = conn.peer;
    return { hop: { tls, raw }, received: reply.received, ended: reply.ended, secret: reply.secret, remainder, path, pathName: this.pathName(path), tlsResumed: conn.peer.resumed };
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

  /**
   * Checks that the peer would open this route's target for us, without
   * opening it, over the first path that answers. `signal` abandons the check.
   */
  async probe(signal?: AbortSignal): Promise<void> {
    await this.request(this.askProbe, signal);
  }

  /** Like probe, over path `path` only: that path's own verdict (the probe of each path, check-config --peers). */
  async probePath(path: number, signal?: AbortSignal): Promise<void> {
    await this.request(this.askProbe, signal, { only: path });
  }

  private readonly askProbe = async (ctrl: ControlChannel): Promise<void> => {
    ctrl.send({ type: MessageType.PROBE, target: this.target, ports: this.ports });
    await ctrl.expect(MessageType.PROBED);
  };

  /**
   * One request on its own connection, over the first path that answers
   * (or path `only`); the handshake's deadline (connectTimeoutMs) also
   * bounds the wait for the answer.
   */
  private async request<T>(ask: (ctrl: ControlChannel) => Promise<T>, signal?: AbortSignal, o: { only?: number } = {}): Promise<T> {
    const { peer, ctrl, done } =
      o.only === undefined ? (await this.connect(signal ? { signal } : {})).conn : await connectPeer(this.loginOf(o.only), signal);
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

  private loginOf(path: number): PeerLogin {
    const login = this.logins[path];
    if (login === undefined) throw new VmgateError('internal', `path ${path} does not exist: the route has ${this.logins.length} path(s)`);
    return login;
  }

  /** Every path failed as a network would: with one path its error as it was, with several one naming each (the last one's code). */
  private allFailed(failed: Array<{ path: number; error: VmgateError }>): never {
    const last = failed[failed.length - 1];
    if (last === undefined) throw new VmgateError('internal', 'no path was tried');
    if (failed.length === 1) throw last.error;
    const each = failed.map(({ path, error }) => {
      const name = this.pathName(path);
      const message = error.message.startsWith(`${name}: `) ? error.message.slice(name.length + 2) : error.message;
      return `path ${path + 1} (${name}): ${error.code}: ${message}`;
    });
    throw new VmgateError(last.error.code, `no path to the peer gateway answered; ${each.join('; ')}`, { cause: last.error, detail: { paths: failed.length } });
  }
}


/** A channel the peer opened. */
export interface OpenedChannel {
  peer: PeerSocket;
  /** Data bytes that followed OPENED. */
  remainder: Buffer;
  /** Which of the route's peer addresses carries it (0: the first). */
  path: number;
  /** Version 2: the channel's secret and the peer's instance, which healing needs; undefined for a version 1 peer. */
  heal: { secret: string; instance: string } | undefined;
}
