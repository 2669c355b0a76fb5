import { z } from 'zod';
import type { StatusReply } from '../daemon/daemon.js';
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
  z.object({ op: z.literal('cancel'), session: z.string().regex(/^[0-9a-f]{32}$/), channel: z.number().int().min(0).max(1023).optional() }).strict(),
]);

export type AdminRequest = z.infer<typeof adminRequestSchema>;

/** The answer to each request (on the wire with `ok: true` added; a refusal is `{ ok: false, code, message }`). */
export interface AdminReply {
  status: StatusReply;
  sessions: { sessions: SessionView[] };
  cancel: { cancelled: number };
  reload: { reloaded: true };
}

export const MAX_ADMIN_REQUEST = 4096;
