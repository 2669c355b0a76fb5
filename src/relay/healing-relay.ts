import type { Socket } from 'node:net';
import { type ErrorCode, VmgateError, messageOf, systemCode } from '../errors.js';
import { abortConnection } from './abort-connection.js';
import { READ_BUFFER_SIZES } from './buffer-sizes.js';
import { DATA_HEADER_BYTES, END_RECORD, abortRecord, ackRecord, dataHeader, writeDataHeader } from './records.js';
import { HopReader } from './hop-reader.js';
import type { ChannelRelay, RelayCounters, RelayResult } from './relay.js';
import { ReplayBuffer } from './replay-buffer.js';
import type { HealingRelayOptions, Hop, LossCause } from './healing-options.js';

export type { Hop, LossCause } from './healing-options.js';
import { ReusedBufferReader } from './reused-buffer-reader.js';

/**
 * The data phase of one channel in protocol version 2 (docs/protocol.md §5):
 * the local QEMU leg stays for the channel's whole life, and the hop to the
 * peer gateway (TLS) can be lost and replaced without QEMU noticing.
 *
 * - QEMU's bytes go out in DATA records and are kept (ReplayBuffer) until
 *   the peer acknowledges them; reading QEMU stops while the channel or the
 *   gateway keeps its limit, so memory is bounded and nothing sent is lost.
 * - A hop is lost on a TCP error or reset, a close without the END records
 *   both ways, or silence from the peer for `linkTimeoutMs` while we read it
 *   (each side sends an ACK as keepalive when it has written nothing for
 *   KEEPALIVE_MS). Then the channel is `healing`: QEMU's socket stays open
 *   and unread, the window (`healWindowMs`) starts, and the owner is told
 *   (the route dials again; the server waits for a CONTINUE).
 * - `resume` takes a new hop and the byte count the peer has: what it lacks
 *   is written again, and the stream goes on byte for byte both ways.
 * - A normal end is an END record each way, each acknowledged; any other end
 *   is an ABORT record with its cause, so the peer ends with the same cause.
 */

/** The most payload one TLS record carries: a DATA record that fills whole records leaves no tiny one behind. */
const TLS_RECORD_BYTES = 16 << 10;
/** Bytes received between ACKs on a busy hop. */
const ACK_EVERY_BYTES = 1 << 20;
/** An ACK follows received data within this long when no ACK_EVERY_BYTES boundary came. */
const ACK_DELAY_MS = 200;
/** A hop we have written nothing to for this long gets an ACK as keepalive. */
const KEEPALIVE_MS = 500;

export class HealingRelay implements ChannelRelay {
  readonly counters: RelayCounters = { bytesOut: 0, bytesIn: 0 };
  readonly done: Promise<RelayResult>;
  state: 'open' | 'healing' = 'open';
  /** Hops replaced so far, and payload bytes written again on them. */
  heals = 0;
  resentBytes = 0;
  /** When the current outage began (state 'healing'). */
  lostAt = 0;
  private settle!: (r: RelayResult) => void;
  private readonly started = Date.now();
  private readonly replay: ReplayBuffer;
  private readonly localReader: ReusedBufferReader;
  private hop: Hop | undefined;
  /** The latest hop's reader (stopped once that hop is lost). */
  private hopReader: HopReader | undefined;
  private finished = false;
  private completing = false;
  /** The hop's writer is full: stop reading QEMU until it drains. */
  private waitingDrain = false;
  /** QEMU's socket has a full write buffer: stop reading the hop until it drains. */
  private localFull = false;
  /** QEMU ended its side: END is owed to the peer. */
  private localEnded = false;
  /** The peer has acknowledged our END. */
  private endAcked = false;
  /** The peer's END has been read. */
  private peerEnded = false;
  private ackedIn = 0;
  /**
   * A record has come from the peer on this channel (over an earlier hop;
   * `peerHeard` adds the current one): it knows the channel is open. Until
   * then a lost hop waits only briefly for a CONTINUE: the peer may never
   * have got OPENED, and then nobody would come to continue it.
   */
  private heardFromPeer = false;
  private get peerHeard(): boolean {
    return this.heardFromPeer || this.hopReader?.heard === true;
  }
  private corked = false;
  private completeWhy = 'both directions ended normally';
  private lastWritten = Date.now();
  private ackTimer: NodeJS.Timeout | undefined;
  private healTimer: NodeJS.Timeout | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  private readonly linkTimer: NodeJS.Timeout;
  private readonly unsubscribeBudget: () => void;

