import type { ErrorCode } from '../errors.js';

/** How a channel ended on this side, kept for a while so the peer can ask (REPORT). */
export interface EndRecord {
  cause: ErrorCode | 'ok';
  message: string;
  bytesIn: number;
  bytesOut: number;
}

/** An ABORT notice from the peer: it ended the channel for this cause. */
export interface PeerNotice {
  code: ErrorCode;
  message: string;
}

const MAX_RECORDS = 4096;

/**
 * Recent channel ends and the peer's notices about them, keyed by the peer's
 * certificate (owner), session and channel. Bounded: the oldest records are
 * dropped first; a notice waiter gives up after its timeout.
 */
export class EndRecords {
  private readonly records = new Map<string, EndRecord>();
  private readonly notices = new Map<string, PeerNotice>();
  private readonly waiters = new Map<string, (n: PeerNotice) => void>();

  record(owner: string, session: string, channel: number, r: EndRecord): void {
    const k = key(owner, session, channel);
    this.records.delete(k);
    this.records.set(k, r);
    if (this.records.size > MAX_RECORDS) this.records.delete(this.records.keys().next().value as string);
  }

  lookup(owner: string, session: string, channel: number): EndRecord | undefined {
    return this.records.get(key(owner, session, channel));
  }

  /** The peer's ABORT arrived: wake whoever waits for it, or keep it briefly for a relay about to end. */
  notice(owner: string, session: string, channel: number, n: PeerNotice): void {
    const k = key(owner, session, channel);
    const w = this.waiters.get(k);
    if (w) {
      this.waiters.delete(k);
      w(n);
      return;
    }
    this.notices.set(k, n);
    setTimeout(() => this.notices.delete(k), 5_000).unref();
  }

  /** Waits up to `ms` for the peer's notice about a channel that just saw a reset. */
  waitForNotice(owner: string, session: string, channel: number, ms: number): Promise<PeerNotice | undefined> {
    const k = key(owner, session, channel);
    const early = this.notices.get(k);
    if (early) {
      this.notices.delete(k);
      return Promise.resolve(early);
    }
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiters.delete(k);
        resolve(undefined);
      }, ms);
      this.waiters.set(k, (n) => {
        clearTimeout(t);
        resolve(n);
      });
    });
  }
}

function key(owner: string, session: string, channel: number): string {
  return `${owner}/${session}/${channel}`;
}
