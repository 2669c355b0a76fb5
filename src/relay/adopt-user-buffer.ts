import type { OnReadOpts, Socket } from 'node:net';

/**
 * Gives an existing socket what Node's `onread` option gives a socket it
 * creates: reads land in buffers we supply and go to a callback, with no
 * allocation per read and no readable-stream queue.
 *
 * Why reach past the public API: Node 20 takes `onread` only from
 * `net.connect` and `tls.connect`, but the heaviest reads of a migration are
 * on sockets Node creates for us: the route's accepted QEMU connection (the
 * source gateway reads every byte of guest RAM from it) and the server's
 * TLS connection from tls.Server (the destination decrypts every byte from
 * it), plus sockets handed to a worker process. docs/performance.md has what
 * this bought.
 *
 * What it does is what net.Socket does for `onread` at construction
 * (lib/net.js, initSocketHandle): set the socket's three symbol-keyed
 * onread fields and hand the first buffer to the stream handle's
 * `useUserBuffer`. net.Socket's own pause, resume and read already honour
 * those fields. If a Node release renames or drops them, this returns false
 * and the caller reads with 'data' events as before: slower, never wrong.
 * test/integration/relay-buffers.test.ts fails on such a release, so the
 * loss is noticed at the upgrade, not in production.
 */

type OnReadFields = { buffer: symbol; generator: symbol; callback: symbol };
type HandleWithUserBuffer = { useUserBuffer?: (buf: Uint8Array) => void };
type Internals = Record<symbol, unknown> & { _handle?: HandleWithUserBuffer | null };

/**
 * Switches `socket` to reading through `onread` from its next read. False
 * (and the socket untouched) when this Node's net.Socket does not have the
 * expected internals, when the socket has no stream handle (closed, or a JS
 * stream), when it already reads that way, or when data is already queued
 * in it (take that with `read()` first).
 */
export function adoptUserBuffer(socket: Socket, onread: OnReadOpts): boolean {
  const fields = onReadFields(socket);
  const internals = socket as unknown as Internals;
  const handle = internals._handle;
  if (fields === undefined || typeof handle?.useUserBuffer !== 'function') return false;
  if (internals[fields.buffer] !== null || socket.destroyed || socket.readableLength > 0) return false;
  const generator = onread.buffer;
  if (typeof generator !== 'function') return false;
  const first = generator();
  internals[fields.buffer] = first;
  internals[fields.generator] = generator;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- kept as Node keeps it, so it is called exactly as for net.connect's onread
  internals[fields.callback] = onread.callback;
  handle.useUserBuffer(first);
  return true;
}

/** The symbols under which net.Socket keeps its onread state; every net.Socket has them, null when unused. */
function onReadFields(socket: Socket): OnReadFields | undefined {
  const found: Partial<Record<string, symbol>> = {};
  for (const s of Object.getOwnPropertySymbols(socket)) {
    if (s.description === 'kBuffer' || s.description === 'kBufferGen' || s.description === 'kBufferCb') found[s.description] = s;
  }
  const { kBuffer, kBufferGen, kBufferCb } = found;
  if (kBuffer === undefined || kBufferGen === undefined || kBufferCb === undefined) return undefined;
  return { buffer: kBuffer, generator: kBufferGen, callback: kBufferCb };
}
