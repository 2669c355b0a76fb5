import type { OnReadOpts } from 'node:net';

/**
 * Reads a socket into a few reused buffers (net's `onread` option) instead of
 * letting Node allocate a fresh 64 KiB buffer for every read: fewer, larger
 * reads and no allocation per chunk. Only sockets we create can take
 * `onread`; accepted sockets (a route's QEMU connection) cannot.
 *
 * A buffer filled by a read goes to the writer and comes back when the
 * write's callback fires (writes complete in order, so the oldest comes back
 * first). Reading stops while `maxInFlight` buffers are out, so a direction
 * holds at most `(maxInFlight + 1) * bufferBytes` of them.
 *
 *   const reader = new ReusedBufferReader();
 *   const socket = createConnection({ host, port, onread: reader.onread });
 *   reader.attach((chunk) => writer.write(chunk, reader.released) && reader.hasRoom());
 */
export class ReusedBufferReader {
  /** Pass to `net.createConnection` / `new net.Socket`. */
  readonly onread: OnReadOpts;
  /** Write callback for a chunk from this reader: hands its buffer back. */
  readonly released: () => void;
  private readonly free: Buffer[] = [];
  private readonly inFlight: Buffer[] = [];
  private sink: ((chunk: Buffer) => boolean) | undefined;
  private onRoom: (() => void) | undefined;

  constructor(
    private readonly bufferBytes: number,
    private readonly maxInFlight: number,
  ) {
    this.onread = {
      buffer: () => this.next(),
      callback: (nread: number, buf: Uint8Array) => this.deliver(nread, buf as Buffer),
    };
    this.released = () => {
      const buf = this.inFlight.shift();
      if (buf !== undefined) this.free.push(buf);
      if (this.inFlight.length < this.maxInFlight) this.onRoom?.();
    };
  }

  /**
   * Where chunks go: `sink` returns false to stop reading (the writer is
   * full); `onRoom` is called when a buffer has come back and reading may
   * resume. Nothing is read before the socket is resumed, so attach before that.
   */
  attach(sink: (chunk: Buffer) => boolean, onRoom: () => void): void {
    this.sink = sink;
    this.onRoom = onRoom;
  }

  /** True while another read may start. */
  hasRoom(): boolean {
    return this.inFlight.length < this.maxInFlight;
  }

  /** The buffer for the next read: never one that is still out. */
  private next(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.bufferBytes);
  }

  private deliver(nread: number, buf: Buffer): boolean {
    this.inFlight.push(buf);
    const sink = this.sink;
    if (sink === undefined) throw new Error('ReusedBufferReader: data arrived before attach()');
    return sink(nread === buf.length ? buf : buf.subarray(0, nread));
  }
}
