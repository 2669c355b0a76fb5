import type { PeerCertificate } from 'node:tls';
import type { Identity } from './identity.js';

/**
 * How long a TLS session may be resumed: the server's ticket lifetime
 * (`sessionTimeout`) and the longest a client keeps a ticket. A migration's
 * later channels, its ABORT and REPORT connections and the next evacuations
 * to the same peer fall well inside it; after it, a full handshake.
 */
export const TICKET_LIFETIME_MS = 300_000;

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
 */
export class TicketCache {
  #kept: (ServerTicket & { identity: Identity; storedAt: number }) | undefined;

  constructor(private readonly now: () => number = Date.now) {}

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
  }

  drop(): void {
    this.#kept = undefined;
  }
}
