/**
 * Builds and signs X.509 v3 certificates with node-forge: one function, three
 * profiles (CA, leaf, self-signed host). SHA-256 signatures, UTF8String CN,
 * key identifiers on every certificate. All ASN.1 is produced by forge.
 */
import forge from 'node-forge';
import { VmgateError } from '../errors.js';
import { ipToBytes } from './names.js';

export type ExtKeyUsage = 'serverAuth' | 'clientAuth';

export interface IssuerRef {
  /** The issuer's subject, as forge parsed it from the CA certificate. */
  attributes: forge.pki.CertificateField[];
  /** Hex of the issuer's subjectKeyIdentifier. */
  keyId: string;
  key: forge.pki.rsa.PrivateKey;
}

export type Profile =
  | { kind: 'ca'; pathLen: number }
  | { kind: 'leaf'; extKeyUsage: readonly ExtKeyUsage[]; dns: readonly string[]; ips: readonly string[] }
  /** What `openssl req -x509` makes: CA:TRUE, names in SANs, trusted by nobody else. */
  | { kind: 'self-signed-host'; dns: readonly string[]; ips: readonly string[] };

export interface CertSpec {
  serial: string;
  commonName: string;
  publicKey: forge.pki.rsa.PublicKey;
  /** Omitted: self-signed with `selfKey`. */
  issuer?: IssuerRef;
  selfKey?: forge.pki.rsa.PrivateKey;
  notBefore: Date;
  notAfter: Date;
  profile: Profile;
}

const UTF8 = forge.asn1.Type.UTF8 as unknown as forge.asn1.Class;

function subjectAttributes(commonName: string): forge.pki.CertificateField[] {
  return [{ name: 'commonName', value: commonName, valueTagClass: UTF8 }];
}

/**
 * forge keeps parsed attribute values as raw bytes; re-encoding a UTF8String
 * would encode it twice, so decode those first.
 */
function reusableAttributes(attrs: readonly forge.pki.CertificateField[]): forge.pki.CertificateField[] {
  return attrs.map((a) => {
    const copy: forge.pki.CertificateField = { ...a };
    if ((a.valueTagClass as unknown) === forge.asn1.Type.UTF8 && typeof a.value === 'string') copy.value = forge.util.decodeUtf8(a.value);
    return copy;
  });
}

function altNames(dns: readonly string[], ips: readonly string[]): object[] {
  return [
    ...dns.map((value) => ({ type: 2, value })),
    ...ips.map((ip) => ({ type: 7, value: ipToBytes(ip).toString('binary') })),
  ];
}

function extensions(spec: CertSpec, skiHex: string, akiHex: string): object[] {
  const keyIds = [
    { name: 'subjectKeyIdentifier', subjectKeyIdentifier: skiHex },
    { name: 'authorityKeyIdentifier', keyIdentifier: forge.util.hexToBytes(akiHex) },
  ];
  const p = spec.profile;
  switch (p.kind) {
    case 'ca':
      return [
        { name: 'basicConstraints', cA: true, pathLenConstraint: p.pathLen, critical: true },
        { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
        ...keyIds,
      ];
    case 'leaf': {
      const san = altNames(p.dns, p.ips);
      return [
        { name: 'basicConstraints', cA: false, critical: true },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', serverAuth: p.extKeyUsage.includes('serverAuth'), clientAuth: p.extKeyUsage.includes('clientAuth') },
        ...(san.length > 0 ? [{ name: 'subjectAltName', altNames: san }] : []),
        ...keyIds,
      ];
    }
    case 'self-signed-host':
      return [
        { name: 'basicConstraints', cA: true, critical: true },
        { name: 'subjectAltName', altNames: altNames(p.dns, p.ips) },
        ...keyIds,
      ];
  }
}

/** Returns the signed certificate as PEM. */
export function buildCertificate(spec: CertSpec): string {
  const cert = forge.pki.createCertificate();
  cert.serialNumber = spec.serial;
  cert.publicKey = spec.publicKey;
  cert.validity.notBefore = spec.notBefore;
  cert.validity.notAfter = spec.notAfter;
  const subject = subjectAttributes(spec.commonName);
  cert.setSubject(subject);
  cert.setIssuer(spec.issuer !== undefined ? reusableAttributes(spec.issuer.attributes) : subject);
  const ski = cert.generateSubjectKeyIdentifier().toHex();
  cert.setExtensions(extensions(spec, ski, spec.issuer?.keyId ?? ski));
  const signer = spec.issuer?.key ?? spec.selfKey;
  if (signer === undefined) throw new VmgateError('internal', 'buildCertificate: no signing key');
  cert.sign(signer, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}
