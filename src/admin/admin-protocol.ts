import { z } from 'zod';

/**
 * The local control socket speaks one JSON object per line: a request, then
 * one response. Requests are validated like any other input: the socket is
 * restricted by file permissions, but a malformed request still gets a coded
 * error, never a crash.
 */
export const adminRequestSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('status') }).strict(),
  z.object({ op: z.literal('sessions') }).strict(),
  z.object({ op: z.literal('cancel'), session: z.string().regex(/^[0-9a-f]{32}$/), channel: z.number().int().min(0).max(1023).optional() }).strict(),
]);

export type AdminRequest = z.infer<typeof adminRequestSchema>;

export const MAX_ADMIN_REQUEST = 4096;
