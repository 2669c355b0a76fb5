/**
 * Signing the CA's CRL from its index with @peculiar/x509 (node-forge has no
 * CRL support): SHA-256, thisUpdate/nextUpdate, CRL number, authority key id,
 * one entry per revoked serial with its reason.
 */
import type { KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { VmgateError } from '../errors.js';
import type { IssuerRef } from './cert-builder.js';
import type { CaIndex } from './ca-index.js';
import { writeFileAtomic } from './files.js';
import { PUBLIC_MODE } from './layout.js';
import { BACKDATE_MS, DAY_MS, checkDays } from './validity.js';
import { webcrypto, x509 } from './x509-lib.js';

const CRL_NUMBER_OID = '2.5.29.20';

export const REVOCATION_REASONS = [
  'unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded',
  'cessationOfOperation', 'certificateHold', 'privilegeWithdrawn', 'aACompromise',
] as const;
export type RevocationReason = (typeof REVOCATION_REASONS)[number];

/** Accepts the RFC 5280 names in any case, with or without hyphens (`key-compromise`). */
export function parseReason(input: string): RevocationReason {
  const squash = (s: string): string => s.toLowerCase().replace(/[-_\s]/g, '');
  const found = REVOCATION_REASONS.find((r) => squash(r) === squash(input));
  if (found === undefined) {
    throw new VmgateError('pki-bad-input', `revocation reason ${JSON.stringify(input)} is not one of ${REVOCATION_REASONS.join(', ')}`);
  }
  return found;
}

function crlNumberExtension(n: number): x509.Extension {
  const der = forge.asn1.toDer(forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.INTEGER, false, forge.asn1.integerToDer(n).getBytes()));
  return new x509.Extension(CRL_NUMBER_OID, false, Buffer.from(der.getBytes(), 'binary'));
}

/** Reads the CRL number extension back (for inspection and tests). */
export function crlNumberOf(crl: x509.X509Crl): number | undefined {
  const ext = crl.getExtension(CRL_NUMBER_OID);
  if (ext === null) return undefined;
  const node = forge.asn1.fromDer(forge.util.createBuffer(Buffer.from(ext.value).toString('binary')));
  return typeof node.value === 'string' ? forge.asn1.derToInteger(node.value) : undefined;
}

/** The WebCrypto algorithm for the CA key, as both importKey and the CRL signature take it. */
function webCryptoAlgorithm(key: KeyObject): { name: string; hash?: string; namedCurve?: string } {
  switch (key.asymmetricKeyType) {
    case 'rsa': return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    case 'ec': return { name: 'ECDSA', namedCurve: key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'P-384' : 'P-256', hash: 'SHA-256' };
    case 'ed25519': return { name: 'Ed25519' };
    default: throw new VmgateError('internal', `cannot sign a CRL with a ${key.asymmetricKeyType ?? 'unknown'} key`);
  }
}

/**
 * What signing a CRL needs of a CA: ca.ts's `LoadedCa` has all of it. Named
 * here rather than imported so that ca.ts (which writes the first CRL) and
 * this file do not import each other.
 */
export interface CrlSigner {
  paths: { crl: string };
  certPem: string;
  key: KeyObject;
  issuer: Pick<IssuerRef, 'keyId'>;
}

/** Signs a CRL for `index` (incrementing its CRL number) and writes the CA's ca-crl.pem. The caller writes the index. */
export async function writeCrl(ca: CrlSigner, index: CaIndex, days: number, now: Date): Promise<{ crlPath: string; crlNumber: number; nextUpdate: Date }> {
  const lifetime = checkDays(days, 30, 'CRL lifetime');
  const crlNumber = index.crlNumber + 1;
  const nextUpdate = new Date(now.getTime() + lifetime * DAY_MS);
  const der = ca.key.export({ type: 'pkcs8', format: 'der' });
  const algorithm = webCryptoAlgorithm(ca.key);
  const signingKey = await webcrypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign']);
  const crl = await x509.X509CrlGenerator.create({
    issuer: new x509.X509Certificate(ca.certPem).subjectName,
    thisUpdate: new Date(now.getTime() - BACKDATE_MS),
    nextUpdate,
    signingAlgorithm: algorithm,
    signingKey,
    extensions: [new x509.AuthorityKeyIdentifierExtension(ca.issuer.keyId), crlNumberExtension(crlNumber)],
    entries: index.issued
      .filter((e) => e.revokedAt !== undefined)
      .map((e) => ({
        serialNumber: e.serial,
        revocationDate: new Date(e.revokedAt ?? now),
        ...(e.reason !== undefined && e.reason !== 'unspecified' ? { reason: x509.X509CrlReason[parseReason(e.reason)] } : {}),
      })),
  });
  // The PEM label must be "X509 CRL" (RFC 7468): OpenSSL and GnuTLS ignore anything else.
  await writeFileAtomic(ca.paths.crl, x509.PemConverter.encode(crl.rawData, 'X509 CRL') + '\n', PUBLIC_MODE);
  index.crlNumber = crlNumber;
  return { crlPath: ca.paths.crl, crlNumber, nextUpdate };
}
