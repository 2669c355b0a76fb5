import { isIP } from 'node:net';
import { isAbsolute, resolve } from 'node:path';

/**
 * Where a local QEMU-facing socket lives: a loopback TCP port or a unix socket.
 * Spelled `tcp:HOST:PORT` or `unix:/path` in the config, like QEMU's own URIs.
 */
export type LocalEndpoint =
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'unix'; path: string };

/**
 * A range of loopback TCP ports, `tcp:HOST:FIRST-LAST`: a route that listens
 * on every port of it (one migration per port, as libvirt picks a port per
 * migration from its migration_port_min..max), or a target whose QEMUs
 * listen on those ports. Port P of a route's range goes to port P of the
 * target's range.
 */
export interface PortRange {
  kind: 'tcp-range';
  host: string;
  first: number;
  last: number;
}

/** What a route listens on or a target connects to: one endpoint, or a range of ports. */
export type LocalPorts = LocalEndpoint | PortRange;

/** The most ports one range may span: libvirt's default migration range is 64. */
const MAX_PORT_RANGE = 256;
/** Ports below this need privileges no migration endpoint should have. */
const FIRST_UNPRIVILEGED_PORT = 1024;

/** A peer gateway's TLS address, `HOST:PORT` or `[V6]:PORT`. */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses `HOST:PORT` / `[V6]:PORT`; on failure returns what was expected, as
 * words that complete "it must be ...".
 * Port 0 ("any free port") only makes sense for a listener.
 */
export function parseHostPort(text: string, listener = false): HostPort | string {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  if (!m) return 'HOST:PORT (or [IPv6]:PORT)';
  const host = (m[1] ?? m[2]) as string;
  const port = Number(m[3]);
  if (port > 65535 || (port === 0 && !listener)) return listener ? 'HOST:PORT with a port from 0 to 65535' : 'HOST:PORT with a port from 1 to 65535';
  if (m[1] !== undefined && isIP(host) !== 6) return '[IPv6]:PORT with an IPv6 address inside the brackets';
  return { host, port };
}

/** Like parseLocalEndpoint, and also `tcp:HOST:FIRST-LAST`; on failure, words that complete "it must be ...". */
export function parseLocalPorts(text: string, baseDir: string, listener = false): LocalPorts | string {
  const m = /^tcp:(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})-(\d{1,5})$/.exec(text);
  if (!m) return parseLocalEndpoint(text, baseDir, listener);
  const host = (m[1] ?? m[2]) as string;
  const first = Number(m[3]);
  const last = Number(m[4]);
  if (m[1] !== undefined && isIP(host) !== 6) return 'tcp:[IPv6]:FIRST-LAST with an IPv6 address inside the brackets';
  if (first > 65535 || last > 65535) return 'tcp:HOST:FIRST-LAST with ports up to 65535';
  if (first > last) return `a range with the lower port first (${last}-${first}, not ${first}-${last})`;
  if (first < FIRST_UNPRIVILEGED_PORT) return `a range of unprivileged ports (${FIRST_UNPRIVILEGED_PORT} or above), which is all a migration needs`;
  if (last - first + 1 > MAX_PORT_RANGE) return `a range of at most ${MAX_PORT_RANGE} ports, not ${last - first + 1} (libvirt's default migration range is 64)`;
  return { kind: 'tcp-range', host, first, last };
}

/** Every single endpoint of `e`: itself, or one per port of a range. */
export function endpointsOf(e: LocalPorts): LocalEndpoint[] {
  if (e.kind !== 'tcp-range') return [e];
  const out: LocalEndpoint[] = [];
  for (let port = e.first; port <= e.last; port += 1) out.push({ kind: 'tcp', host: e.host, port });
  return out;
}

function parseLocalEndpoint(text: string, baseDir: string, listener = false): LocalEndpoint | string {
  if (text.startsWith('unix:')) {
    const path = text.slice(5);
    if (path.length === 0) return 'unix:/path with a socket path after "unix:"';
    return { kind: 'unix', path: isAbsolute(path) ? path : resolve(baseDir, path) };
  }
  if (text.startsWith('tcp:')) {
    const hp = parseHostPort(text.slice(4), listener);
    return typeof hp === 'string' ? hp : { kind: 'tcp', ...hp };
  }
  return 'tcp:HOST:PORT or unix:/path';
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

export function formatEndpoint(e: LocalPorts): string {
  if (e.kind === 'tcp-range') return `tcp:${formatHostPort({ host: e.host, port: e.first })}-${e.last}`;
  return e.kind === 'unix' ? `unix:${e.path}` : `tcp:${formatHostPort(e)}`;
}

export function formatHostPort(hp: HostPort): string {
  return isIP(hp.host) === 6 ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}
