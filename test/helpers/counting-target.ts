import { createServer, type Socket } from 'node:net';

/** A loopback target (a destination QEMU stand-in) that counts what arrives and ends when the sender ends. */
export interface CountingTarget {
  port: number;
  /** Resolves once `bytes` have arrived, over all connections. */
  received(bytes: number): Promise<void>;
  close(): Promise<void>;
}

export async function countingTarget(): Promise<CountingTarget> {
  let total = 0;
  let waiter: { bytes: number; resolve: () => void } | undefined;
  const sockets: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.push(s);
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      total += d.length;
      if (waiter && total >= waiter.bytes) waiter.resolve();
    });
    s.on('end', () => s.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    received: (bytes) => (total >= bytes ? Promise.resolve() : new Promise((resolve) => (waiter = { bytes, resolve }))),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
