import type { PeerCertificate } from 'node:tls';
import { VmgateError } from '../errors.js';
import type { Identity } from '../tls/identity.js';
import { isRevoked } from '../tls/revocation.js';

/**
 * On a resumed TLS 1.3 session no certificate is sent and OpenSSL verifies
 * nothing again: the peer proves it holds the secret of an earlier full
 * handshake, and the verdict of that handshake (chain, CA, CRL, usage) is
 * carried over. That verdict is still right because a reload drops every
 * ticket on both sides (the server draws new ticket keys, the client forgets
 * its tickets), so CA and CRL cannot have changed since. What can change is
 * the time: this checks the certificate of the earlier handshake against the
 * clock and, as a second line, against the CRL currently loaded.
 */
export function checkResumedPeer(cert: PeerCertificate, id: Pick<Identity, 'revocation' | 'files'>, now = Date.now()): VmgateError | undefined {
  const who = cert.subject?.CN ?? cert.serialNumber;
  if (Date.parse(cert.valid_to) <= now) {
    return new VmgateError('tls-cert-expired', `the peer certificate ${who} of this resumed TLS session expired on ${cert.valid_to}`);
  }
  if (Date.parse(cert.valid_from) > now) {
    return new VmgateError('tls-cert-expired', `the peer certificate ${who} of this resumed TLS session is not valid before ${cert.valid_from} (check both clocks)`);
  }
  if (id.revocation !== undefined) {
    if (isRevoked(id.revocation, cert.serialNumber)) {
      return new VmgateError('tls-cert-revoked', `the peer certificate ${who} of this resumed TLS session is revoked by our CRL`);
    }
    const next = id.revocation.nextUpdate;
    if (next !== undefined && next.getTime() <= now) {
      return new VmgateError('tls-verify-failed', `our CRL ${id.files.crl ?? ''} has expired (${next.toISOString()}); publish a fresh one (certs/vmgate-pki publish-crl)`);
    }
  }
  return undefined;
}
