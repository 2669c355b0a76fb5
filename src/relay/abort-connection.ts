import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

/**
 * Ends a connection abnormally, so that the process at the other end sees an
 * error rather than a clean end of stream: a TCP reset where one can be sent.
 * The one place that does this, for the local QEMU leg and for the TCP
 * socket under a peer's TLS leg. Never throws, never leaves an 'error' that
 * nobody listens to.
 *
 * What Node does underneath, measured on Node 20 / libuv 1.46 / Linux:
 * - `resetAndDestroy()` does send a RST (SO_LINGER 0, then close). A libuv
 *   reader on the other end that still has unread data reads it and then
 *   reports EOF, not ECONNRESET (libuv turns POLLHUP after a partial read
 *   into EOF); a QEMU reader or writer sees "Connection reset by peer".
 * - While a shutdown (our FIN) is still queued in libuv, `resetAndDestroy()`
 *   fails with EINVAL: Node emits 'error' on the socket (fatal if nobody
 *   listens), drops its handle without closing it (the descriptor leaks) and
 *   the peer gets neither a RST nor a close. So a socket whose write side is
 *   being ended is closed normally instead: its FIN is already on its way,
 *   and the other direction fails at the peer's next write.
 * - A unix socket has no reset (`resetAndDestroy` throws): a normal close,
 *   which the peer sees as ECONNRESET if we discard data it sent, else EOF.
 * - Under TLS only the TCP socket can carry a reset. Destroying the TLS
 *   socket in the same tick as that reset crashed Node (SIGSEGV) when it came
 *   right after the handshake; Node destroys the TLS socket by itself once
 *   its TCP socket has closed, so it is left to do that.
 */
export function abortConnection(socket: Socket, tls?: TLSSocket): void {
  const writer = tls ?? socket;
  if (socket.destroyed) {
    writer.destroy();
    return;
  }
  if (endingWrites(socket) || endingWrites(writer) || !resetIfTcp(socket)) {
    // Destroying the TLS socket closes the TCP socket under it as well.
    writer.destroy();
  }
}

/** True while end() has been called but the FIN is not yet handed to the kernel. */
function endingWrites(s: Socket): boolean {
  return s.writableEnded && !s.writableFinished;
}

/** Resets a TCP socket; false (nothing done) for a socket type without resets. */
function resetIfTcp(socket: Socket): boolean {
  // After an abort, errors on this socket say nothing new; an unheard one would end the process.
  socket.on('error', ignore);
  try {
    socket.resetAndDestroy();
    return true;
  } catch {
    return false;
  }
}

function ignore(): void {}
