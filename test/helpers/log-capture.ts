import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/log/logger.js';

/** Every log line a gateway wrote, parsed, plus the raw text for secret greps. */
export interface CapturedLogs {
  log: Logger;
  entries: Array<Record<string, unknown>>;
  text(): string;
  /** Entries (from index `from` on) whose fields all equal `match`. */
  find(match: Record<string, unknown>, from?: number): Array<Record<string, unknown>>;
  /** Waits until an entry matching `match` appears at index `from` or later (take `from` from `mark()` before an action). */
  waitFor(match: Record<string, unknown>, timeoutMs?: number, from?: number): Promise<Record<string, unknown>>;
  /** Waits until `count` entries matching `match` have appeared at index `from` or later; resolves with them. */
  waitForCount(match: Record<string, unknown>, count: number, timeoutMs?: number, from?: number): Promise<Array<Record<string, unknown>>>;
  /** The index the next entry will get. */
  mark(): number;
}

export function captureLogs(level = 'debug'): CapturedLogs {
  const entries: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const listeners = new Set<() => void>();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        raw.push(line);
        entries.push(JSON.parse(line) as Record<string, unknown>);
      }
      for (const l of listeners) l();
      cb();
    },
  });
  const matches = (e: Record<string, unknown>, m: Record<string, unknown>): boolean => Object.entries(m).every(([k, v]) => e[k] === v);
  const find = (m: Record<string, unknown>, from = 0) => entries.slice(from).filter((e) => matches(e, m));
  const waitForCount = (m: Record<string, unknown>, count: number, timeoutMs = 10_000, from = 0): Promise<Array<Record<string, unknown>>> => {
    const hits = (): Array<Record<string, unknown>> | undefined => {
      const h = find(m, from);
      return h.length >= count ? h.slice(0, count) : undefined;
    };
    const now = hits();
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`${find(m, from).length} of ${count} log entries matching ${JSON.stringify(m)} within ${timeoutMs} ms; have:\n${raw.slice(-20).join('\n')}`));
      }, timeoutMs);
      const check = (): void => {
        const h = hits();
        if (!h) return;
        clearTimeout(timer);
        listeners.delete(check);
        resolve(h);
      };
      listeners.add(check);
    });
  };
  return {
    log: createLogger(level, sink),
    entries,
    text: () => raw.join('\n'),
    find,
    mark: () => entries.length,
    async waitFor(m, timeoutMs = 10_000, from = 0) {
      return (await waitForCount(m, 1, timeoutMs, from))[0] as Record<string, unknown>;
    },
    waitForCount,
  };
}