  /** Call `start` with the first hop: the relay exists (and can be found and aborted) before the control phase ends. */
  constructor(
    private readonly local: Socket,
    private readonly opts: HealingRelayOptions,
  ) {
    this.done = new Promise((resolve) => {
      this.settle = resolve;
    });
    this.replay = new ReplayBuffer(opts.budget);
    this.unsubscribeBudget = opts.budget.onRoom(() => this.resumeLocal());
    this.localReader = new ReusedBufferReader({
      ...READ_BUFFER_SIZES,
      maxOutstandingBytes: opts.replayBufferBytes,
      headroom: DATA_HEADER_BYTES,
      // Buffers come back only when the peer acknowledges them: keep enough spares for a full window.
      spareBuffers: Math.min(8, Math.ceil(opts.replayBufferBytes / READ_BUFFER_SIZES.bufferBytes)),
      alignBytes: TLS_RECORD_BYTES,
    });
    local.on('error', (e) => this.abort(opts.localCause, `${opts.names.local}: connection failed: ${messageOf(e)}${codeSuffix(e)}`));
    local.on('close', () => this.localClosed());
    local.on('end', () => this.onLocalEnd());
    local.on('drain', () => {
      this.localFull = false;
      this.resumeHop();
    });
    this.linkTimer = setInterval(() => this.tick(), KEEPALIVE_MS);
    this.linkTimer.unref();
  }

  /** Starts carrying over the first hop; `initialFromPeer`: what followed the control phase. */
  start(hop: Hop, initialFromPeer: Buffer): void {
    if (this.finished) {
      abortConnection(hop.raw, hop.tls);
      return;
    }
    this.attachHop(hop, initialFromPeer);
    this.readLocal();
    // Our first record tells the peer that we have the channel (see `heardFromPeer`).
    this.sendAck();
  }

  /** The peer has sent a record over the latest hop (lost since or not): after a CONTINUE, proof that it took our CONTINUED. */
  get hopConfirmed(): boolean {
    return this.hopReader?.heard === true;
  }

  get closing(): boolean {
    return this.localEnded || this.peerEnded;
  }

  /** Payload bytes read from the peer (for CONTINUE/CONTINUED), and whether its END was among them. */
  get received(): { bytes: number; ended: boolean } {
    return { bytes: this.counters.bytesIn, ended: this.peerEnded };
  }

  /** Could the peer claim to have `received` of our bytes (and our END when `ended`)? False: the counts do not add up. */
  fits(received: number, ended: boolean): boolean {
    return this.replay.fits(received) && (!ended || (this.localEnded && received === this.replay.sent));
  }

  /**
   * Goes on over a new hop after a loss: `peerReceived` is what the peer has
   * of our bytes (checked with `fits` first), `peerGotEnd` whether it has our
   * END; `initialFromPeer` what followed the control phase on the new hop.
   * Returns how long the link was out and how many bytes went again.
   */
  resume(hop: Hop, peerReceived: number, peerGotEnd: boolean, initialFromPeer: Buffer): { outageMs: number; resentBytes: number } {
    if (this.finished || this.state !== 'healing') throw new VmgateError('internal', 'resume of a channel that is not healing');
    if (!this.fits(peerReceived, peerGotEnd)) throw new VmgateError('heal-counts', `the peer has ${peerReceived} bytes of ours; ${this.replay.acked}..${this.replay.sent} is possible`);
    clearTimeout(this.healTimer);
    const outageMs = Date.now() - this.lostAt;
    this.replay.ack(peerReceived);
    if (peerGotEnd) this.endAcked = true;
    const resentBytes = this.replay.sent - peerReceived;
    this.state = 'open';
    this.heals += 1;
    this.resentBytes += resentBytes;
    this.attachHop(hop, initialFromPeer);
    for (const record of this.replay.from(peerReceived)) this.writeHop(record);
    if (this.localEnded && !this.endAcked) this.writeHop(END_RECORD);
    this.sendAck();
    this.resumeLocal();
    this.checkComplete();
    return { outageMs, resentBytes };
  }

