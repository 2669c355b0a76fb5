import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { ContinueMessage } from '../control/messages.js';
import { VmgateError } from '../errors.js';
import type { PeerIdentity } from '../policy/peer-policy.js';
import type { HealingRelay } from '../relay/healing-relay.js';
import type { ChannelEntry } from '../session/channel-table.js';

/** Who opened a channel, and the secret its next CONTINUE must show. Never leaves this process, never logged. */
interface Holder {
  identity: string;
  user: string;
  secret: Buffer;
  /**
   * The secret before the last CONTINUED, until the source shows (a record
   * on the new connection) that it got that answer: if the new connection
   * broke before, the source still holds this one and must not be refused.
   */
  previous: Buffer | undefined;
  relay: HealingRelay;
}

/** What the server needs of a CONTINUE's connection: who it is after TLS and SASL. */
export interface ContinueCaller {
  peer: PeerIdentity;
  user: string;
}

/**
 * The server side's channels that a CONTINUE may take over (protocol
 * version 2), with what authorizes it. A CONTINUE is authorized at least as
 * strictly as the OPEN was: the same certificate name and SASL user as the
 * OPEN (TLS and SASL passed again on the new connection), plus the channel's
 * secret, which only the two gateways know and which is replaced at each
 * CONTINUED, so an old one is refused.
 */
export class ContinuableChannels {
  private readonly holders = new Map<ChannelEntry, Holder>();

  /** A new channel: returns its first secret, for OPENED. */
  add(entry: ChannelEntry, relay: HealingRelay, caller: ContinueCaller): string {
    const secret = randomBytes(32);
    this.holders.set(entry, { identity: caller.peer.commonName, user: caller.user, secret, previous: undefined, relay });
    return secret.toString('base64');
  }

  remove(entry: ChannelEntry): void {
    this.holders.delete(entry);
  }

  /**
   * Checks a CONTINUE for `entry` (found by session and channel) from
   * `caller`. Refusals change nothing. On success the secret is replaced:
   * returns the relay and the next secret, for CONTINUED.
   */
  authorize(entry: ChannelEntry, caller: ContinueCaller, req: ContinueMessage): { relay: HealingRelay; secret: string } {
    const h = this.holders.get(entry);
    if (!h) throw new VmgateError('heal-unknown', `channel ${req.channel} of session ${req.session} cannot be continued: it was opened with protocol version 1`);
    const shown = Buffer.from(req.secret, 'base64');
    const matches = (s: Buffer | undefined): boolean => s !== undefined && shown.length === s.length && timingSafeEqual(shown, s);
    const secretOk = matches(h.secret) || (!h.relay.hopConfirmed && matches(h.previous));
    if (!secretOk || caller.peer.commonName !== h.identity || caller.user !== h.user) {
      const why = !secretOk ? 'the secret is wrong or was already used' : caller.user !== h.user ? `SASL user ${JSON.stringify(caller.user)} did not open it` : `certificate ${JSON.stringify(caller.peer.commonName)} did not open it`;
      throw new VmgateError('heal-denied', `CONTINUE of channel ${req.channel} of session ${req.session} refused: ${why}`);
    }
    if (h.relay.state !== 'healing') {
      throw new VmgateError('heal-live', `channel ${req.channel} of session ${req.session} is still connected here; it is taken over once this gateway sees its connection lost`);
    }
    if (!h.relay.fits(req.received, req.ended)) {
      throw new VmgateError('heal-counts', `CONTINUE of channel ${req.channel} of session ${req.session} claims ${req.received} bytes received${req.ended ? ' and the end' : ''}, which does not fit what this gateway sent`);
    }
    const next = randomBytes(32);
    // The secret the source showed stays valid until it proves it has the next one.
    h.previous = matches(h.secret) ? h.secret : h.previous;
    h.secret = next;
    return { relay: h.relay, secret: next.toString('base64') };
  }
}
