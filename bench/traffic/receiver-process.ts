/**
 * The plain receiver, a process of its own (fork): it plays the destination
 * QEMU of the synthetic test. It counts bytes and times the transfer on its
 * own clock, from the first byte to the last end of stream.
 */
import { createServer, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ExpectMessage, ReceiverReport } from './messages.js';

const send = (m: ReceiverReport): void => {
  process.send?.(m);
};

let expected = 0;
let sockets: Socket[] = [];
let counts: number[] = [];
let ended = 0;
let firstByte = 0;

const server = createServer({ allowHalfOpen: true }, (s: Socket) => {
  const i = sockets.length;
  sockets.push(s);
  counts.push(0);
  s.on('error', (e) => send({ type: 'failed', message: `receiver connection ${i}: ${e.message}` }));
  s.on('data', (d: Buffer) => {
    if (firstByte === 0) firstByte = performance.now();
    counts[i] = (counts[i] ?? 0) + d.length;
  });
  s.on('end', () => {
    s.end();
    ended += 1;
    if (ended === expected) {
      const seconds = (performance.now() - firstByte) / 1000;
      send({ type: 'received', bytes: counts.reduce((a, b) => a + b, 0), perConnection: counts, seconds });
    }
  });
  if (sockets.length === expected) send({ type: 'connected', remotePorts: sockets.map((x) => x.remotePort ?? 0) });
});

process.on('message', (m: ExpectMessage) => {
  if (m.type !== 'expect') return;
  for (const s of sockets) s.destroy();
  expected = m.connections;
  sockets = [];
  counts = [];
  ended = 0;
  firstByte = 0;
});
// The bench is gone (finished or killed): stop at once, open sockets and all,
// rather than linger as an orphan holding ports.
// eslint-disable-next-line no-restricted-properties -- a child of the bench, not the daemon: nothing to clean up
process.on('disconnect', () => process.exit(0));

server.listen(0, '127.0.0.1', () => {
  const a = server.address();
  send({ type: 'listening', port: typeof a === 'object' && a !== null ? a.port : 0 });
});
