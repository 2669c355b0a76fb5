/**
 * Waiting in tests: wait for the event a test needs, never for a fixed time.
 *
 *   await waitFor(() => sockets.length >= 3, { what: 'three probes at the silent peer' });
 *   const n = await waitFor(async () => (await count()) || undefined, { what: 'a counted byte', timeoutMs: 5_000 });
 *   const closedAt = await within(closed, 3_000, "the probe's connection to close");
 *   await quietFor(1_000); // proves X does NOT happen within 1 s
 *
 * `quietFor` is the one fixed wait, for the few tests whose claim is that
 * something does not happen within a time; the call site says what.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /** What is awaited, for the failure message: "the destination to receive a byte". */
  what: string;
  timeoutMs?: number;
  /** How often `probe` runs; only for state that has no event to listen to. */
  intervalMs?: number;
  /** Extra context for the failure message (last log lines, a listing). */
  detail?: () => string | Promise<string>;
}

type Falsy = undefined | null | false | 0 | '';

/**
 * Runs `probe` until it returns something truthy and resolves with that value;
 * fails after `timeoutMs` saying what was awaited. A probe that throws fails at once.
 */
export async function waitFor<T>(probe: () => T | Falsy | Promise<T | Falsy>, o: WaitOptions): Promise<T> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() >= deadline) {
      const detail = o.detail ? `\n${await o.detail()}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${o.what}${detail}`);
    }
    await sleep(o.intervalMs ?? 20);
  }
}

/** `p`'s value, or a failure naming `what` if it has not settled within `timeoutMs`. */
export async function within<T>(p: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Waits until `read()` has returned the same value for `steadyMs` (a counter
 * that stopped moving: a blocked writer, a full pipe), and resolves with it.
 * Stillness can only be seen over time, so this is a wait for a state, and the
 * time is part of its definition.
 */
export async function waitUntilSteady<T>(read: () => T | Promise<T>, steadyMs: number, o: WaitOptions): Promise<T> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  let last = await read();
  let since = Date.now();
  for (;;) {
    await sleep(o.intervalMs ?? 20);
    const now = await read();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= steadyMs) {
      return now;
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${o.what} (still changing: ${String(now)})`);
  }
}

/**
 * A deliberate fixed wait: the test claims that something does NOT happen
 * within `ms` (no second log line, no target connection). Say at the call
 * site what must not happen.
 */
export function quietFor(ms: number): Promise<void> {
  return sleep(ms).then(() => undefined);
}
