import { z } from 'zod';
import type { PeerProbeStatus } from '../route/peer-probe.js';
import type { SessionView } from '../session/session-view.js';

/**
 * The local control socket speaks one JSON object per line: a request, then
 * one response. Requests are validated like any other input: the socket is
 * restricted by file permissions, but a malformed request still gets a coded
 * error, never a crash.
 */
export const adminRequestSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('status') }).strict(),
  z.object({ op: z.literal('sessions') }).strict(),
  z.object({ op: z.literal('reload') }).strict(),
  // The id and channel are checked by the server (checkCancel) so that a
  // malformed one gets the same answer as an unknown one: session-unknown.
  z.object({ op: z.literal('cancel'), session: z.string().max(256), channel: z.number().optional() }).strict(),
]);

export const ADMIN_OPS = ['status', 'sessions', 'reload', 'cancel'] as const;

/** A session id as `vmgate sessions` shows it. */
export const SESSION_ID = /^[0-9a-f]{32}$/;
export const MAX_CHANNEL = 1023;

export type AdminRequest = z.infer<typeof adminRequestSchema>;

/** The answer to each request (on the wire with `ok: true` added; a refusal is `{ ok: false, code, message }`). */
export interface AdminReply {
  status: StatusReply;
  sessions: { sessions: SessionView[] };
  cancel: { cancelled: number };
  reload: { reloaded: true };
}

export const MAX_ADMIN_REQUEST = 4096;

/** `vmgate status`: what one gateway is doing, whatever its process model. */
export interface RouteStatus {
  name: string;
  listen: string;
  /**
   * The verdict of the route's last peer probe (with workers: the least
   * healthy among them): the route's, and in `paths` each peer address's.
   */
  peer?: PeerProbeStatus | undefined;
}

export interface WorkerStatus {
  pid: number;
  channels: number;
  uptimeS: number;
}

export interface StatusReply {
  name: string;
  uptimeS: number;
  /** The TLS listener, host:port; null without a server role. */
  server: string | null;
  routes: RouteStatus[];
  targets: string[];
  channels: number;
  sessions: number;
  /** Our certificate; absent when no worker process is running to say. */
  identity?: { subject: string; validTo: string } | undefined;
  /** With `workers` > 1: each worker process. */
  workers?: WorkerStatus[] | undefined;
}
