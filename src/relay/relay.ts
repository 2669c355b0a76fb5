import { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { type ErrorCode, messageOf, systemCode } from '../errors.js';
import { abortConnection } from './abort-connection.js';
import { READ_BUFFER_SIZES } from './buffer-sizes.js';
import { ReusedBufferReader } from './reused-buffer-reader.js';

/**
 * The data phase of one channel: raw bytes both ways between the local QEMU
 * leg (plain TCP or unix) and the peer gateway leg (TLS).
 *
 * - Backpressure is end to end: a direction stops reading when its writer's
 *   buffer is full and resumes on 'drain', so memory per channel is bounded
 *   by the sockets' high-water marks, never by the data rate.
 * - A normal end (FIN) is relayed as a normal end: the other leg is ended
 *   after everything before it is written; the other direction keeps flowing.
 * - Anything abnormal (error, reset, abort) tears down both legs at once, the
 *   local one with a TCP RST where possible so QEMU sees an error, not EOF.
 * - Both legs are read into a few reused buffers (ReusedBufferReader), and
 *   nothing is allocated per chunk: the listeners and callbacks of a
 *   direction are made once (docs/performance.md says what that bought).
 */

export interface RelayCounters {
  /** Bytes written towards the peer gateway. */
  bytesOut: number;
  /** Bytes received from the peer gateway. */
  bytesIn: number;
}

export interface RelayResult extends RelayCounters {
  /** 'ok' for a normal end in both directions, else the cause class. */
  cause: ErrorCode | 'ok';
  message: string;
  durationMs: number;
  /** The peer gateway said why (an ABORT record): nothing to announce to it or to ask it. */
  fromPeer?: boolean;
}

/**
 * A channel's data phase as the rest of the gateway sees it: the raw relay
 * of protocol version 1 (Relay) or the healing relay of version 2
 * (HealingRelay, healing-relay.ts).
 */
export interface ChannelRelay {
  readonly counters: RelayCounters;
  readonly done: Promise<RelayResult>;
  /** True once either direction has ended normally. */
  readonly closing: boolean;
  /** 'healing' while the hop to the peer gateway is lost and being replaced. */
  readonly state: 'open' | 'healing';
  /** Ends the channel now, both legs, with the given cause. Idempotent. */
  abort(cause: ErrorCode, message: string): void;
}

export interface RelayOptions {
  /** Cause to report when the local leg fails: 'local-closed' on a route, 'target-closed' on a server. */
  localCause: ErrorCode;
  /** How long to wait for both legs to flush and close after a normal end in both directions. */
  closeGraceMs: number;
  /** Bytes that arrived from the peer behind the last control frame. */
  initialFromPeer?: Buffer;
  /** Read both legs with 'data' events, as on a Node where reused buffers cannot be adopted (tests). */
  dataEvents?: boolean;
}

export class Relay implements ChannelRelay {
  readonly state = 'open' as const;
  readonly counters: RelayCounters = { bytesOut: 0, bytesIn: 0 };
  readonly done: Promise<RelayResult>;
  private readonly started = Date.now();
  private settle!: (r: RelayResult) => void;
  private finished = false;
  private endedDirections = 0;
  private graceTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly local: Socket,
    private readonly peer: TLSSocket,
    /** The TCP socket under `peer`: resetting it is how the peer gateway learns of an abort. */
    private readonly peerRaw: Socket,
    private readonly opts: RelayOptions,
  ) {
    this.done = new Promise((resolve) => {
      this.settle = resolve;
    });
    if (opts.initialFromPeer && opts.initialFromPeer.length > 0) {
      this.counters.bytesIn += opts.initialFromPeer.length;
      local.write(opts.initialFromPeer);
    }
    local.on('error', (e) => this.abort(this.opts.localCause, `local connection failed: ${messageOf(e)}${codeSuffix(e)}`));
    peer.on('error', (e) => this.abort('peer-reset', `peer connection failed: ${messageOf(e)}${codeSuffix(e)}`));
    local.on('close', () => this.closed('local'));
    peer.on('close', () => this.closed('peer'));
    this.pump(local, peer, 'bytesOut');
    this.pump(peer, local, 'bytesIn');
  }

  /** True once either direction has ended normally. */
  get closing(): boolean {
    return this.endedDirections > 0;
  }

  /** Ends the channel now, both legs, with the given cause. Idempotent. */
  abort(cause: ErrorCode, message: string): void {
    if (this.finished) return;
    this.finish(cause, message);
    abortConnection(this.local);
    // Destroying a TLS socket ends it with a bare FIN, which the peer cannot
    // tell from a clean end; a reset of the TCP socket under it can be told.
    abortConnection(this.peerRaw, this.peer);
  }

  /** Carries one direction, `from` to `to`, and starts reading `from`. */
  private pump(from: Socket, to: Socket, counter: keyof RelayCounters): void {
    const plainWriter = !(to instanceof TLSSocket);
    const reader = new ReusedBufferReader(READ_BUFFER_SIZES);
    let corked = false;
    let waitingDrain = false;
    const uncork = (): void => {
      corked = false;
      to.uncork();
    };
    const resume = (): void => {
      if (!waitingDrain && reader.hasRoom()) from.resume();
    };
    to.on('drain', () => {
      if (!waitingDrain) return;
      waitingDrain = false;
      resume();
    });
    /** Writes one chunk; false when the writer is full (stop reading until 'drain'). */
    const forward = (chunk: Buffer, written: (() => void) | undefined): boolean => {
      this.counters[counter] += chunk.length;
      // TLS hands decrypted data over one 16 KiB record at a time; batching the
      // plain-side writes of one event-loop turn saves a syscall per record.
      if (plainWriter && !corked) {
        corked = true;
        to.cork();
        setImmediate(uncork);
      }
      if (to.write(chunk, written)) return true;
      waitingDrain = true;
      return false;
    };
    from.on('end', () => {
      if (corked) uncork();
      to.end();
      this.endedDirections += 1;
      if (this.endedDirections === 2) this.armGrace();
    });
    // Whatever the socket queued before the relay took it (a socket handed to
    // a worker may have read some) goes first.
    const queued = from.read() as Buffer | null;
    if (queued !== null) forward(queued, undefined);
    // Returning false stops reading; `resume` restarts it once the writer has drained and bytes are back.
    reader.attach((chunk) => forward(chunk, reader.released) && reader.hasRoom(), resume);
    if (this.opts.dataEvents === true || !reader.adopt(from)) {
      from.on('data', (chunk: Buffer) => {
        if (!forward(chunk, undefined)) from.pause();
      });
    }
    resume();
  }

  private closed(which: 'local' | 'peer'): void {
    if (this.finished) return;
    if (this.endedDirections === 2) {
      // Both directions ended cleanly; done once the other leg has flushed and closed too.
      if (this.local.destroyed && this.peer.destroyed) this.finish('ok', 'both directions ended normally');
      return;
    }
    // One leg went away without a clean end in both directions: tear down the other.
    if (which === 'local') this.abort(this.opts.localCause, 'the local connection closed before the channel ended');
    else this.abort('peer-reset', 'the peer connection closed before the channel ended');
  }

  private armGrace(): void {
    this.graceTimer = setTimeout(() => this.abort('stalled', `the channel did not finish closing within ${this.opts.closeGraceMs} ms`), this.opts.closeGraceMs);
    this.graceTimer.unref();
  }

  private finish(cause: ErrorCode | 'ok', message: string): void {
    this.finished = true;
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.settle({ cause, message, durationMs: Date.now() - this.started, ...this.counters });
  }
}

function codeSuffix(e: unknown): string {
  const c = systemCode(e);
  return c ? ` (${c})` : '';
}
