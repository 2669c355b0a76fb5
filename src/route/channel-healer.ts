import { type ErrorCode, PeerError, VmgateError, messageOf } from '../errors.js';
import type { ContinueRequest } from '../handshake/client.js';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../metrics/gateway-metrics.js';
import type { HealingRelay, Hop, LossCause } from '../relay/healing-relay.js';

/** What the healer needs of the peer: one CONTINUE on a new connection (PeerClient.continue). */
export interface ContinuePeer {
  /** Fails with `peer-restarted`, before sending CONTINUE, when the peer's WELCOME names another instance than `instance`. */
  continue(req: ContinueRequest, instance: string, signal: AbortSignal): Promise<Continued>;
}

/** A CONTINUED and the connection it came on. */
export interface Continued {
  hop: Hop;
  received: number;
  ended: boolean;
  /** The secret the next CONTINUE must show. */
  secret: string;
  remainder: Buffer;
  /** Which of the route's peer addresses carried it (0: the first), and its HOST:PORT for the log. */
  path: number;
  pathName: string;
  tlsResumed: boolean;
}

/** First wait between attempts, and the longest: a link that flaps comes back fast, a dead one is not hammered. */
const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5_000;
/** heal-elsewhere: another worker of the peer holds the channel; the next connection likely reaches another one. */
const ELSEWHERE_RETRY_MS = 50;
/**
 * Round robin over at most 64 workers finds the one that holds the channel
 * within a second or two; after this long of nothing but heal-elsewhere, no
 * worker holds it (one that died before its primary saw the channel).
 */
const ELSEWHERE_GIVE_UP_MS = 10_000;
/**
 * Refusals from the peer gateway that say nothing about the channel: busy,
 * slow, or a login problem an operator can still fix within the window.
 * Any other refusal is the peer's verdict on the channel (denied, unknown,
 * counts, or the cause it already ended with) and ends it here too.
 */
const PEER_TRANSIENT: ReadonlySet<ErrorCode> = new Set(['busy', 'heal-live', 'heal-elsewhere', 'handshake-timeout', 'auth-failed', 'internal', 'channels-full', 'tls-timeout']);
/** How often a channel that keeps failing to heal says so at warn level. */
const STILL_HEALING_LOG_MS = 30_000;

/**
 * The source side of healing: when a channel's link is lost, dial the peer
 * again (a full TLS, certificate and SASL connection each time) and CONTINUE
 * the channel, until it goes on or the relay's window ends it. Knows the
 * channel's secret and the peer instance it opened with; a new instance
 * means the peer restarted and its side of the channel is gone.
 */
export class ChannelHealer {
  private secret: string;
  /** The path (index into the route's peer addresses) the channel runs over now. */
  path: number;
  private running = false;

  constructor(
    private readonly o: {
      peer: ContinuePeer;
      relay: HealingRelay;
      session: string;
      channel: number;
      secret: string;
      instance: string;
      /** The path it opened over. */
      path: number;
      log: Logger;
      metrics: GatewayMetrics;
    },
  ) {
    this.secret = o.secret;
    this.path = o.path;
  }

  /** The relay runs over a later path than `path`, which is up again: move it back (it heals over the first path that answers). */
  returnTo(path: number, why: string): void {
    if (this.path > path && this.o.relay.state === 'open') this.o.relay.dropHop(why);
  }

  /** The relay lost its link: heal it in the background. */
  lost(cause: LossCause, message: string): void {
    const { relay, log } = this.o;
    if (cause === 'path-return') {
      log.info({ event: 'path-return', path: this.path }, `${message}: moving the channel back over a new connection`);
    } else {
      log.warn({ event: 'link-lost', cause, bytesIn: relay.counters.bytesIn, bytesOut: relay.counters.bytesOut }, `link to the peer gateway lost (${cause}): ${message}; QEMU's connection is kept open while the channel is continued over a new connection`);
      this.o.metrics.linkLost('route', cause);
    }
    if (this.running) return;
    this.running = true;
    void this.heal().finally(() => {
      this.running = false;
    });
  }

