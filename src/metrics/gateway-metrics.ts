import type { ErrorCode } from '../errors.js';
import type { RelayCounters } from '../relay/relay.js';

/** Which side of a channel this gateway plays: `route` dials out (source), `server` accepts (destination). */
export type Role = 'route' | 'server';

/** How a channel or session ended: `ok`, or the cause class. */
export type Outcome = ErrorCode | 'ok';

/** What the metrics need to know of a channel in its data phase (a ChannelEntry fits). */
export interface ObservedChannel {
  role: Role;
  /** Route name (role `route`) or target name (role `server`): a metrics label, bounded by the config. */
  target: string;
  session: string;
  /** The peer certificate's fingerprint: session ids are only unique per peer. */
  owner: string;
  relay: { readonly counters: RelayCounters };
}

/**
 * The events the gateway reports to its metrics. Handed in to the routes and
 * the inbound server; NO_METRICS when metrics are off, so no caller checks.
 * Nothing here is called per chunk: bytes are read from the relay counters
 * at scrape time and when a channel leaves the table.
 */
export interface GatewayMetrics {
  /** A channel's set-up (TCP, TLS, SASL, OPEN) succeeded after `ms`. */
  handshakeSucceeded(role: Role, ms: number): void;
  /** A connection was refused before its data phase, for `cause`. */
  handshakeFailed(role: Role, cause: ErrorCode): void;
  /** A channel's end was recorded with its final cause (after the causes were exchanged with the peer). */
  channelEnded(channel: ObservedChannel, outcome: Outcome): void;
  /** A route's probe of its peer over one path (`path`: its address, HOST:PORT) succeeded (up) or not. */
  peerProbed(route: string, peer: string, path: string, up: boolean): void;
  /** A channel lost its link to the peer gateway and began to heal. */
  linkLost(role: Role, cause: ErrorCode): void;
  /** A healing channel went on over a new connection, after `resentBytes` were sent again. */
  linkHealed(role: Role, resentBytes: number): void;
  /** A channel ended while it was healing: its link did not come back, or could not be continued. */
  healFailed(role: Role, cause: ErrorCode): void;
}

export const NO_METRICS: GatewayMetrics = {
  handshakeSucceeded: () => undefined,
  handshakeFailed: () => undefined,
  channelEnded: () => undefined,
  peerProbed: () => undefined,
  linkLost: () => undefined,
  linkHealed: () => undefined,
  healFailed: () => undefined,
};
