import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { VmgateError, messageOf } from '../errors.js';
import { READ_BUFFER_SIZES } from './buffer-sizes.js';
import { RecordParser, type RecordSink } from './records.js';
import { ReusedBufferReader } from './reused-buffer-reader.js';

/** What the channel does with what one hop brings. */
export interface HopSink extends Omit<RecordSink, 'data'> {
  /** `n` payload bytes are being written to QEMU. */
  delivered(n: number): void;
  /** Bytes no honest peer sends: the channel ends. */
  bad(err: VmgateError): void;
  /** QEMU's socket is full: stop reading until it drains (the channel's, shared by every hop). */
  localFull(): boolean;
  setLocalFull(): void;
  /** Batches this turn's writes to QEMU. */
  cork(): void;
  /** More buffer room: reading may resume. */
  room(): void;
}

/**
 * Reads the records of one hop of a healing channel (healing-relay.ts) into
 * reused buffers and writes the DATA payloads to QEMU's socket, with the
 * same backpressure as Relay: reading stops while QEMU's socket is full or
 * the buffers are out. A buffer chunk goes back once the last write it made
 * is done (writes complete in order), so no byte is overwritten while QEMU
 * is still being sent it. Once `stop` is called (the hop was lost) what
 * still arrives is dropped unread: the peer sends it again from our count.
 */
export class HopReader {
  /** When a byte last came over this hop. */
  lastHeard = Date.now();
  /** A record has come over this hop. */
  heard = false;
  /** Reading is stopped by QEMU or the buffers: silence says nothing about the link then. */
  paused = false;
  private live = true;
  private readonly reader = new ReusedBufferReader(READ_BUFFER_SIZES);
  private readonly parser: RecordParser;
  /** Per write to QEMU from this hop, in order: how many reader chunks to hand back once it is done. */
  private readonly releases: number[] = [];
  private wrote = false;

  constructor(
    private readonly tls: TLSSocket,
    private readonly local: Socket,
    private readonly sink: HopSink,
  ) {
    const written = (): void => {
      for (let n = this.releases.shift() ?? 0; n > 0; n -= 1) this.reader.released();
    };
    this.parser = new RecordParser({
      data: (payload) => {
        sink.delivered(payload.length);
        this.releases.push(0);
        this.wrote = true;
        sink.cork();
        if (!local.write(payload, written)) sink.setLocalFull();
      },
      ack: (received, ended) => sink.ack(received, ended),
      end: () => sink.end(),
      abort: (code, message) => sink.abort(code, message),
    });
  }

  /** Starts reading: `initial` is what followed the control phase; `dataEvents` as RelayOptions. */
  start(initial: Buffer, dataEvents: boolean): void {
    const tls = this.tls;
    if (initial.length > 0) this.take(initial, false);
    // Whatever the TLS socket decrypted and queued after the control phase goes next (as in Relay).
    const queued = tls.read() as Buffer | null;
    if (queued !== null) this.take(queued, false);
    this.reader.attach((chunk) => this.take(chunk, true), () => this.sink.room());
    if (dataEvents || !this.reader.adopt(tls)) {
      tls.on('data', (chunk: Buffer) => {
        if (!this.take(chunk, false)) tls.pause();
      });
    }
    tls.resume();
  }

  /** Reads again if QEMU and the buffers allow. */
  resume(): void {
    if (!this.live || this.sink.localFull() || !this.reader.hasRoom()) return;
    if (this.paused) this.lastHeard = Date.now();
    this.paused = false;
    this.tls.resume();
  }

  /** The hop was lost: nothing more from it is parsed. */
  stop(): void {
    this.live = false;
  }

  /** Between records: a close here is a close at a record boundary. */
  get idle(): boolean {
    return this.parser.idle;
  }

  private take(chunk: Buffer, fromReader: boolean): boolean {
    this.wrote = false;
    if (this.live) {
      this.lastHeard = Date.now();
      this.heard = true;
      try {
        this.parser.push(chunk);
      } catch (e: unknown) {
        this.sink.bad(e instanceof VmgateError ? e : new VmgateError('protocol-violation', messageOf(e)));
      }
    }
    if (fromReader) {
      // Hand the chunk back after the last write to QEMU it made, or now if none is pending.
      const last = this.releases.length - 1;
      if (this.wrote || last >= 0) this.releases[last] = (this.releases[last] ?? 0) + 1;
      else this.reader.released();
    }
    const more = this.live && !this.sink.localFull() && this.reader.hasRoom();
    this.paused = !more;
    return more;
  }
}
