import type { OnReadOpts, Socket } from 'node:net';
import { adoptUserBuffer } from './adopt-user-buffer.js';

/**
 * Reads a socket into a few large reused buffers (Node's `onread` mechanism)
 * instead of letting Node allocate a fresh buffer for every read: for a plain
 * socket a read takes whatever the kernel holds, up to the free space of the
 * current buffer, instead of 64 KiB; for a TLS socket each decrypted 16 KiB
 * record lands in our buffer instead of a new allocation, and skips the
 * readable stream's queue.
 *
 * Each read goes into the unused tail of the current buffer; when the tail
 * gets short, reading moves to a fresh buffer. A chunk handed to the sink is
 * out until its write's callback (`released`) fires; writes complete in
 * order, so the oldest chunk comes back first. A buffer is reused once it is
 * full and all its chunks are back, so no byte is overwritten while it is
 * still being written. Reading stops while `maxOutstandingBytes` are out.
 *
 *   const reader = new ReusedBufferReader(sizes);
 *   reader.attach((chunk) => writer.write(chunk, reader.released) && reader.hasRoom(), () => socket.resume());
 *   reader.adopt(socket) || socket.on('data', ...);
 */

export interface ReadBufferSizes {
  /** Size of each buffer. */
  bufferBytes: number;
  /** A tail shorter than this is left unused: the next read goes to a fresh buffer. */
  minReadBytes: number;
  /** Reading stops while this many bytes are with the writer. */
  maxOutstandingBytes: number;
  /**
   * Bytes left free in front of each read and included at the start of its
   * chunk, for the writer to put a record header in (protocol v2 DATA): the
   * header and the payload go out in one write, with no copy.
   */
  headroom?: number;
  /**
   * Free buffers kept for reuse beyond those in use (default 2). A reader
   * whose chunks stay out until the peer acknowledges them (a healing
   * channel's, see replay-buffer.ts) cycles through more buffers; without
   * enough spares each new one is fresh memory the kernel must fault in and
   * zero, which measured as 60 % more CPU on the sending gateway.
   */
  spareBuffers?: number;
  /**
   * Make each read, with its headroom, end on a multiple of this many bytes
   * (16 KiB: a TLS record's payload). With a 5-byte header in front, a full
   * 64 KiB read would otherwise leave a 5-byte TLS record behind every write.
   */
  alignBytes?: number;
}

interface Slab {
  readonly buf: Buffer;
  /** Chunks of this buffer not yet released. */
  out: number;
}

/** Free buffers kept for reuse beyond those in use; more go to the garbage collector. */
const SPARE_BUFFERS = 2;

export class ReusedBufferReader {
  /** What Node's `onread` option would be; `adopt` installs it on a socket. */
  private readonly onread: OnReadOpts;
  /** Write callback for a chunk from this reader: hands its bytes back. */
  readonly released: () => void;
  private readonly spare: Buffer[] = [];
  /** The owner of each chunk that is out, oldest first, and its length. */
  private readonly owners: Slab[] = [];
  private readonly lengths: number[] = [];
  private outstanding = 0;
  private current: Slab | undefined;
  private fill = 0;
  private sink: ((chunk: Buffer) => boolean) | undefined;
  private onRoom: (() => void) | undefined;
  private readonly headroom: number;

  constructor(private readonly sizes: ReadBufferSizes) {
    this.headroom = sizes.headroom ?? 0;
    this.onread = {
      buffer: () => this.next(),
      callback: (nread: number) => this.deliver(nread),
    };
    this.released = () => this.release();
  }

  /**
   * Where chunks go: `sink` returns false to stop reading (the writer is
   * full); `onRoom` is called when bytes have come back and reading may
   * resume. Attach before the socket is read.
   */
  attach(sink: (chunk: Buffer) => boolean, onRoom: () => void): void {
    this.sink = sink;
    this.onRoom = onRoom;
  }

  /**
   * Reads an existing socket (an accepted one) through this reader from now
   * on. False when this Node cannot (see adopt-user-buffer.ts): read it with
   * 'data' events instead. Take whatever the socket has buffered first.
   */
  adopt(socket: Socket): boolean {
    return adoptUserBuffer(socket, this.onread);
  }

  /** True while another read may start. */
  hasRoom(): boolean {
    return this.outstanding < this.sizes.maxOutstandingBytes;
  }

  /** Bytes handed to the sink and not released yet. */
  get outstandingBytes(): number {
    return this.outstanding;
  }

  /** Where the next read goes: the current buffer's unused tail, or a fresh buffer. */
  private next(): Buffer {
    let slab = this.current;
    if (slab === undefined || slab.buf.length - this.fill - this.headroom < this.sizes.minReadBytes) {
      if (slab !== undefined && slab.out === 0) this.recycle(slab.buf);
      slab = { buf: this.spare.pop() ?? Buffer.allocUnsafeSlow(this.sizes.bufferBytes), out: 0 };
      this.current = slab;
      this.fill = 0;
    }
    const align = this.sizes.alignBytes;
    if (align === undefined) return slab.buf.subarray(this.fill + this.headroom);
    const usable = Math.floor((slab.buf.length - this.fill) / align) * align;
    return slab.buf.subarray(this.fill + this.headroom, this.fill + Math.max(usable, this.headroom + this.sizes.minReadBytes));
  }

  /** Node read `nread` bytes into the tail that `next` gave it. */
  private deliver(nread: number): boolean {
    const slab = this.current;
    const sink = this.sink;
    if (slab === undefined || sink === undefined) throw new Error('ReusedBufferReader: data arrived before attach()');
    const length = this.headroom + nread;
    const chunk = slab.buf.subarray(this.fill, this.fill + length);
    this.fill += length;
    slab.out += 1;
    this.owners.push(slab);
    this.lengths.push(length);
    this.outstanding += length;
    return sink(chunk);
  }

  private release(): void {
    const slab = this.owners.shift();
    if (slab === undefined) return;
    const wasFull = !this.hasRoom();
    this.outstanding -= this.lengths.shift() ?? 0;
    slab.out -= 1;
    if (slab.out === 0 && slab !== this.current) this.recycle(slab.buf);
    if (wasFull && this.hasRoom()) this.onRoom?.();
  }

  private recycle(buf: Buffer): void {
    if (this.spare.length < (this.sizes.spareBuffers ?? SPARE_BUFFERS)) this.spare.push(buf);
  }
}
