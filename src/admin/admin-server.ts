import type { Server, Socket } from 'node:net';
import { VmgateError, messageOf } from '../errors.js';
import { listenLocal } from '../local/local-socket.js';
import type { Logger } from '../log/logger.js';
import { adminRequestSchema, MAX_ADMIN_REQUEST, type AdminReply, type AdminRequest } from './admin-protocol.js';

export type AdminHandler = (req: AdminRequest) => Promise<AdminReply[AdminRequest['op']]>;

export interface AdminSocketOptions {
  path: string;
  /** Numeric group that may use the socket besides root (mode 0660); none: 0600. */
  gid: number | undefined;
}

/**
 * The control endpoint: a unix socket only (never the network), mode 0600 or
 * 0660 for a configured group. Each connection sends one JSON request line
 * and gets one JSON response line.
 */
export async function startAdminSocket(o: AdminSocketOptions, handle: AdminHandler, log: Logger): Promise<Server> {
  return listenLocal({ kind: 'unix', path: o.path }, (s) => serve(s, handle, log), o.gid);
}

function serve(s: Socket, handle: AdminHandler, log: Logger): void {
  s.resume();
  s.setTimeout(10_000, () => s.destroy());
  s.on('error', () => undefined);
  let buf = '';
  const onData = (d: Buffer): void => {
    buf += d.toString('utf8');
    const nl = buf.indexOf('\n');
    if (nl < 0) {
      if (buf.length > MAX_ADMIN_REQUEST) reply(s, error(new VmgateError('frame-oversize', `request longer than ${MAX_ADMIN_REQUEST} bytes`)));
      return;
    }
    s.off('data', onData);
    void answer(buf.slice(0, nl), handle, log).then((r) => reply(s, r));
  };
  s.on('data', onData);
}

async function answer(line: string, handle: AdminHandler, log: Logger): Promise<Record<string, unknown>> {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return error(new VmgateError('frame-malformed', 'request is not JSON'));
  }
  const req = adminRequestSchema.safeParse(json);
  if (!req.success) return error(new VmgateError('frame-malformed', `bad request: ${req.error.issues.map((i) => `${i.path.join('.') || 'op'}: ${i.message}`).join('; ')}`));
  try {
    return { ok: true, ...(await handle(req.data)) };
  } catch (e: unknown) {
    log.warn({ event: 'admin-error', op: req.data.op }, `control request ${req.data.op} failed: ${messageOf(e)}`);
    return error(e instanceof VmgateError ? e : new VmgateError('internal', messageOf(e)));
  }
}

function error(e: VmgateError): Record<string, unknown> {
  return { ok: false, code: e.code, message: e.message };
}

function reply(s: Socket, r: Record<string, unknown>): void {
  s.end(`${JSON.stringify(r)}\n`);
}
