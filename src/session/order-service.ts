import { VmgateError } from '../errors.js';
import { SessionOrder } from './session-order.js';

interface Held {
  /** owner/session -> channels that have their turn and have not released it yet. */
  turns: Map<string, Set<number>>;
  /** owner/session -> channels granted and not yet closed. */
  active: Map<string, number>;
}

/**
 * The one SessionOrder of a gateway with workers. A session's channels land
 * in different workers, but the destination QEMU must see them connect in
 * the source's accept order, so every worker asks here for its turn. What
 * each worker holds is tracked, so that a worker that dies cannot block the
 * channels after its own: its turns are released and its channels closed.
 */
export class OrderService {
  private readonly order: SessionOrder;
  private readonly held = new Map<number, Held>();
  private readonly gone = new Set<number>();

  constructor(timeoutMs: number) {
    this.order = new SessionOrder(timeoutMs);
  }

  async turn(worker: number, owner: string, session: string, channel: number): Promise<void> {
    await this.order.turn(owner, session, channel);
    const key = `${owner}/${session}`;
    if (this.gone.has(worker)) {
      // The worker died while its channel waited: pass the turn on at once.
      this.order.release(owner, session, channel);
      this.order.closed(owner, session);
      throw new VmgateError('worker-exited', `the worker that asked to connect channel ${channel} of session ${session} has exited`);
    }
    const h = this.of(worker);
    let turns = h.turns.get(key);
    if (!turns) h.turns.set(key, (turns = new Set()));
    turns.add(channel);
    h.active.set(key, (h.active.get(key) ?? 0) + 1);
  }

  release(worker: number, owner: string, session: string, channel: number): void {
    const key = `${owner}/${session}`;
    const turns = this.held.get(worker)?.turns.get(key);
    turns?.delete(channel);
    if (turns?.size === 0) this.held.get(worker)?.turns.delete(key);
    this.order.release(owner, session, channel);
  }

  closed(worker: number, owner: string, session: string): void {
    const h = this.held.get(worker);
    const key = `${owner}/${session}`;
    const n = (h?.active.get(key) ?? 0) - 1;
    if (n > 0) h?.active.set(key, n);
    else h?.active.delete(key);
    this.order.closed(owner, session);
  }

  /** A worker died: release every turn it held and close every channel it had. */
  forget(worker: number): void {
    this.gone.add(worker);
    const h = this.held.get(worker);
    this.held.delete(worker);
    if (!h) return;
    for (const [key, channels] of h.turns) {
      const [owner = '', session = ''] = key.split('/');
      for (const channel of channels) this.order.release(owner, session, channel);
    }
    for (const [key, n] of h.active) {
      const [owner = '', session = ''] = key.split('/');
      for (let i = 0; i < n; i += 1) this.order.closed(owner, session);
    }
  }

  /** The gateway is stopping: channels still waiting for their turn fail with `shutdown`. */
  stop(): void {
    this.order.abandonAll();
  }

  /** Sessions with order state (for tests: it must drain to 0). */
  get size(): number {
    return this.order.size;
  }

  private of(worker: number): Held {
    let h = this.held.get(worker);
    if (!h) this.held.set(worker, (h = { turns: new Map(), active: new Map() }));
    return h;
  }
}
