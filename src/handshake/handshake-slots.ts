/**
 * Connections in handshake (TCP accepted, control phase not finished) cost
 * the server CPU and memory before anyone is authenticated, so they are
 * capped: in total, and per remote address so that one flooding host cannot
 * take every slot and starve an honest peer's migration. A refused
 * connection is closed at once (it has not spoken TLS yet, so it cannot be
 * told why); queueing it would only move the exhaustion elsewhere.
 */
export type SlotRefusal = 'total' | 'address';

export class HandshakeSlots {
  private total = 0;
  private readonly byAddress = new Map<string, number>();

  constructor(
    private readonly maxTotal: number,
    private readonly maxPerAddress: number,
  ) {}

  /** Takes a slot for `address`, or says which cap refused it. */
  take(address: string): SlotRefusal | undefined {
    if (this.total >= this.maxTotal) return 'total';
    const mine = this.byAddress.get(address) ?? 0;
    if (mine >= this.maxPerAddress) return 'address';
    this.total += 1;
    this.byAddress.set(address, mine + 1);
    return undefined;
  }

  /** Gives back a slot taken for `address` (call exactly once per successful take). */
  release(address: string): void {
    const mine = this.byAddress.get(address) ?? 0;
    if (mine <= 0) return;
    this.total -= 1;
    if (mine === 1) this.byAddress.delete(address);
    else this.byAddress.set(address, mine - 1);
  }

  /** Slots in use: in total, and by `address`. */
  inUse(address?: string): number {
    return address === undefined ? this.total : (this.byAddress.get(address) ?? 0);
  }
}
