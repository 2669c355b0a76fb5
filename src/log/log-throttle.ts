import type { Logger } from './logger.js';

/**
 * Caps how many lines of one kind a flood can write. A flood of garbage
 * connections must not become a flood of log lines (disk, journald rate
 * limits that then drop the lines that matter). Up to `burst` lines per key
 * pass in each window; the rest are counted, and one summary line per key
 * says how many were dropped once the window ends.
 */
export class LogThrottle {
  private readonly windows = new Map<string, { start: number; passed: number; dropped: number; timer: NodeJS.Timeout | undefined }>();

  constructor(
    private readonly log: Logger,
    private readonly burst = 20,
    private readonly windowMs = 10_000,
  ) {}

  warn(key: string, obj: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    let w = this.windows.get(key);
    if (!w || now - w.start >= this.windowMs) {
      if (w) this.flush(key);
      w = { start: now, passed: 0, dropped: 0, timer: undefined };
      this.windows.set(key, w);
    }
    if (w.passed < this.burst) {
      w.passed += 1;
      this.log.warn(obj, msg);
      return;
    }
    w.dropped += 1;
    w.timer ??= setTimeout(() => this.flush(key), this.windowMs - (now - w.start)).unref();
  }

  private flush(key: string): void {
    const w = this.windows.get(key);
    if (!w) return;
    clearTimeout(w.timer);
    this.windows.delete(key);
    if (w.dropped > 0) {
      this.log.warn({ event: 'log-suppressed', kind: key, dropped: w.dropped, windowMs: this.windowMs }, `${w.dropped} more "${key}" lines in ${this.windowMs} ms not logged (a flood?)`);
    }
  }
}
