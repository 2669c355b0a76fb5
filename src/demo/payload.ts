import { createHash, randomFillSync } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * Random payloads with digests, for the demo, tests and benchmarks: a sink
 * that plays the destination QEMU (hashes what arrives, optionally sends its
 * own payload back) and a source that plays the source QEMU.
 */
export interface Transfer {
  /** sha256 of what this end sent / received. */
  sent: string;
  received: string;
  bytesSent: number;
  bytesReceived: number;
}

const CHUNK = 1 << 20;

/** Sends `bytes` random bytes with backpressure, then half-closes. Resolves with the digest sent. */
export function sendRandom(socket: Socket, bytes: number): Promise<{ digest: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let left = bytes;
    const pump = (): void => {
      while (left > 0) {
        const chunk = randomFillSync(Buffer.allocUnsafe(Math.min(CHUNK, left)));
        left -= chunk.length;
        hash.update(chunk);
        if (!socket.write(chunk)) {
          socket.once('drain', pump);
          return;
        }
      }
      socket.end(() => resolve({ digest: hash.digest('hex'), bytes }));
    };
    socket.once('error', reject);
    pump();
  });
}

/** Hashes everything that arrives until the peer half-closes. */
export function receiveAll(socket: Socket): Promise<{ digest: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let n = 0;
    socket.on('data', (d: Buffer) => {
      n += d.length;
      hash.update(d);
    });
    socket.once('end', () => resolve({ digest: hash.digest('hex'), bytes: n }));
    socket.once('error', reject);
  });
}

/** Both directions at once on one socket. */
export async function exchange(socket: Socket, sendBytes: number): Promise<Transfer> {
  const [sent, received] = await Promise.all([sendRandom(socket, sendBytes), receiveAll(socket)]);
  return { sent: sent.digest, received: received.digest, bytesSent: sent.bytes, bytesReceived: received.bytes };
}

export interface PayloadSink {
  server: Server;
  port: number;
  /** One promise per accepted connection, in arrival order. */
  transfers: Array<Promise<Transfer>>;
  /** Resolves with the Nth accepted connection's transfer. */
  next(): Promise<Transfer>;
  close(): Promise<void>;
}

/** A loopback TCP server on `port` (0: any) that exchanges payloads with each connection (replyBytes back). */
export async function startSink(replyBytes = 0, port = 0): Promise<PayloadSink> {
  const transfers: Array<Promise<Transfer>> = [];
  const waiters: Array<(t: Promise<Transfer>) => void> = [];
  let taken = 0;
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    const t = exchange(s, replyBytes);
    t.catch(() => undefined);
    transfers.push(t);
    waiters.shift()?.(t);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address();
  const bound = typeof address === 'object' && address ? address.port : 0;
  return {
    server,
    port: bound,
    transfers,
    next() {
      const i = taken++;
      const existing = transfers[i];
      if (existing) return existing;
      return new Promise<Promise<Transfer>>((resolve) => waiters.push(resolve)).then((t) => t);
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Connects to `port` on loopback with half-close enabled. */
export function connectLoopback(port: number, host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, allowHalfOpen: true }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}