  /** Both directions have ended (our END sent, the peer's read): only an acknowledgement may be missing. */
  get bothEnded(): boolean {
    return this.localEnded && this.peerEnded;
  }

  /**
   * Ends a healing channel normally whose peer completed it (and forgot it)
   * while only the ACK of our END was lost: see ChannelHealer.
   */
  completeUnacknowledged(why = 'both directions ended normally (the peer completed while the link was down)'): void {
    if (this.finished || this.completing || !this.bothEnded) return;
    this.completeWhy = why;
    clearTimeout(this.healTimer);
    this.endAcked = true;
    this.state = 'open';
    this.completing = true;
    this.closeWithin();
  }

  /** Ends the channel now with `cause`, telling the peer why if the hop is up. Idempotent. */
  abort(cause: ErrorCode, message: string): void {
    this.end(cause, message, false);
  }

  /** Gives the hop up and heals over a new one (the route moves a channel back to its first path). */
  dropHop(message: string): void {
    if (this.hop && this.state === 'open' && !this.completing && this.peerHeard) this.linkLost(this.hop, 'path-return', message);
  }

  private end(cause: ErrorCode, message: string, fromPeer: boolean): void {
    if (this.finished) return;
    this.finish(cause, message, fromPeer);
    abortConnection(this.local);
    const hop = this.hop;
    this.hop = undefined;
    if (hop) {
      // The cause first, then the close: a reset now could discard it unread.
      // With how far the channel got here, as the peer's log of a version 1 end gets it from REPORT.
      const { bytesIn, bytesOut } = this.counters;
      if (!fromPeer) hop.tls.end(abortRecord(cause, `${message} (after ${mib(bytesIn)} received, ${mib(bytesOut)} sent there)`));
      setTimeout(() => abortConnection(hop.raw, hop.tls), 1000).unref();
    }
  }

  private finish(cause: ErrorCode | 'ok', message: string, fromPeer = false): void {
    this.finished = true;
    clearInterval(this.linkTimer);
    clearTimeout(this.ackTimer);
    clearTimeout(this.healTimer);
    clearTimeout(this.graceTimer);
    this.unsubscribeBudget();
    this.replay.clear();
    this.settle({ cause, message, durationMs: Date.now() - this.started, ...this.counters, fromPeer });
  }

  // ---- the local leg (QEMU): read into records, kept until acknowledged ----

  private readLocal(): void {
    const local = this.local;
    this.localReader.attach((chunk) => {
      writeDataHeader(chunk, chunk.length - DATA_HEADER_BYTES);
      this.send(chunk, this.localReader.released);
      return this.canRead();
    }, () => this.resumeLocal());
    // Whatever the socket queued before the relay took it (a socket handed to a worker) goes first.
    const queued = local.read() as Buffer | null;
    if (queued !== null) this.sendCopy(queued);
    if (this.opts.dataEvents === true || !this.localReader.adopt(local)) {
      local.on('data', (chunk: Buffer) => {
        this.sendCopy(chunk);
        if (!this.canRead()) local.pause();
      });
    }
    this.resumeLocal();
  }

  private sendCopy(chunk: Buffer): void {
    this.send(Buffer.concat([dataHeader(chunk.length), chunk]), undefined);
  }

  private send(record: Buffer, release: (() => void) | undefined): void {
    this.counters.bytesOut += record.length - DATA_HEADER_BYTES;
    this.replay.push(record, release);
    this.writeHop(record);
  }

  private canRead(): boolean {
    return (
      this.state === 'open' &&
      !this.finished &&
      !this.waitingDrain &&
      !this.localEnded &&
      this.localReader.hasRoom() &&
      // The reader's count misses chunks read with 'data' events; the replay buffer counts them all.
      this.replay.held < this.opts.replayBufferBytes &&
      this.opts.budget.allows(this.replay.held)
    );
  }

  private resumeLocal(): void {
    if (this.canRead()) this.local.resume();
  }

  private onLocalEnd(): void {
    this.localEnded = true;
    this.writeHop(END_RECORD);
  }