  private async heal(): Promise<void> {
    const { relay, log } = this.o;
    const stop = new AbortController();
    void relay.done.then(() => stop.abort(new VmgateError('cancelled', 'the channel ended while it was healing')));
    let wait = FIRST_RETRY_MS;
    let attempts = 0;
    let lastWarn = Date.now();
    let elsewhereSince: number | undefined;
    while (relay.state === 'healing' && !stop.signal.aborted) {
      attempts += 1;
      try {
        const c = await this.o.peer.continue(this.request(), this.o.instance, stop.signal);
        this.continued(c);
        return;
      } catch (e: unknown) {
        const err = e instanceof VmgateError ? e : new VmgateError('internal', messageOf(e), { cause: e });
        if (stop.signal.aborted) return;
        if (err.code === 'heal-unknown' && relay.bothEnded) {
          // Both directions had ended: the peer completed and forgot the channel; only its last ACK was lost.
          log.info({ event: 'link-healed', attempts, outageMs: Date.now() - relay.lostAt }, 'the link was lost after both directions had ended; the peer gateway completed the channel');
          relay.completeUnacknowledged();
          return;
        }
        if (err instanceof PeerError && !PEER_TRANSIENT.has(err.code)) {
          log.warn({ event: 'heal-failed', cause: err.code, attempts }, `the peer gateway refused to continue the channel (${err.code}): ${err.message}`);
          relay.abort(err.code, `peer gateway: ${err.message}`);
          return;
        }
        if (err.code === 'peer-restarted' || err.code === 'heal-counts') {
          log.warn({ event: 'heal-failed', cause: err.code, attempts }, err.message);
          relay.abort(err.code, err.message);
          return;
        }
        log.debug({ event: 'heal-attempt-failed', cause: err.code, attempts }, `attempt ${attempts} to continue the channel failed (${err.code}): ${err.message}`);
        if (Date.now() - lastWarn >= STILL_HEALING_LOG_MS) {
          lastWarn = Date.now();
          const outage = Math.round((Date.now() - relay.lostAt) / 1000);
          log.warn({ event: 'still-healing', cause: err.code, attempts, outageS: outage }, `channel still healing after ${outage} s and ${attempts} attempts; last: ${err.code}: ${err.message}`);
        }
        if (err.code === 'heal-elsewhere') {
          elsewhereSince ??= Date.now();
          if (Date.now() - elsewhereSince > ELSEWHERE_GIVE_UP_MS) {
            const message = `for ${ELSEWHERE_GIVE_UP_MS / 1000} s no worker of the peer gateway held the channel: its side is gone`;
            log.warn({ event: 'heal-failed', cause: 'heal-unknown', attempts }, message);
            relay.abort('heal-unknown', message);
            return;
          }
          await sleep(ELSEWHERE_RETRY_MS, stop.signal);
          continue;
        }
        elsewhereSince = undefined;
        await sleep(wait, stop.signal);
        wait = Math.min(wait * 2, MAX_RETRY_MS);
      }
    }
  }

  private request(): ContinueRequest {
    const { bytes, ended } = this.o.relay.received;
    return { session: this.o.session, channel: this.o.channel, secret: this.secret, received: bytes, ended };
  }

  private continued(c: Continued): void {
    const { relay, log } = this.o;
    const refuse = (code: ErrorCode, message: string): void => {
      c.hop.tls.destroy();
      c.hop.raw.destroy();
      throw new VmgateError(code, message);
    };
    this.secret = c.secret;
    if (relay.state !== 'healing') {
      c.hop.tls.destroy();
      c.hop.raw.destroy();
      return;
    }
    if (!relay.fits(c.received, c.ended)) {
      refuse('heal-counts', `the peer gateway says it has ${c.received} bytes of this channel${c.ended ? ' and its end' : ''}, which does not fit what was sent`);
    }
    const healed = relay.resume(c.hop, c.received, c.ended, c.remainder);
    this.path = c.path;
    log.info({ event: 'link-healed', outageMs: healed.outageMs, resentBytes: healed.resentBytes, path: c.path, address: c.pathName, tlsResumed: c.tlsResumed }, `channel continued over ${c.pathName} after ${(healed.outageMs / 1000).toFixed(1)} s; resent ${healed.resentBytes} bytes`);
    this.o.metrics.linkHealed('route', healed.resentBytes);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
