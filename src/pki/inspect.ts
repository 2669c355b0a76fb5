/**
 * Reading certificates for people and checks, any key type: the fields with
 * @peculiar/x509, signature checks and the fingerprint with Node's
 * X509Certificate (OpenSSL, as TLS checks them); docs/architecture.md, "X.509:
 * one library per job". Never modifies anything.
 */
import { X509Certificate } from 'node:crypto';
import { VmgateError, messageOf } from '../errors.js';
import { readTextSync } from './files.js';
import { checkIp } from './names.js';
import { daysLeft } from './validity.js';
import { x509 } from './x509-lib.js';

export interface CertificateSummary {
  subject: string;
  commonName: string | undefined;
  issuer: string;
  /** Lower-case hex, no separators. */
  serial: string;
  dns: string[];
  ips: string[];
  keyUsage: string[];
  extKeyUsage: string[];
  notBefore: Date;
  notAfter: Date;
  /** Whole days until notAfter (negative once expired). */
  daysLeft: number;
  /** Upper-case hex pairs joined by colons, as `openssl x509 -fingerprint -sha256` prints. */
  fingerprintSha256: string;
  isCa: boolean;
  selfSigned: boolean;
  publicKey: string;
  signatureAlgorithm: string;
}

const KEY_USAGE_BITS: Array<[number, string]> = [
  [x509.KeyUsageFlags.digitalSignature, 'digitalSignature'],
  [x509.KeyUsageFlags.nonRepudiation, 'nonRepudiation'],
  [x509.KeyUsageFlags.keyEncipherment, 'keyEncipherment'],
  [x509.KeyUsageFlags.dataEncipherment, 'dataEncipherment'],
  [x509.KeyUsageFlags.keyAgreement, 'keyAgreement'],
  [x509.KeyUsageFlags.keyCertSign, 'keyCertSign'],
  [x509.KeyUsageFlags.cRLSign, 'cRLSign'],
  [x509.KeyUsageFlags.encipherOnly, 'encipherOnly'],
  [x509.KeyUsageFlags.decipherOnly, 'decipherOnly'],
];

const EKU_NAMES: Record<string, string> = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
  '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
  '2.5.29.37.0': 'anyExtendedKeyUsage',
};

function isPem(text: string): boolean {
  return text.includes('-----BEGIN');
}

/** Parses the first certificate of a PEM text; `where` names it in errors. */
export function parseCertificatePem(pem: string, where: string): { cert: x509.X509Certificate; node: X509Certificate } {
  try {
    return { cert: new x509.X509Certificate(pem), node: new X509Certificate(pem) };
  } catch (e: unknown) {
    throw new VmgateError('pki-unreadable', `${where} is not a PEM certificate: ${messageOf(e)}`, { cause: e });
  }
}

export function summarize(cert: x509.X509Certificate, node: X509Certificate, now: Date = new Date()): CertificateSummary {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const names = san?.names.items ?? [];
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  const key = node.publicKey;
  const bits = key.asymmetricKeyDetails?.modulusLength;
  const sig = cert.signatureAlgorithm as { name?: string; hash?: { name?: string } };
  return {
    subject: cert.subject,
    commonName: cert.subjectName.getField('CN')[0],
    issuer: cert.issuer,
    serial: cert.serialNumber.toLowerCase(),
    dns: names.filter((n) => n.type === 'dns').map((n) => n.value),
    ips: names.filter((n) => n.type === 'ip').map((n) => safeIp(n.value)),
    keyUsage: ku === null ? [] : KEY_USAGE_BITS.filter(([bit]) => (ku.usages & bit) !== 0).map(([, name]) => name),
    extKeyUsage: eku === null ? [] : Array.from(eku.usages, (u) => EKU_NAMES[String(u)] ?? String(u)),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    daysLeft: daysLeft(cert.notAfter, now),
    fingerprintSha256: node.fingerprint256,
    isCa: bc?.ca ?? false,
    selfSigned: node.checkIssued(node) && node.verify(node.publicKey),
    publicKey: `${(key.asymmetricKeyType ?? 'unknown').toUpperCase()}${bits !== undefined ? ` ${bits}` : ''}`,
    signatureAlgorithm: [sig.hash?.name, sig.name].filter((s) => s !== undefined).join(' with '),
  };
}

function safeIp(value: string): string {
  try {
    return checkIp(value);
  } catch {
    return value;
  }
}

/** `pemOrPath`: PEM text, or the path of a PEM file. */
export function inspectCertificate(pemOrPath: string, now: Date = new Date()): CertificateSummary {
  const pem = isPem(pemOrPath) ? pemOrPath : readTextSync(pemOrPath, 'certificate');
  const where = isPem(pemOrPath) ? 'the given text' : pemOrPath;
  const { cert, node } = parseCertificatePem(pem, where);
  return summarize(cert, node, now);
}
