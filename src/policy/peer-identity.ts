import type { PeerCertificate, TLSSocket } from 'node:tls';

/** Who is on the other end, as far as its verified certificate says. */
export interface PeerIdentity {
  /** Subject CN, for log lines. */
  commonName: string;
  /** DNS SANs and the CN: what allow rules' `peer` is matched against. */
  names: string[];
  serial: string;
  fingerprint256: string;
}

export function peerIdentity(socket: TLSSocket): PeerIdentity | undefined {
  const cert: PeerCertificate = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return undefined;
  const cn = typeof cert.subject?.CN === 'string' ? cert.subject.CN : '';
  const dns = (cert.subjectaltname ?? '')
    .split(', ')
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4));
  const names = [...new Set([...dns, ...(cn ? [cn] : [])])];
  return { commonName: cn || dns[0] || '(no name)', names, serial: cert.serialNumber, fingerprint256: cert.fingerprint256 };
}
