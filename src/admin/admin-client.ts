import { createConnection } from 'node:net';
import { VmgateError, isErrorCode, messageOf, systemCode } from '../errors.js';
import type { AdminReply, AdminRequest } from './admin-protocol.js';

/** Sends one request to a gateway's control socket; throws the gateway's coded error. */
export function adminRequest<R extends AdminRequest>(path: string, req: R, timeoutMs = 5_000): Promise<AdminReply[R['op']]> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path });
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new VmgateError('control-unreachable', `no answer from the control socket ${path} within ${timeoutMs} ms; is the gateway stuck? see its log`));
    }, timeoutMs);
    s.on('connect', () => s.write(`${JSON.stringify(req)}\n`));
    s.on('data', (d: Buffer) => (buf += d.toString('utf8')));
    s.on('end', () => {
      clearTimeout(timer);
      let r: Record<string, unknown>;
      try {
        r = JSON.parse(buf) as Record<string, unknown>;
      } catch {
        reject(new VmgateError('request-invalid', `the control socket ${path} answered something that is not JSON; is it a vmgate control socket?`));
        return;
      }
      if (r['ok'] === true) resolve(r as unknown as AdminReply[R['op']]);
      else reject(new VmgateError(isErrorCode(r['code']) ? r['code'] : 'internal', typeof r['message'] === 'string' ? r['message'] : 'request failed'));
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      const code = systemCode(e);
      const hint = code === 'ENOENT' || code === 'ECONNREFUSED'
        ? ' (is the gateway running, and is control.socket set in its config?)'
        : code === 'EACCES' ? ' (run as root or as a member of the control.group)' : '';
      reject(new VmgateError('control-unreachable', `cannot reach the control socket ${path}: ${messageOf(e)}${hint}`, { cause: e }));
    });
  });
}
