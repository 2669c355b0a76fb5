import type { ChannelSnapshot } from '../session/session-view.js';
import type { StatusReply } from '../admin/admin-protocol.js';
import type { ChannelSelector } from '../daemon/daemon.js';
import type { CheckedReload } from '../daemon/reloadable.js';
import type { ErrorCode } from '../errors.js';
import type { EndRecord } from '../session/end-records.js';
import type { MetricsJson } from './worker-metrics.js';

/**
 * What the primary and its workers say to each other (see IpcLink). Both
 * ends are our own code, forked from the same build, so messages are typed
 * rather than validated.
 */

/** Primary -> worker, one-way. `route-conn` and `inbound-conn` carry the accepted socket. */
export type WorkerNotice =
  | { kind: 'route-conn'; route: string; port: number | undefined; session: string; channel: number }
  | { kind: 'inbound-conn' }
  /** The TLS session ticket keys every worker's server uses (base64, 48 bytes), so any worker resumes a session another issued. */
  | { kind: 'ticket-keys'; keys: string }
  | { kind: 'stop'; graceMs: number };

/** Worker -> primary, one-way. */
export type PrimaryNotice =
  | { kind: 'ready' }
  | { kind: 'start-failed'; code: ErrorCode; message: string }
  | { kind: 'route-released'; route: string; port: number | undefined; session: string; channel: number }
  | { kind: 'order-release'; owner: string; session: string; channel: number }
  | { kind: 'order-closed'; owner: string; session: string };


/** Requests a worker serves. */
export type WorkerOps = {
  snapshot: { args: null; answer: ChannelSnapshot[] };
  status: { args: null; answer: StatusReply };
  /** Why the worker takes no new channels (for /readyz), or null. */
  'not-ready': { args: null; answer: string | null };
  /** The worker's metrics registry, for the primary's AggregatorRegistry. */
  metrics: { args: null; answer: MetricsJson };
  cancel: { args: ChannelSelector & { cause: ErrorCode; message: string }; answer: number };
  'end-peer-channels': { args: { owner: string; session: string; channels: number[]; code: ErrorCode; message: string }; answer: number };
  'lookup-end': { args: { owner: string; session: string; channel: number }; answer: EndRecord | null };
  /** Take the reload the primary checked, then use these ticket keys (fresh ones: no session from before the reload resumes). */
  reload: { args: { ticketKeys: string; checked: CheckedReload }; answer: { code: ErrorCode; message: string } | null };
  /** ABORT to a route's peer on behalf of a worker that died. */
  'tell-peer': { args: { route: string; session: string; channels: number[]; code: ErrorCode; message: string }; answer: number };
};

/** Requests the primary serves. */
export type PrimaryOps = {
  /** Resolves when it is this channel's turn to connect its target (SessionOrder, kept in the primary). */
  'order-turn': { args: { owner: string; session: string; channel: number }; answer: null };
  /** The peer's ABORT, to be applied in every worker. */
  'peer-abort': { args: { owner: string; session: string; channels: number[]; code: ErrorCode; message: string }; answer: number };
  /** The peer's REPORT, answered by whichever worker ran the channel (or the primary, if that worker died). */
  'peer-report': { args: { owner: string; session: string; channel: number }; answer: EndRecord | null };
};