  private localClosed(): void {
    if (this.finished) return;
    // Both of QEMU's directions ended cleanly: the channel completes once the peer acknowledges our END.
    if (this.completing || (this.localEnded && this.peerEnded)) {
      this.maybeDone();
      return;
    }
    this.abort(this.opts.localCause, `${this.opts.names.local}: the connection closed before the channel ended`);
  }

  // ---- the hop (TLS to the peer gateway): records both ways ----

  private attachHop(hop: Hop, initial: Buffer): void {
    this.heardFromPeer = this.peerHeard;
    this.hop = hop;
    this.waitingDrain = false;
    const { tls } = hop;
    tls.on('error', (e) => this.linkLost(hop, 'peer-reset', `peer connection failed: ${messageOf(e)}${codeSuffix(e)}`));
    tls.on('end', () => this.hopEnded(hop));
    tls.on('close', () => this.hopEnded(hop));
    tls.on('drain', () => {
      if (hop !== this.hop) return;
      this.waitingDrain = false;
      this.resumeLocal();
    });
    const reader = new HopReader(tls, this.local, {
      delivered: (n) => {
        this.counters.bytesIn += n;
        this.ackSoon();
      },
      ack: (received, ended) => this.onAck(received, ended),
      end: () => this.onPeerEnd(),
      abort: (code, message) => this.end(code, `${this.opts.names.peer}: ${message}`, true),
      bad: (err) => this.abort(err.code, `the peer gateway sent a bad record: ${err.message}`),
      localFull: () => this.localFull,
      setLocalFull: () => (this.localFull = true),
      cork: () => this.corkLocal(),
      room: () => this.resumeHop(),
    });
    this.hopReader = reader;
    reader.start(initial, this.opts.dataEvents === true);
  }

  /**
   * TLS hands decrypted data over one 16 KiB record at a time; batching the
   * writes to QEMU of one event-loop turn saves a syscall per record (as Relay does).
   */
  private corkLocal(): void {
    if (this.corked) return;
    this.corked = true;
    this.local.cork();
    setImmediate(this.uncork);
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.local.uncork();
  };

  private resumeHop(): void {
    const hop = this.hop;
    if (hop) this.hopReader?.resume();
  }

  private writeHop(record: Buffer): void {
    const hop = this.hop;
    if (!hop || this.finished) return;
    this.lastWritten = Date.now();
    if (!hop.tls.write(record)) this.waitingDrain = true;
  }

  private onAck(received: number, ended: boolean): void {
    if (!this.fits(received, ended)) {
      this.abort('heal-counts', `the peer gateway acknowledged ${received} bytes${ended ? ' and our end' : ''}; ${this.replay.acked}..${this.replay.sent} is possible`);
      return;
    }
    this.replay.ack(received);
    if (ended) this.endAcked = true;
    this.resumeLocal();
    this.checkComplete();
  }

  private onPeerEnd(): void {
    if (this.peerEnded) {
      this.abort('protocol-violation', 'the peer gateway sent END twice');
      return;
    }
    this.peerEnded = true;
    this.local.end();
    // No DATA may follow END, so QEMU's full buffer no longer bounds what the
    // hop may bring; and Node emits no 'drain' after end(): reading must not
    // wait for one, or the peer's last ACK would never be read.
    this.localFull = false;
    this.resumeHop();
    this.sendAck();
    this.checkComplete();
  }

