import type { ErrorCode, VmgateError } from '../errors.js';
import type { StatusReply } from '../admin/admin-protocol.js';
import type { SessionView } from '../session/session-view.js';

/**
 * One gateway daemon as the CLI, the control socket and the signal handlers
 * see it, whether it runs in one process (daemon/gateway.ts) or as a
 * primary with worker processes (workers/primary.ts). Replies are typed
 * once, with the control protocol (admin/admin-protocol.ts); what each
 * request does with them is written once, in daemon/control.ts.
 */
export interface Daemon {
  /** What `vmgate status` shows. */
  status(): Promise<StatusReply>;
  /** Every migration session with its channels, as `vmgate sessions` shows them. */
  sessions(): Promise<SessionView[]>;
  /** Ends the selected channels at once with `cause`, wherever they run; returns how many ended. */
  endChannels(sel: ChannelSelector, cause: ErrorCode, message: string): Promise<number>;
  /** Re-reads the config and every file it names; on any error the last good state stays and the error is returned. */
  reload(): Promise<VmgateError | undefined>;
  /** Told of every reload asked for from outside (SIGHUP, the control socket): `vmgate run` tells systemd. */
  reloadObserver: ReloadObserver | undefined;
  /**
   * Drain, then stop: no new channels; those in flight may finish for up to
   * `graceMs`, the rest end with cause `shutdown`. Called again while
   * stopping (a second SIGTERM), it ends what is left at once.
   */
  stop(graceMs?: number): Promise<void>;
  /** Why the daemon takes no new channels now (one line for /readyz), or undefined when it does. */
  notReady(): string | undefined;
  /** The TLS listener's bound address (useful with port 0). */
  serverAddress(): { host: string; port: number } | undefined;
  /** Where QEMU migrates to on route `name` (with port 0, the real port). */
  routeAddress(name: string): string | undefined;
  /** The metrics listener's bound address; undefined when metrics are off. */
  metricsAddress(): { host: string; port: number } | undefined;
}

/** Hears that a reload begins and how it ended (`failed` undefined: the new files serve). */
export interface ReloadObserver {
  reloading(): void;
  reloaded(failed: VmgateError | undefined): void;
}

/** Which channels: a whole session, or one channel of it. */
export interface ChannelSelector {
  session: string;
  channel?: number | undefined;
}
