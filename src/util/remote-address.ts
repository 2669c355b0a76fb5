import { formatHostPort } from '../config/endpoint.js';

/**
 * The other end of a TCP connection as every log line names it (field
 * `remote`): `HOST:PORT`, an IPv6 host in brackets; the route side logs its
 * configured peer address the same way. Just the address when the port is
 * gone (the socket already closed), `unknown` when both are.
 */
export function remoteOf(s: { readonly remoteAddress?: string | undefined; readonly remotePort?: number | undefined }): string {
  if (s.remoteAddress === undefined) return 'unknown';
  return s.remotePort === undefined ? s.remoteAddress : formatHostPort({ host: s.remoteAddress, port: s.remotePort });
}
