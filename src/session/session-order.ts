import { VmgateError } from '../errors.js';

/**
 * QEMU 7.2's destination tells its main channel from multifd channels by
 * arrival order, so the destination gateway must connect a session's
 * channels to the target strictly in the order the source gateway accepted
 * them: channel k only after channel k-1 is connected. Channels reach us over
 * separate TLS connections and can overtake each other; this makes the late
 * ones wait their turn (bounded by a timeout).
 *
 * A session whose channels have all ended is remembered for one timeout more
 * before it is forgotten. The source gateway learns that its channels ended a
 * little later than we do, and a connection it accepts in that gap joins the
 * old session as its next channel (SessionAllocator); remembered, that channel
 * connects at once, where a forgotten session would make it wait for a
 * channel 0 that never comes and fail with channel-order.
 */
export class SessionOrder {
  private readonly sessions = new Map<string, SessionState>();

  constructor(private readonly timeoutMs: number) {}

  /**
   * Resolves when it is `channel`'s turn to connect in `session` (keyed by the
   * peer that owns it, so one peer cannot touch another's sessions). The
   * caller must then call `release` once its connect attempt is over,
   * whether it succeeded or not, and `closed` when the channel ends. When
   * `turn` rejects, it has already forgotten the channel.
   */
  async turn(owner: string, session: string, channel: number): Promise<void> {
    const key = `${owner}/${session}`;
    let s = this.sessions.get(key);
    if (!s) {
      s = { next: 0, seen: new Set(), waiters: new Map(), active: 0, forget: undefined };
      this.sessions.set(key, s);
    }
    if (s.forget) {
      clearTimeout(s.forget);
      s.forget = undefined;
    }
    if (s.seen.has(channel)) throw new VmgateError('protocol-violation', `channel ${channel} of session ${session} was already opened`);
    s.seen.add(channel);
    s.active += 1;
    if (s.next === channel) return;
    const state = s;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        state.waiters.delete(channel);
        this.closed(owner, session);
        reject(new VmgateError('channel-order', `channel ${channel} of session ${session} waited ${this.timeoutMs} ms for channel ${state.next} to connect first`));
      }, this.timeoutMs);
      state.waiters.set(channel, {
        wake: () => {
          clearTimeout(timer);
          resolve();
        },
        abandon: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  /** The connect attempt of `channel` is over: let the next channel go. */
  release(owner: string, session: string, channel: number): void {
    const s = this.sessions.get(`${owner}/${session}`);
    if (!s || s.next !== channel) return;
    s.next += 1;
    const waiter = s.waiters.get(s.next);
    if (waiter) {
      s.waiters.delete(s.next);
      waiter.wake();
    }
  }

  /** The channel ended; a session with no channel left is forgotten one timeout later. */
  closed(owner: string, session: string): void {
    const key = `${owner}/${session}`;
    const s = this.sessions.get(key);
    if (!s) return;
    s.active -= 1;
    if (s.active > 0 || s.waiters.size > 0 || s.forget) return;
    s.forget = setTimeout(() => this.sessions.delete(key), this.timeoutMs);
    s.forget.unref();
  }

  /**
   * The gateway is stopping: every channel still waiting for its turn fails
   * with `shutdown`, and nothing is remembered. Without this, the waits'
   * timers would keep a stopped gateway (or the primary that keeps order
   * for its workers) alive until they ran out.
   */
  abandonAll(): void {
    const stopping = new VmgateError('shutdown', 'the gateway is stopping; the channel was still waiting for its turn');
    for (const s of this.sessions.values()) {
      if (s.forget) clearTimeout(s.forget);
      for (const w of s.waiters.values()) w.abandon(stopping);
    }
    this.sessions.clear();
  }

  /** Sessions with a channel in setup or open (not those only remembered). */
  get size(): number {
    let n = 0;
    for (const s of this.sessions.values()) if (!s.forget) n += 1;
    return n;
  }
}

/**
 * What the server role needs from the order keeper: a SessionOrder in this
 * process, or with `workers` > 1 a proxy to the primary's single SessionOrder
 * (a worker asks over IPC, src/workers/worker.ts; the primary answers from
 * OrderService), since a session's channels land in several workers.
 */
export type ChannelOrder = Pick<SessionOrder, 'turn' | 'release' | 'closed'>;

interface SessionState {
  /** The channel whose turn it is to connect. */
  next: number;
  seen: Set<number>;
  waiters: Map<number, { wake: () => void; abandon: (e: VmgateError) => void }>;
  active: number;
  /** Set while the session has no channel left: when it is forgotten. */
  forget: NodeJS.Timeout | undefined;
}
