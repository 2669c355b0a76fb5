/**
 * What a healing channel has sent towards the peer gateway and the peer has
 * not acknowledged yet: the only bytes a broken hop can have lost. Records
 * are kept as they were written (DATA header and payload, in the read buffer
 * they were read into), so keeping them costs no copy; an ACK hands whole
 * records back (`release`, in order), and a resend starts at any byte offset.
 *
 * The buffer is the channel's send window: reading QEMU stops while the
 * channel holds its limit, or while the gateway as a whole holds the budget
 * (ReplayBudget). So nothing is ever sent that is not kept, and a break can
 * always be healed from what is here.
 */
import { DATA_HEADER_BYTES, dataHeader } from './records.js';

interface Kept {
  /** The DATA record: header then payload. */
  record: Buffer;
  /** Stream offset of the payload's first byte. */
  start: number;
  /** Called when the record is acknowledged (hands its read buffer back). */
  release: (() => void) | undefined;
}

/** The gateway-wide bound on bytes kept for resending, shared by every channel. */
export class ReplayBudget {
  private held = 0;
  private readonly waiters = new Set<() => void>();

  /**
   * @param limitBytes channel.replayBudgetBytes
   * @param floorBytes a channel holding less than this may always read, so one
   *   stuck channel cannot starve the others into looking stalled
   */
  constructor(
    readonly limitBytes: number,
    private readonly floorBytes = 1 << 20,
  ) {}

  /** May a channel that holds `channelHeld` bytes read more? */
  allows(channelHeld: number): boolean {
    return channelHeld < this.floorBytes || this.held < this.limitBytes;
  }

  get heldBytes(): number {
    return this.held;
  }

  take(n: number): void {
    this.held += n;
  }

  give(n: number): void {
    const wasFull = this.held >= this.limitBytes;
    this.held -= n;
    if (wasFull && this.held < this.limitBytes) for (const w of [...this.waiters]) w();
  }

  /** `wake` runs when the budget has room again; returns the unsubscribe. */
  onRoom(wake: () => void): () => void {
    this.waiters.add(wake);
    return () => this.waiters.delete(wake);
  }
}

export class ReplayBuffer {
  private readonly kept: Kept[] = [];
  /** Payload bytes sent so far (offset of the next byte). */
  private sentTotal = 0;
  /** Payload bytes the peer has acknowledged. */
  private ackedTotal = 0;
  /** Record bytes (headers included) kept now. */
  private heldBytes = 0;

  constructor(private readonly budget: ReplayBudget) {}

  get sent(): number {
    return this.sentTotal;
  }

  get acked(): number {
    return this.ackedTotal;
  }

  get held(): number {
    return this.heldBytes;
  }

  /** Keeps a DATA record just written (or about to be). */
  push(record: Buffer, release: (() => void) | undefined): void {
    this.kept.push({ record, start: this.sentTotal, release });
    this.sentTotal += record.length - DATA_HEADER_BYTES;
    this.heldBytes += record.length;
    this.budget.take(record.length);
  }

  /** Is `received` a count the peer may claim: no less than it acknowledged, no more than was sent? */
  fits(received: number): boolean {
    return received >= this.ackedTotal && received <= this.sentTotal;
  }

  /** The peer has every payload byte below `received`: hand back the records it covers whole. Call with a count that `fits`. */
  ack(received: number): void {
    this.ackedTotal = received;
    let freed = 0;
    while (this.kept.length > 0) {
      const k = this.kept[0] as Kept;
      if (k.start + k.record.length - DATA_HEADER_BYTES > received) break;
      this.kept.shift();
      freed += k.record.length;
      k.release?.();
    }
    if (freed === 0) return;
    this.heldBytes -= freed;
    this.budget.give(freed);
  }

  /**
   * The records to write again for a peer that has `received` payload bytes:
   * the one it has in part is cut, with a fresh header; the rest go as they
   * were. Call with a count that `fits`.
   */
  *from(received: number): Generator<Buffer> {
    for (const k of this.kept) {
      const end = k.start + k.record.length - DATA_HEADER_BYTES;
      if (end <= received) continue;
      if (k.start >= received) {
        yield k.record;
        continue;
      }
      const skip = received - k.start;
      yield dataHeader(end - received);
      yield k.record.subarray(DATA_HEADER_BYTES + skip);
    }
  }

  /** Hands every record back (the channel ended). */
  clear(): void {
    for (const k of this.kept) k.release?.();
    this.kept.length = 0;
    this.budget.give(this.heldBytes);
    this.heldBytes = 0;
  }
}
