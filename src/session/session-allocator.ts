import { randomBytes } from 'node:crypto';

/**
 * Groups the local connections QEMU makes into migration sessions. QEMU
 * opens a migration's main channel first, then any multifd and
 * postcopy-preempt channels, all while the first is still open: a
 * connection that arrives while its key has open channels joins that
 * session as the next channel, otherwise it starts a new session. Channel
 * numbers count arrivals, and accept order is the order the destination
 * must connect in (src/session/session-order.ts).
 *
 * The key says which connections can belong to one migration (sessionKey):
 * a route's single listener carries one migration at a time; a route that
 * listens on a range of ports keys by local port, so migrations on different
 * ports never share a session.
 */
export class SessionAllocator {
  private readonly current = new Map<string, { id: string; next: number; open: number }>();

  /** Assigns the next connection accepted under `key` to a session. */
  accept(key: string): { session: string; channel: number } {
    let s = this.current.get(key);
    if (!s || s.open === 0) {
      s = { id: randomBytes(16).toString('hex'), next: 0, open: 0 };
      this.current.set(key, s);
    }
    const channel = s.next;
    s.next += 1;
    s.open += 1;
    return { session: s.id, channel };
  }

  /** A channel of `session` accepted under `key` has ended (whatever the outcome). */
  release(key: string, session: string): void {
    const s = this.current.get(key);
    if (s?.id !== session) return;
    s.open -= 1;
    if (s.open === 0) this.current.delete(key);
  }

  /** Keys with a session open now. */
  get size(): number {
    return this.current.size;
  }
}

/** Which connections of a route may share a session: all of a single-port route's, or those of one port of a range. */
export function sessionKey(route: string, port: number | undefined): string {
  return port === undefined ? route : `${route}:${port}`;
}
