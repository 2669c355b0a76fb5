import { execFile } from 'node:child_process';
import type { Logger } from '../log/logger.js';

/**
 * Tells systemd what the daemon is doing (sd_notify(3)) when it runs under a
 * `Type=notify` unit, which sets $NOTIFY_SOCKET; without it this does nothing.
 *
 * The protocol is one datagram on a unix socket, which Node cannot send
 * (node:net has no SOCK_DGRAM for AF_UNIX, node:dgram no AF_UNIX). The npm
 * packages that can are native addons (a compiler at install time, a binary
 * per Node ABI in the .deb), so this runs systemd's own `systemd-notify`,
 * which is there wherever systemd is. It runs as a child of the daemon, so
 * the unit says `NotifyAccess=all`; `--pid` names the daemon as the main
 * process. Since systemd 246 systemd-notify waits until the manager has
 * processed the message (sd_notify_barrier), so the child is still alive
 * when systemd looks up which unit it belongs to (the race that made
 * systemd-notify unreliable for this before).
 *
 * Messages go out one after the other, in the order they were asked for
 * (RELOADING=1 must not overtake the READY=1 before it). A failure is logged
 * and otherwise ignored: the gateway works, only systemd's view of it is late.
 */
export class SystemdNotifier {
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly log: Logger,
    private readonly socket: string | undefined = process.env['NOTIFY_SOCKET'],
    private readonly command = 'systemd-notify',
  ) {}

  /** True when systemd (or a test standing in for it) listens. */
  get enabled(): boolean {
    return this.socket !== undefined && this.socket !== '';
  }

  /** The gateway serves: `READY=1` with a status line for `systemctl status`. */
  ready(status: string): Promise<void> {
    return this.send(['READY=1', `STATUS=${status}`]);
  }

  /** A reload begins; `ready` must follow (also after a refused reload: the last good state serves). */
  reloading(): Promise<void> {
    return this.send(['RELOADING=1', 'STATUS=reloading certificates, CRL, credentials and allow-lists']);
  }

  /** Draining for shutdown. */
  stopping(): Promise<void> {
    return this.send(['STOPPING=1', 'STATUS=stopping: no new channels, draining migrations in flight']);
  }

  private send(assignments: string[]): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    const socket = this.socket ?? '';
    const next = this.chain.then(() => this.run(socket, assignments));
    this.chain = next;
    return next;
  }

  private run(socket: string, assignments: string[]): Promise<void> {
    const args = [`--pid=${process.pid}`, ...assignments];
    return new Promise((resolve) => {
      execFile(this.command, args, { env: { ...process.env, NOTIFY_SOCKET: socket }, timeout: 10_000 }, (err, _stdout, stderr) => {
        if (err) {
          this.log.warn(
            { event: 'notify-failed', notify: assignments[0], cause: (err as NodeJS.ErrnoException).code ?? err.message },
            `could not tell systemd ${assignments[0] ?? ''} through ${this.command} (${String(stderr).trim() || err.message}); ` +
              'the gateway itself is unaffected, but with Type=notify systemd may time the start out: check that systemd-notify is installed and the unit says NotifyAccess=all',
          );
        }
        resolve();
      });
    });
  }
}
