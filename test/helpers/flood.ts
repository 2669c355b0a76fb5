/**
 * A connection flood against a gateway's TLS port, from chosen loopback
 * source addresses (127.0.0.2, ...: every 127/8 address is local on Linux, so
 * each plays a different remote host). Per address it keeps `idle` plain TCP
 * connections that never speak, and `tls` connections that finish a TLS
 * handshake with a real client certificate and then say nothing; each one is
 * reopened shortly after the gateway drops it, until `stop()`.
 *
 *   const flood = startFlood({ port, addresses: ['127.0.0.2'], idle: 12, tls: 12, certDir: pki.hostA });
 *   flood.held('127.0.0.2');   // connections the gateway has kept for more than HELD_MS
 *   await flood.stop();
 */
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { ALPN_PROTOCOL } from '../../src/tls/identity.js';

/** A connection still open after this long was accepted by the gateway (a refused one is closed at once). */
const HELD_MS = 400;
const REOPEN_DELAY_MS = 100;

export interface FloodOptions {
  port: number;
  addresses: readonly string[];
  /** Plain TCP connections per address that send nothing. */
  idle: number;
  /** TLS connections per address (client certificate from `certDir`) that stop after the handshake. */
  tls: number;
  certDir?: string;
}

export interface Flood {
  /** Connections from `address` open for longer than HELD_MS right now. */
  held(address: string): number;
  /** Connections opened so far (all addresses). */
  readonly opened: number;
  stop(): Promise<void>;
}

export function startFlood(o: FloodOptions): Flood {
  const open = new Map<Socket, { address: string; since: number }>();
  const identity = o.certDir === undefined ? {} : { cert: readFileSync(join(o.certDir, 'client-cert.pem')), key: readFileSync(join(o.certDir, 'client-key.pem')) };
  let stopped = false;
  let opened = 0;

  const keep = (address: string, kind: 'idle' | 'tls'): void => {
    if (stopped) return;
    opened += 1;
    const raw = netConnect({ host: '127.0.0.1', port: o.port, localAddress: address });
    const socket: Socket = kind === 'idle'
      ? raw
      : tlsConnect({ socket: raw, servername: 'host-b', ALPNProtocols: [ALPN_PROTOCOL], rejectUnauthorized: false, ...identity });
    open.set(socket, { address, since: Date.now() });
    socket.on('error', () => undefined);
    raw.on('error', () => undefined);
    let closed = false;
    const onClose = (): void => {
      if (closed) return;
      closed = true;
      open.delete(socket);
      socket.destroy();
      raw.destroy();
      setTimeout(() => keep(address, kind), REOPEN_DELAY_MS).unref();
    };
    // Read (and drop) what the gateway sends, or its close would never be seen.
    socket.resume();
    // The TCP socket closes first when the gateway drops a connection before TLS.
    socket.once('close', onClose);
    raw.once('close', onClose);
  };

  for (const address of o.addresses) {
    for (let i = 0; i < o.idle; i++) keep(address, 'idle');
    for (let i = 0; i < o.tls; i++) keep(address, 'tls');
  }

  return {
    held(address) {
      const now = Date.now();
      let n = 0;
      for (const c of open.values()) if (c.address === address && now - c.since > HELD_MS) n += 1;
      return n;
    },
    get opened() {
      return opened;
    },
    stop() {
      stopped = true;
      for (const s of [...open.keys()]) s.destroy();
      open.clear();
      return Promise.resolve();
    },
  };
}

/** Resident memory of process `pid` in MiB (VmRSS from /proc). */
export function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

const TCP_ESTABLISHED = '01';
const TCP_CLOSE_WAIT = '08';

/** 127.0.0.5 as /proc/net/tcp writes it: "0500007F" (little-endian hex). */
function procAddress(ip: string): string {
  return ip.split('.').map((b) => Number(b).toString(16).padStart(2, '0').toUpperCase()).reverse().join('');
}

/**
 * Connections the server on loopback `port` still holds from any of `from`
 * (its side ESTABLISHED, or CLOSE_WAIT: the client is gone, the server has not
 * closed yet), read from /proc/net/tcp. A gateway's handshake slot lives as
 * long as its socket, so 0 means every slot those hosts took is free again.
 */
export function heldByServer(port: number, from: readonly string[]): number {
  const local = `0100007F:${port.toString(16).padStart(4, '0').toUpperCase()}`;
  const remotes = new Set(from.map(procAddress));
  let n = 0;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[1] !== local) continue;
    if (f[3] !== TCP_ESTABLISHED && f[3] !== TCP_CLOSE_WAIT) continue;
    if (remotes.has((f[2] ?? '').split(':')[0] ?? '')) n += 1;
  }
  return n;
}
