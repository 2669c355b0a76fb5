/**
 * Builds and signs X.509 v3 certificates: one function, three profiles (CA,
 * leaf, self-signed host), any key type keys.ts makes. node-forge builds
 * every byte of ASN.1 (names, validity, extensions, the certificate); Node's
 * native crypto signs the TBSCertificate, because forge signs with RSA only
 * and has no ECDSA. SHA-256 (or pure Ed25519), UTF8String CN, key
 * identifiers on every certificate.
 */
import { createHash, sign, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { VmgateError } from '../errors.js';
import { ipToBytes } from './names.js';

export type ExtKeyUsage = 'serverAuth' | 'clientAuth';

export interface IssuerRef {
  /** The issuer's subject Name, DER, exactly as in the CA certificate (so chains match byte for byte). */
  nameDer: Buffer;
  /** Hex of the issuer's subjectKeyIdentifier. */
  keyId: string;
  key: KeyObject;
}

export type Profile =
  | { kind: 'ca'; pathLen: number }
  | { kind: 'leaf'; extKeyUsage: readonly ExtKeyUsage[]; dns: readonly string[]; ips: readonly string[] }
  /** What `openssl req -x509` makes: CA:TRUE, names in SANs, trusted by nobody else. */
  | { kind: 'self-signed-host'; dns: readonly string[]; ips: readonly string[] };

export interface CertSpec {
  serial: string;
  commonName: string;
  publicKey: KeyObject;
  /** Omitted: self-signed with `selfKey`. */
  issuer?: IssuerRef;
  selfKey?: KeyObject;
  notBefore: Date;
  notAfter: Date;
  profile: Profile;
}

const UTF8 = forge.asn1.Type.UTF8 as unknown as forge.asn1.Class;

function subjectAttributes(commonName: string): forge.pki.CertificateField[] {
  return [{ name: 'commonName', value: commonName, valueTagClass: UTF8 }];
}

function altNames(dns: readonly string[], ips: readonly string[]): object[] {
  return [
    ...dns.map((value) => ({ type: 2, value })),
    ...ips.map((ip) => ({ type: 7, value: ipToBytes(ip).toString('binary') })),
  ];
}

function extensions(spec: CertSpec, skiHex: string, akiHex: string): object[] {
  const keyIds = [
    // Given as a value: forge would otherwise derive it from an RSA key of its own.
    { name: 'subjectKeyIdentifier', value: forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.OCTETSTRING, false, forge.util.hexToBytes(skiHex)) },
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
        // keyEncipherment is an RSA usage (RFC 5480 forbids it for EC keys; GnuTLS checks).
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: spec.publicKey.asymmetricKeyType === 'rsa', critical: true },
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

const { asn1 } = forge;
const node = (type: number, value: string | forge.asn1.Asn1[]): forge.asn1.Asn1 =>
  asn1.create(asn1.Class.UNIVERSAL, type, Array.isArray(value), value);
// Bit strings stay bytes: a key or signature is not to be read as nested ASN.1.
const fromDer = (der: Buffer): forge.asn1.Asn1 =>
  (asn1.fromDer as unknown as (b: forge.util.ByteStringBuffer, o: object) => forge.asn1.Asn1)(forge.util.createBuffer(der.toString('binary')), { decodeBitStrings: false });
const toDer = (n: forge.asn1.Asn1): Buffer => Buffer.from(asn1.toDer(n).getBytes(), 'binary');

/** The signature algorithm a key signs with: its AlgorithmIdentifier and the digest Node's sign() takes. */
function signatureAlgorithm(key: KeyObject): { id: forge.asn1.Asn1; digest: string | null } {
  const oid = (o: string): forge.asn1.Asn1 => node(asn1.Type.OID, asn1.oidToDer(o).getBytes());
  switch (key.asymmetricKeyType) {
    case 'rsa': return { id: node(asn1.Type.SEQUENCE, [oid('1.2.840.113549.1.1.11'), node(asn1.Type.NULL, '')]), digest: 'sha256' }; // sha256WithRSAEncryption
    case 'ec': return { id: node(asn1.Type.SEQUENCE, [oid('1.2.840.10045.4.3.2')]), digest: 'sha256' }; // ecdsa-with-SHA256, no parameters
    case 'ed25519': return { id: node(asn1.Type.SEQUENCE, [oid('1.3.101.112')]), digest: null }; // Ed25519 signs the message itself
    default: throw new VmgateError('internal', `cannot sign with a ${key.asymmetricKeyType ?? 'unknown'} key`);
  }
}

/** RFC 5280 method 1: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(publicKey: KeyObject): string {
  const spki = fromDer(publicKey.export({ type: 'spki', format: 'der' }));
  const bits = (spki.value as forge.asn1.Asn1[])[1]?.value;
  if (typeof bits !== 'string') throw new VmgateError('internal', 'subjectPublicKeyInfo without a key');
  return createHash('sha1').update(Buffer.from(bits.slice(1), 'binary')).digest('hex'); // skip the unused-bits octet
}

function time(d: Date): forge.asn1.Asn1 {
  // RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
  return d.getUTCFullYear() < 2050 ? node(asn1.Type.UTCTIME, asn1.dateToUtcTime(d)) : node(asn1.Type.GENERALIZEDTIME, asn1.dateToGeneralizedTime(d));
}

type ForgeAsn1Helpers = {
  distinguishedNameToAsn1(dn: { attributes: forge.pki.CertificateField[] }): forge.asn1.Asn1;
  certificateExtensionsToAsn1(exts: unknown[]): forge.asn1.Asn1;
};

/** Returns the signed certificate as PEM. */
export function buildCertificate(spec: CertSpec): string {
  const signer = spec.issuer?.key ?? spec.selfKey;
  if (signer === undefined) throw new VmgateError('internal', 'buildCertificate: no signing key');
  const pki = forge.pki as unknown as ForgeAsn1Helpers;
  // forge's certificate object fills in names' and extensions' OIDs and values; the TBSCertificate
  // is assembled here because forge's own only knows RSA subject keys.
  const draft = forge.pki.createCertificate();
  draft.setSubject(subjectAttributes(spec.commonName));
  const ski = keyIdentifier(spec.publicKey);
  draft.setExtensions(extensions(spec, ski, spec.issuer?.keyId ?? ski));
  const subject = pki.distinguishedNameToAsn1(draft.subject);
  const alg = signatureAlgorithm(signer);
  const tbs = node(asn1.Type.SEQUENCE, [
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [node(asn1.Type.INTEGER, asn1.integerToDer(2).getBytes())]), // v3
    node(asn1.Type.INTEGER, forge.util.hexToBytes(spec.serial)),
    alg.id,
    spec.issuer !== undefined ? fromDer(spec.issuer.nameDer) : subject,
    node(asn1.Type.SEQUENCE, [time(spec.notBefore), time(spec.notAfter)]),
    subject,
    fromDer(spec.publicKey.export({ type: 'spki', format: 'der' })),
    pki.certificateExtensionsToAsn1(draft.extensions as unknown[]),
  ]);
  const signature = sign(alg.digest, toDer(tbs), signer);
  const cert = node(asn1.Type.SEQUENCE, [tbs, signatureAlgorithm(signer).id, node(asn1.Type.BITSTRING, `\0${signature.toString('binary')}`)]);
  return forge.pem.encode({ type: 'CERTIFICATE', body: asn1.toDer(cert).getBytes() });
}
