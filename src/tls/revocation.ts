import { VmgateError, messageOf } from '../errors.js';
import { normalizeSerial } from '../pki/serial.js';
import { x509 } from '../pki/x509-lib.js';

/**
 * The CRL as our own code reads it, parsed once per identity load (start and
 * reload), never per connection. OpenSSL holds its own copy in the secure
 * context for full handshakes; this one is for the checks OpenSSL does not
 * run again on a resumed TLS session (checkResumedPeer in src/policy/peer-policy.ts).
 */
export interface Revocation {
  /** Revoked serials, lower-case hex without leading zeros (normalizeSerial). */
  serials: ReadonlySet<string>;
  /** The earliest nextUpdate of the CRLs in the file: after it, the CRL is stale. */
  nextUpdate: Date | undefined;
}

const PEM_CRL = /-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g;

export function parseRevocation(pem: Buffer, file: string): Revocation {
  const blocks = pem.toString('utf8').match(PEM_CRL) ?? [];
  if (blocks.length === 0) throw new VmgateError('identity-invalid', `CRL ${file} holds no PEM CRL ("BEGIN X509 CRL"); publish it with certs/vmgate-pki publish-crl`);
  const serials = new Set<string>();
  let nextUpdate: Date | undefined;
  for (const block of blocks) {
    let crl: x509.X509Crl;
    try {
      crl = new x509.X509Crl(block);
    } catch (e: unknown) {
      throw new VmgateError('identity-invalid', `CRL ${file} cannot be parsed: ${messageOf(e)}`, { cause: e });
    }
    for (const entry of crl.entries) serials.add(normalizeSerial(entry.serialNumber));
    if (crl.nextUpdate !== undefined && (nextUpdate === undefined || crl.nextUpdate < nextUpdate)) nextUpdate = crl.nextUpdate;
  }
  return { serials, nextUpdate };
}

/** Is the certificate with this serial (any hex form) revoked? */
export function isRevoked(r: Revocation, serial: string): boolean {
  return r.serials.has(normalizeSerial(serial));
}
