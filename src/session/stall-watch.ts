import type { ChannelSnapshot } from './session-view.js';
import type { Logger } from '../log/logger.js';

/**
 * What the watch reads and acts on: this process's ChannelTable, or with
 * `workers` > 1 the primary's view of every worker's channels (a session's
 * channels may run in different workers, so only the primary sees a whole
 * session).
 */
export interface StallSubject {
  snapshot(): ChannelSnapshot[];
  endSession(session: string, message: string): number | Promise<number>;
}

/**
 * Ends sessions that have stopped moving. A session is stalled when none of
 * its channels has moved a byte, in either direction, for `timeoutMs`.
 *
 * Why per session and not per channel: a postcopy preempt channel, or a
 * multifd channel while the main channel sends device state, is legitimately
 * quiet while its siblings work. Why "any byte" and not "data waiting": the
 * receiving gateway cannot tell a dead link from a quiet one (the data phase
 * is a raw stream with no heartbeat), and a healthy QEMU migration is never
 * silent for long; on the sending side a dead link or a stopped destination
 * shows up the same way, with data queued. Kernel keepalive would take
 * ~11 minutes with default sysctls.
 */
export class StallWatch {
  private readonly progress = new Map<string, { bytes: number; since: number }>();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly subject: StallSubject,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {
    if (timeoutMs <= 0) return; // disabled
    this.timer = setInterval(() => this.check(), Math.max(100, Math.min(1000, timeoutMs / 4)));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private check(): void {
    const now = Date.now();
    const totals = new Map<string, number>();
    const healing = new Set<string>();
    for (const e of this.subject.snapshot()) {
      const key = `${e.role}/${e.session}`;
      totals.set(key, (totals.get(key) ?? 0) + e.bytesIn + e.bytesOut);
      if (e.healing) healing.add(key);
    }
    for (const key of this.progress.keys()) if (!totals.has(key)) this.progress.delete(key);
    for (const [key, bytes] of totals) {
      const p = this.progress.get(key);
      // A healing session waits for its link, not for QEMU: its time starts again once the link is back.
      if (!p || p.bytes !== bytes || healing.has(key)) {
        this.progress.set(key, { bytes, since: now });
        continue;
      }
      if (now - p.since < this.timeoutMs) continue;
      this.progress.delete(key);
      const session = key.slice(key.indexOf('/') + 1);
      const message = `no bytes moved in either direction on any channel of the session for ${Math.round((now - p.since) / 1000)} s (channel.stallTimeoutMs=${this.timeoutMs})`;
      void Promise.resolve(this.subject.endSession(session, message)).then((n) => {
        this.log.warn({ event: 'session-stalled', session, channels: n }, `session ${session} stalled: ${message}; ended ${n} channel(s)`);
      });
    }
  }
}