  private ackSoon(): void {
    if (this.counters.bytesIn - this.ackedIn >= ACK_EVERY_BYTES) {
      this.sendAck();
      return;
    }
    if (this.ackTimer !== undefined) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      if (this.counters.bytesIn !== this.ackedIn) this.sendAck();
    }, ACK_DELAY_MS);
    this.ackTimer.unref();
  }

  private sendAck(): void {
    if (!this.hop) return;
    this.ackedIn = this.counters.bytesIn;
    this.writeHop(ackRecord(this.ackedIn, this.peerEnded));
  }

  /** Keepalive, and the silence that loses a hop. */
  private tick(): void {
    const hop = this.hop;
    if (!hop || this.state !== 'open' || this.completing) return;
    const now = Date.now();
    if (now - this.lastWritten >= KEEPALIVE_MS && !this.waitingDrain) this.sendAck();
    const reader = this.hopReader;
    const silent = now - (reader?.lastHeard ?? now);
    if (this.opts.linkTimeoutMs > 0 && reader?.paused === false && silent > this.opts.linkTimeoutMs) {
      this.linkLost(hop, 'link-timeout', `nothing heard from the peer gateway for ${Math.round(silent / 1000)} s (channel.linkTimeoutMs=${this.opts.linkTimeoutMs})`);
    }
  }

  private hopEnded(hop: Hop): void {
    if (hop !== this.hop) return;
    if (!this.completing && !hop.tls.destroyed && this.localEnded && this.peerEnded && !this.endAcked && this.hopReader?.idle === true) {
      // A clean close after the peer's END: the peer closes only once it has
      // completed, and it completes only with our END in hand; the ACK that
      // said so was the last thing it sent, and may be all we are missing.
      this.endAcked = true;
      this.checkComplete();
    }
    if (this.completing) {
      this.maybeDone();
      return;
    }
    this.linkLost(hop, 'peer-reset', 'the peer connection closed before the channel ended');
  }

  private linkLost(hop: Hop, cause: LossCause, message: string): void {
    if (hop !== this.hop || this.finished || this.completing) return;
    this.hop = undefined;
    this.hopReader?.stop();
    this.heardFromPeer = this.peerHeard;
    this.state = 'healing';
    this.lostAt = Date.now();
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    abortConnection(hop.raw, hop.tls);
    this.local.pause();
    if (this.opts.healWindowMs <= 0) {
      this.abort(cause === 'path-return' ? 'internal' : cause, message);
      return;
    }
    // A short wait instead of the window where the peer may never come back:
    // it dials again at once when it needs to.
    const shortWait = Math.min(this.opts.healWindowMs, Math.max(this.opts.closeGraceMs, 1_000));
    if (!this.peerHeard) {
      // Nothing came from the peer yet: it may never have got OPENED, and then nobody would continue the channel.
      this.healTimer = setTimeout(() => this.abort(cause === 'path-return' ? 'internal' : cause, `${message}; the link was lost before the peer gateway had sent anything on the channel, and it did not continue it within ${shortWait} ms`), shortWait);
    } else if (this.bothEnded) {
      // QEMU's side is over both ways; only the peer may still lack our last
      // bytes or END. A peer that does dials again at once; one that has
      // completed (the usual case: it closed first) never will.
      this.healTimer = setTimeout(() => this.completeUnacknowledged(`both directions had ended and the peer gateway did not come back within ${shortWait} ms: it had completed`), shortWait);
    } else {
      this.healTimer = setTimeout(() => {
        this.abort('heal-expired', `the link to the peer gateway did not come back within ${Math.round(this.opts.healWindowMs / 1000)} s (channel.healWindowMs); it was lost: ${message}`);
      }, this.opts.healWindowMs);
    }
    this.healTimer.unref();
    this.opts.onLinkLost(cause, message);
  }

  // ---- the normal end: END both ways, both acknowledged ----

  private checkComplete(): void {
    if (this.completing || this.finished || !this.localEnded || !this.endAcked || !this.peerEnded || !this.hop) return;
    this.completing = true;
    clearTimeout(this.ackTimer);
    this.hop.tls.end();
    this.closeWithin();
  }

  /** Done once QEMU's socket has closed (it may still be reading the last bytes), within closeGraceMs. */
  private closeWithin(): void {
    this.graceTimer = setTimeout(() => {
      if (this.local.destroyed) this.closeDone();
      else this.abort('stalled', `the channel did not finish closing within ${this.opts.closeGraceMs} ms`);
    }, this.opts.closeGraceMs);
    this.graceTimer.unref();
    this.maybeDone();
  }

  private maybeDone(): void {
    if (!this.completing || !this.local.destroyed || this.hop?.tls.destroyed === false) return;
    this.closeDone();
  }

  private closeDone(): void {
    if (this.finished) return;
    const hop = this.hop;
    this.finish('ok', this.completeWhy);
    if (hop && !hop.tls.destroyed) hop.tls.destroy();
  }
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

function codeSuffix(e: unknown): string {
  const c = systemCode(e);
  return c ? ` (${c})` : '';
}
