import { randomBytes } from 'node:crypto';

/**
 * Groups a route's local connections into migration sessions. QEMU opens the
 * main channel first, then any multifd and postcopy-preempt channels, all
 * while the first is still open; a connection that arrives when the route
 * has no open channel starts a new session. Channel numbers count arrivals.
 */
export class RouteSessions {
  private current: { id: string; next: number; open: number } | undefined;

  /** Assigns the next accepted connection to a session. */
  accept(): { session: string; channel: number } {
    if (!this.current || this.current.open === 0) {
      this.current = { id: randomBytes(16).toString('hex'), next: 0, open: 0 };
    }
    const channel = this.current.next;
    this.current.next += 1;
    this.current.open += 1;
    return { session: this.current.id, channel };
  }

  /** A channel of `session` has ended (whatever the outcome). */
  release(session: string): void {
    if (this.current?.id === session) this.current.open -= 1;
  }
}
