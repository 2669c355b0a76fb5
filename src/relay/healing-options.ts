import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ErrorCode } from '../errors.js';
import type { ReplayBudget } from './replay-buffer.js';

/** What a healing channel is given (src/relay/healing-relay.ts). */

/** Why a hop was given up: a failure's code, or `path-return` for a planned move back to a route's first path. */
export type LossCause = ErrorCode | 'path-return';

export interface Hop {
  tls: TLSSocket;
  /** The TCP socket under `tls`, for a reset. */
  raw: Socket;
}

export interface HealingRelayOptions {
  /** Cause to report when the local leg fails: 'local-closed' on a route, 'target-closed' on a server. */
  localCause: ErrorCode;
  /** How messages name the local leg (`target tcp:...` on a server) and the peer gateway (`destination`, `source gateway`). */
  names: { local: string; peer: string };
  closeGraceMs: number;
  /** Silence from a hop we read for this long loses it; 0: only errors and closes do. */
  linkTimeoutMs: number;
  /** How long a lost hop may take to come back before the channel ends with `heal-expired`. */
  healWindowMs: number;
  /** The most bytes this channel keeps for resending (its send window). */
  replayBufferBytes: number;
  budget: ReplayBudget;
  /** Read both legs with 'data' events, as on a Node where reused buffers cannot be adopted (tests). */
  dataEvents?: boolean;
  /** The hop was lost and the channel is healing. */
  onLinkLost: (cause: LossCause, message: string) => void;
}
