/** Plain client connections that play QEMU's channels: each sends one byte, then waits. */
import { connect, type Socket } from 'node:net';

export function openChannel(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => {
      s.off('error', reject);
      s.on('error', () => undefined);
      s.write('x');
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Ends the channels and waits until they are closed. */
export async function closeChannels(sockets: readonly Socket[]): Promise<void> {
  await Promise.all(
    sockets.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.destroyed) return resolve();
          s.once('close', () => resolve());
          s.resume();
          s.end();
          setTimeout(() => s.destroy(), 5_000).unref();
        }),
    ),
  );
}
