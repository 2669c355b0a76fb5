import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** How long a verified login spares later channels the scrypt run. */
const RECENT_LOGIN_TTL_MS = 60_000;

/**
 * Logins the credential store verified recently, so that the other channels
 * of a migration (QEMU opens the main and every multifd channel at once, the
 * postcopy channel later) do not each pay a full scrypt run.
 *
 * Nothing here can accept a password the store would refuse:
 * - an entry is an HMAC of (user, password) under a key drawn at random when
 *   this object is made; the password itself is never kept, and the key
 *   never leaves the process;
 * - an entry is written only after scrypt has accepted the password, and a
 *   later login is accepted only when its HMAC equals the entry (constant-time
 *   compare) before the entry expires;
 * - a miss (wrong password, other user, expired) answers nothing: the caller
 *   then runs the full scrypt check, so a wrong password always costs the
 *   same as before and timing tells nothing about which users have entries.
 *
 * One object belongs to one credential store: a reload builds a new store,
 * so every entry of the old one is gone with it.
 */
export class RecentLogins {
  readonly #key = randomBytes(32);
  readonly #entries = new Map<string, { mac: Buffer; expiresAt: number }>();
  /** scrypt runs in flight, so concurrent channels with the same login wait for one run instead of each starting their own. */
  readonly #pending = new Map<string, { mac: Buffer; accepted: Promise<boolean> }>();

  constructor(
    private readonly ttlMs = RECENT_LOGIN_TTL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** The HMAC that stands for this login. Lengths are bound in, so (user, password) pairs cannot collide by shifting bytes. */
  mac(user: string, password: string): Buffer {
    return createHmac('sha256', this.#key)
      .update(`${Buffer.byteLength(user, 'utf8')}:${user}`, 'utf8')
      .update(password, 'utf8')
      .digest();
  }

  /** True if this exact login was accepted by scrypt within the TTL. */
  has(user: string, mac: Buffer): boolean {
    const e = this.#entries.get(user);
    if (!e) return false;
    if (this.now() >= e.expiresAt) {
      this.#entries.delete(user);
      return false;
    }
    return timingSafeEqual(e.mac, mac);
  }

  /** Record a login that scrypt has just accepted. */
  remember(user: string, mac: Buffer): void {
    this.#entries.set(user, { mac, expiresAt: this.now() + this.ttlMs });
  }

  /**
   * A scrypt check of this exact login already running, if any. Its answer
   * may be trusted only when it is `true`: on `false` the caller must still
   * run its own full check, so a wrong password never gets an early answer.
   */
  inFlight(user: string, mac: Buffer): Promise<boolean> | undefined {
    const p = this.#pending.get(user);
    return p !== undefined && timingSafeEqual(p.mac, mac) ? p.accepted : undefined;
  }

  /** Registers a running scrypt check (the first one per user; at most one per user is kept). */
  track(user: string, mac: Buffer, accepted: Promise<boolean>): void {
    if (this.#pending.has(user)) return;
    this.#pending.set(user, { mac, accepted });
    const drop = (): void => {
      if (this.#pending.get(user)?.accepted === accepted) this.#pending.delete(user);
    };
    accepted.then(drop, drop);
  }

  /** Drop what is known about `user` (password changed or user removed). */
  forget(user: string): void {
    this.#entries.delete(user);
    this.#pending.delete(user);
  }

  get size(): number {
    return this.#entries.size;
  }
}
