/**
 * The plain sender, a process of its own (fork): it plays the source QEMU of
 * the synthetic test. It pushes random bytes (one random block generated at
 * start, sent over and over: TLS does not compress, so it is as good as fresh
 * random data and costs no CPU per run) with backpressure, then half-closes.
 */
import { randomFillSync } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { SendMessage, SenderReport } from './messages.js';

const BLOCK = 16 << 20;
const WRITE = 1 << 20;
const random = randomFillSync(Buffer.allocUnsafe(BLOCK));

const send = (m: SenderReport): void => {
  process.send?.(m);
};

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

function push(s: Socket, bytes: number, offset: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let left = bytes;
    let at = offset % BLOCK;
    s.once('error', reject);
    s.resume(); // whatever comes back is dropped
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(WRITE, left, BLOCK - at);
        const chunk = random.subarray(at, at + n);
        at = (at + n) % BLOCK;
        left -= n;
        if (!s.write(chunk)) {
          s.once('drain', pump);
          return;
        }
      }
      s.end(() => resolve());
    };
    pump();
  });
}

async function run(m: SendMessage): Promise<void> {
  const sockets = await Promise.all(Array.from({ length: m.streams }, () => open(m.port)));
  send({ type: 'connected', localPorts: sockets.map((s) => s.localPort ?? 0) });
  const per = Math.floor(m.bytes / m.streams);
  await Promise.all(sockets.map((s, i) => push(s, i === 0 ? m.bytes - per * (m.streams - 1) : per, i * (BLOCK / m.streams))));
  send({ type: 'sent', bytes: m.bytes });
}

process.on('message', (m: SendMessage) => {
  if (m.type !== 'send') return;
  run(m).catch((e: unknown) => send({ type: 'failed', message: `sender: ${e instanceof Error ? e.message : String(e)}` }));
});
// The bench is gone (finished or killed): stop at once, open sockets and all,
// rather than linger as an orphan holding ports.
// eslint-disable-next-line no-restricted-properties -- a child of the bench, not the daemon: nothing to clean up
process.on('disconnect', () => process.exit(0));
