import type { PeerCertificate } from 'node:tls';
import type { Identity } from './identity.js';

/**
 * How long a TLS session may be resumed: the server's ticket lifetime
 * (`sessionTimeout`) and the longest a client keeps a ticket. A migration's
 * later channels, its ABORT and REPORT connections and the next evacuations
 * to the same peer fall well inside it; after it, a full handshake.
 */
export const TICKET_LIFETIME_MS = 300_000;
/**
 * How long a dial may wait for the ticket of a full handshake already under
 * way to the same peer. A burst of channels then costs one full handshake
 * and resumptions; past this, the dial goes ahead with its own full handshake.
 */
const TICKET_WAIT_MS = 500;

/** A TLS session ticket from a peer whose full handshake we verified, and what that handshake proved. */
export interface ServerTicket {
  session: Buffer;
  /** The server certificate verified in the full handshake (a resumed session carries none). */
  cert: PeerCertificate;
}

/**
 * The newest session ticket of one peer (one route), so its next channels
 * resume TLS instead of repeating a full handshake: no certificates, no
 * signatures, one key exchange. Concurrent channels share the ticket (the
 * server issues stateless tickets, which may be used more than once).
 *
 * A ticket is kept only from a connection that passed our verification of
 * the server, and is forgotten when our identity is reloaded (new CA or CRL:
 * the next handshake must be a full one, checked against them), when it
 * is older than TICKET_LIFETIME_MS, and after any failed dial. Lives in the
 * process that dials; a new process starts with full handshakes.
 *
 * A burst with no ticket yet (the first migration to a peer) pays one full
 * handshake, not one per channel: see `forDial`.
 */
export class TicketCache {
  #kept: (ServerTicket & { identity: Identity; storedAt: number }) | undefined;
  #pioneer: { identity: Identity; over: Promise<void>; end: () => void } | undefined;

  constructor(
    private readonly now: () => number = Date.now,
    private readonly waitMs = TICKET_WAIT_MS,
  ) {}

  /**
   * The ticket to offer on a dial with `identity`. With none kept, the first
   * caller (the "pioneer": QEMU's main channel, which connects first) gets
   * none and does the full handshake; callers that come while it runs wait,
   * at most `waitMs`, for the ticket it brings. The pioneer must call
   * `release` once its ticket has arrived or never will (the server's first
   * frame is in, or the dial failed), so that its waiters go ahead.
   */
  async forDial(identity: Identity): Promise<{ ticket: ServerTicket | undefined; release: () => void }> {
    const kept = this.get(identity);
    if (kept !== undefined) return { ticket: kept, release: () => undefined };
    const p = this.#pioneer;
    if (p === undefined || p.identity !== identity) {
      let end = (): void => undefined;
      const over = new Promise<void>((resolve) => (end = resolve));
      const mine = { identity, over, end };
      this.#pioneer = mine;
      const release = (): void => {
        if (this.#pioneer === mine) this.#pioneer = undefined;
        end();
      };
      return { ticket: undefined, release };
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([p.over, new Promise<void>((resolve) => (timer = setTimeout(resolve, this.waitMs)))]);
    clearTimeout(timer);
    return { ticket: this.get(identity), release: () => undefined };
  }

  /** The ticket to offer on the next dial made with `identity`, if any. */
  get(identity: Identity): ServerTicket | undefined {
    const k = this.#kept;
    if (k === undefined) return undefined;
    if (k.identity !== identity || this.now() - k.storedAt >= TICKET_LIFETIME_MS) {
      this.#kept = undefined;
      return undefined;
    }
    return { session: k.session, cert: k.cert };
  }

  put(identity: Identity, ticket: ServerTicket): void {
    this.#kept = { ...ticket, identity, storedAt: this.now() };
    if (this.#pioneer?.identity === identity) this.#pioneer.end();
  }

  drop(): void {
    this.#kept = undefined;
  }
}
