import { isIP } from 'node:net';
import { isAbsolute, resolve } from 'node:path';

/**
 * Where a local QEMU-facing socket lives: a loopback TCP port or a unix socket.
 * Spelled `tcp:HOST:PORT` or `unix:/path` in the config, like QEMU's own URIs.
 */
export type LocalEndpoint =
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'unix'; path: string };

/** A peer gateway's TLS address, `HOST:PORT` or `[V6]:PORT`. */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses `HOST:PORT` / `[V6]:PORT`; returns an explanation string on failure.
 * Port 0 ("any free port") only makes sense for a listener.
 */
export function parseHostPort(text: string, listener = false): HostPort | string {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  if (!m) return 'expected HOST:PORT (or [IPv6]:PORT)';
  const host = (m[1] ?? m[2]) as string;
  const port = Number(m[3]);
  if (port > 65535 || (port === 0 && !listener)) return listener ? 'port must be 0..65535' : 'port must be 1..65535';
  if (m[1] !== undefined && isIP(host) !== 6) return 'bracketed host must be an IPv6 address';
  return { host, port };
}

export function parseLocalEndpoint(text: string, baseDir: string, listener = false): LocalEndpoint | string {
  if (text.startsWith('unix:')) {
    const path = text.slice(5);
    if (path.length === 0) return 'unix: needs a socket path';
    return { kind: 'unix', path: isAbsolute(path) ? path : resolve(baseDir, path) };
  }
  if (text.startsWith('tcp:')) {
    const hp = parseHostPort(text.slice(4), listener);
    return typeof hp === 'string' ? hp : { kind: 'tcp', ...hp };
  }
  return 'expected tcp:HOST:PORT or unix:/path';
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

export function formatEndpoint(e: LocalEndpoint): string {
  return e.kind === 'unix' ? `unix:${e.path}` : `tcp:${formatHostPort(e)}`;
}

export function formatHostPort(hp: HostPort): string {
  return isIP(hp.host) === 6 ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}
