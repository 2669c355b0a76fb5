import type { Server } from 'node:net';
import type { AdminRequest, AdminReply } from '../admin/admin-protocol.js';
import { startAdminSocket } from '../admin/admin-server.js';
import type { Config } from '../config/config.js';
import { VmgateError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { groupId } from '../util/group-id.js';
import type { Daemon } from './daemon.js';

/** Opens the control socket (control.socket, mode 0600, or 0660 for control.group) in front of `daemon`. */
export async function openControlSocket(config: NonNullable<Config['control']>, daemon: Daemon, log: Logger): Promise<Server> {
  const gid = config.group === undefined ? undefined : await groupId(config.group);
  return startAdminSocket({ path: config.socket, gid }, (req) => answer(daemon, req, log), log);
}

/** One control request against the daemon, whichever process model it has. */
async function answer(daemon: Daemon, req: AdminRequest, log: Logger): Promise<AdminReply[AdminRequest['op']]> {
  switch (req.op) {
    case 'status':
      return daemon.status();
    case 'sessions':
      return { sessions: await daemon.sessions() };
    case 'cancel': {
      const what = req.channel === undefined ? `session ${req.session}` : `channel ${req.channel} of session ${req.session}`;
      const n = await daemon.endChannels(req, 'cancelled', `cancelled by an operator (${what})`);
      if (n === 0) throw new VmgateError('session-unknown', `no open ${what} on this gateway; vmgate sessions lists the open ones`);
      log.warn({ event: 'cancelled', session: req.session, channel: req.channel, channels: n }, `operator cancelled ${what}: ended ${n} channel(s)`);
      return { cancelled: n };
    }
    case 'reload': {
      log.info({ event: 'reloading', via: 'control' }, 'reload requested on the control socket: reloading certificates, CRL, credentials and allow-lists');
      const failed = await observedReload(daemon);
      if (failed) throw failed;
      return { reloaded: true };
    }
  }
}

/** A reload asked for from outside (SIGHUP, the control socket), told to `daemon.reloadObserver`. */
export async function observedReload(daemon: Daemon): Promise<VmgateError | undefined> {
  daemon.reloadObserver?.reloading();
  let failed: VmgateError | undefined;
  try {
    failed = await daemon.reload();
    return failed;
  } finally {
    // Also when reload() threw: systemd must not be left thinking a reload is running.
    daemon.reloadObserver?.reloaded(failed);
  }
}
