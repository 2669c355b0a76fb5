/**
 * A plain target that holds connections open: for timing channel opening
 * (when did the first byte of each connection arrive) and for idle channels.
 * Runs in the bench process: it moves a few bytes only.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

export class HoldSink {
  private readonly sockets = new Set<Socket>();
  private readonly firstByte: number[] = [];
  private waiters: Array<() => void> = [];

  private constructor(private readonly server: Server, readonly port: number) {
    // Attached before any I/O callback can run: no connection is missed.
    server.on('connection', (s: Socket) => this.accept(s));
  }

  static async start(): Promise<HoldSink> {
    const server = createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const a = server.address();
    return new HoldSink(server, typeof a === 'object' && a !== null ? a.port : 0);
  }

  /** Connections whose first byte has arrived. */
  get arrived(): number {
    return this.firstByte.length;
  }

  /** Resolves (with performance.now() of the last arrival) once `n` connections have delivered a byte. */
  async waitArrived(n: number, timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.firstByte.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${this.firstByte.length} of ${n} channels delivered their first byte within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return Math.max(...this.firstByte.slice(0, n));
  }

  /** Ends every held connection and forgets the arrivals. */
  release(): void {
    for (const s of this.sockets) s.end();
    this.sockets.clear();
    this.firstByte.length = 0;
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(s: Socket): void {
    this.sockets.add(s);
    s.on('error', () => undefined);
    s.once('data', () => {
      this.firstByte.push(performance.now());
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
    s.on('end', () => s.end());
    s.on('close', () => this.sockets.delete(s));
  }
}
