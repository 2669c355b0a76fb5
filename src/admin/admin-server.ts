import type { Server, Socket } from 'node:net';
import { VmgateError, messageOf } from '../errors.js';
import { listenLocal } from '../local/local-socket.js';
import type { Logger } from '../log/logger.js';
import { ADMIN_OPS, adminRequestSchema, MAX_ADMIN_REQUEST, MAX_CHANNEL, SESSION_ID, type AdminReply, type AdminRequest } from './admin-protocol.js';

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
      if (buf.length > MAX_ADMIN_REQUEST) reply(s, error(new VmgateError('request-invalid', `the request is longer than ${MAX_ADMIN_REQUEST} bytes without a newline`)));
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
    return error(new VmgateError('request-invalid', 'the request is not a JSON object on one line'));
  }
  const req = adminRequestSchema.safeParse(json);
  if (!req.success) return error(badRequest(json));
  const refused = req.data.op === 'cancel' ? checkCancel(req.data.session, req.data.channel) : undefined;
  if (refused) return error(refused);
  try {
    return { ok: true, ...(await handle(req.data)) };
  } catch (e: unknown) {
    log.warn({ event: 'admin-error', op: req.data.op }, `control request ${req.data.op} failed: ${messageOf(e)}`);
    return error(e instanceof VmgateError ? e : new VmgateError('internal', messageOf(e)));
  }
}

/** What is wrong with a request that is JSON but not one this socket answers, in a sentence. */
function badRequest(json: unknown): VmgateError {
  const op = typeof json === 'object' && json !== null ? (json as Record<string, unknown>)['op'] : undefined;
  const ops = ADMIN_OPS.map((o) => JSON.stringify(o)).join(', ');
  if (typeof op !== 'string' || !(ADMIN_OPS as readonly string[]).includes(op)) {
    return new VmgateError('request-invalid', `the control socket answers the ops ${ops}; this request names ${op === undefined ? 'no op' : `op ${JSON.stringify(op)}`}`);
  }
  const fields = op === 'cancel' ? 'a "session" id and an optional "channel" number' : 'no field besides "op"';
  return new VmgateError('request-invalid', `a ${op} request takes ${fields}, and this one does not fit`);
}

/** A malformed id is refused like an unknown one: either way there is no such session here. */
function checkCancel(session: string, channel: number | undefined): VmgateError | undefined {
  if (!SESSION_ID.test(session)) {
    return new VmgateError('session-unknown', `no session ${JSON.stringify(session.slice(0, 64))} on this gateway: a session id is 32 lower-case hex digits, as vmgate sessions shows`);
  }
  if (channel !== undefined && (!Number.isInteger(channel) || channel < 0 || channel > MAX_CHANNEL)) {
    return new VmgateError('session-unknown', `session ${session} has no channel ${channel}: channels are numbered 0 to ${MAX_CHANNEL}`);
  }
  return undefined;
}

function error(e: VmgateError): Record<string, unknown> {
  return { ok: false, code: e.code, message: e.message };
}

function reply(s: Socket, r: Record<string, unknown>): void {
  s.end(`${JSON.stringify(r)}\n`);
}
