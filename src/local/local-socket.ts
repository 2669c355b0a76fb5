import { chmod, chown, lstat, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { formatEndpoint, type LocalEndpoint } from '../config/endpoint.js';
import { VmgateError, messageOf, systemCode } from '../errors.js';
import { RELAY_HIGH_WATER_MARK } from '../relay/buffer-sizes.js';

/** Connects to a local QEMU (target) endpoint. Never used to probe: a connection IS a migration stream. */
export function connectLocal(endpoint: LocalEndpoint, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    // net.Socket hands its options to stream.Duplex, which takes highWaterMark; @types/node 20 does not list it.
    const tuning = { allowHalfOpen: true, highWaterMark: RELAY_HIGH_WATER_MARK };
    const socket = endpoint.kind === 'tcp'
      ? createConnection({ host: endpoint.host, port: endpoint.port, ...tuning })
      : createConnection({ path: endpoint.path, ...tuning });
    socket.pause();
    const timer = setTimeout(() => fail(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
    const fail = (e: unknown): void => {
      clearTimeout(timer);
      socket.destroy();
      const code = systemCode(e);
      const hint = code === 'ECONNREFUSED' || code === 'ENOENT' ? ' (is the destination QEMU running with -incoming on it?)' : '';
      reject(new VmgateError('target-refused', `target ${formatEndpoint(endpoint)}: ${messageOf(e)}${hint}`, { cause: e }));
    };
    socket.once('error', fail);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', fail);
      resolve(socket);
    });
  });
}

/**
 * Listens on a local endpoint for QEMU. Connections arrive paused: nothing is
 * read from QEMU until the channel to the peer is open. A stale unix socket
 * file from a previous run is replaced; any other file in the way is an error.
 *
 * A unix socket is mode 0600 (only the gateway's user may connect), or 0660
 * owned by group `gid` (the group QEMU runs in): that file permission is what
 * makes a unix socket safer than loopback TCP, which every local process can
 * reach.
 */
export async function listenLocal(endpoint: LocalEndpoint, onConnection: (s: Socket) => void, gid?: number): Promise<Server> {
  if (endpoint.kind === 'unix') await removeStaleSocket(endpoint.path);
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true, highWaterMark: RELAY_HIGH_WATER_MARK }, onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) =>
      reject(new VmgateError('listen-failed', `cannot listen on ${formatEndpoint(endpoint)}: ${messageOf(e)}`, { cause: e, detail: { address: formatEndpoint(endpoint) } })),
    );
    if (endpoint.kind === 'tcp') server.listen(endpoint.port, endpoint.host, resolve);
    else server.listen(endpoint.path, resolve);
  });
  if (endpoint.kind === 'unix') {
    try {
      await chmod(endpoint.path, gid === undefined ? 0o600 : 0o660);
      if (gid !== undefined) await chown(endpoint.path, process.getuid?.() ?? 0, gid);
    } catch (e: unknown) {
      server.close();
      throw new VmgateError('listen-failed', `cannot set the permissions of unix:${endpoint.path}: ${messageOf(e)}`, { cause: e, detail: { address: formatEndpoint(endpoint) } });
    }
  }
  return server;
}

async function removeStaleSocket(path: string): Promise<void> {
  try {
    const st = await lstat(path);
    if (!st.isSocket()) {
      throw new VmgateError('listen-failed', `cannot listen on unix:${path}: a file that is not a socket is in the way; move it or pick another path`, { detail: { address: `unix:${path}` } });
    }
    await unlink(path);
  } catch (e: unknown) {
    if (systemCode(e) !== 'ENOENT') throw e;
  }
}
