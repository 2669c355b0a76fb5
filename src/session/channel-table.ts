import type { ErrorCode } from '../errors.js';
import type { ChannelRelay } from '../relay/relay.js';

/** One channel in its data phase, as the control surface and shutdown see it. */
export interface ChannelEntry {
  relay: ChannelRelay;
  role: 'route' | 'server';
  session: string;
  channel: number;
  /** Route name (source side) or target name (destination side). */
  target: string;
  /** The peer certificate's name. */
  peer: string;
  /** The peer certificate's fingerprint: only that peer may ABORT this channel. */
  owner: string;
  /** On a port-range route or target: the port of this migration (the one libvirt chose). */
  port?: number | undefined;
  startedAt: number;
}

/** Told of each channel entering and leaving the table (the metrics count sessions and bytes this way). */
export interface ChannelObserver {
  added(e: ChannelEntry): void;
  removed(e: ChannelEntry): void;
}

/** The channels of this gateway that are in their data phase. */
export class ChannelTable {
  private readonly entries = new Set<ChannelEntry>();
  private readonly observers: ChannelObserver[] = [];
  private emptyWaiters: Array<() => void> = [];

  observe(o: ChannelObserver): void {
    this.observers.push(o);
  }

  add(e: Omit<ChannelEntry, 'startedAt'>): ChannelEntry {
    const entry = { ...e, startedAt: Date.now() };
    this.entries.add(entry);
    for (const o of this.observers) o.added(entry);
    return entry;
  }

  /** Call once the channel's relay has ended: its counters are final. */
  remove(e: ChannelEntry): void {
    if (!this.entries.delete(e)) return;
    for (const o of this.observers) o.removed(e);
    if (this.entries.size === 0) {
      for (const w of this.emptyWaiters) w();
      this.emptyWaiters = [];
    }
  }

  /** Resolves true when no channel is left, false if `timeoutMs` passes first. */
  whenEmpty(timeoutMs: number): Promise<boolean> {
    if (this.entries.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.emptyWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  get size(): number {
    return this.entries.size;
  }

  find(owner: string, session: string, channel: number): ChannelEntry | undefined {
    for (const e of this.entries) if (e.owner === owner && e.session === session && e.channel === channel) return e;
    return undefined;
  }

  list(): ChannelEntry[] {
    return [...this.entries];
  }

  /** Ends every channel (of one session, or one channel of it, when given) at once with `cause`. Returns how many. */
  abortAll(cause: ErrorCode, message: string, session?: string, channel?: number): number {
    let n = 0;
    for (const e of this.entries) {
      if (session !== undefined && e.session !== session) continue;
      if (channel !== undefined && e.channel !== channel) continue;
      e.relay.abort(cause, message);
      n += 1;
    }
    return n;
  }
}
