/**
 * The certificate authority: creating one (key, self-signed certificate,
 * empty index, first CRL) and loading one for signing.
 */
import { X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { VmgateError, messageOf } from '../errors.js';
import { buildCertificate, keyIdentifier, type IssuerRef } from './cert-builder.js';
import { emptyIndex, withCaLock, writeIndex } from './ca-index.js';
import { writeCrl } from './crl-writer.js';
import { assertAbsent, ensureDir, readText, writeFileAtomic } from './files.js';
import { checkKeySpec, decodePrivateKey, encodePrivateKey, generateKey, type KeySpec } from './keys.js';
import { caPaths, DIR_MODE, PUBLIC_MODE, SECRET_MODE, type CaPaths } from './layout.js';
import { checkCommonName } from './names.js';
import { randomSerial } from './serial.js';
import { x509 } from './x509-lib.js';
import { checkDays, period } from './validity.js';

export interface CreateCaOptions {
  dir: string;
  commonName: string;
  /** Default 3650. */
  days?: number;
  /** 'ec' (ECDSA P-256, the default), 'rsa' or 'ed25519'. A `keyBits` alone means 'rsa'. */
  keyType?: string;
  /** RSA only. Default 3072; at least 3072 unless `allowWeakKeyForTests`. */
  keyBits?: number;
  /** Encrypts ca-key.pem (PKCS#8, AES-256-CBC). */
  passphrase?: string;
  force?: boolean;
  notBefore?: Date;
  notAfter?: Date;
  /** Lets test fixtures use 2048-bit keys. */
  allowWeakKeyForTests?: boolean;
  /** Lifetime of the first (empty) CRL; default 30 days. */
  crlDays?: number;
}

export interface CreateCaResult {
  certPath: string;
  keyPath: string;
  crlPath: string;
  serial: string;
  notAfter: Date;
  encrypted: boolean;
  keySpec: KeySpec;
}

export async function createCa(o: CreateCaOptions): Promise<CreateCaResult> {
  const commonName = checkCommonName(o.commonName);
  const days = checkDays(o.days, 3650, 'CA validity');
  const spec = checkKeySpec(o.keyType, o.keyBits, o.allowWeakKeyForTests);
  const now = new Date();
  const validity = period(now, days, o.notBefore, o.notAfter);
  const p = caPaths(o.dir);
  assertAbsent([p.cert, p.key, p.crl, p.index], o.force);
  if (o.passphrase !== undefined && o.passphrase.length === 0) throw new VmgateError('pki-bad-input', 'the CA passphrase is empty');

  const keys = await generateKey(spec);
  const serial = randomSerial();
  const certPem = buildCertificate({
    serial,
    commonName,
    publicKey: keys.publicKey,
    selfKey: keys.privateKey,
    ...validity,
    profile: { kind: 'ca', pathLen: 0 },
  });

  return withCaLock(o.dir, async () => {
    await ensureDir(o.dir);
    if (o.force === true) await rm(p.issuedDir, { recursive: true, force: true });
    await mkdir(p.issuedDir, { recursive: true, mode: DIR_MODE });
    await writeFileAtomic(p.key, encodePrivateKey(keys.privateKey, o.passphrase), SECRET_MODE);
    await writeFileAtomic(p.cert, certPem, PUBLIC_MODE);
    const index = emptyIndex(serial);
    const ca = await loadCa(o.dir, o.passphrase, { requireValid: false });
    await writeCrl(ca, index, o.crlDays ?? 30, now);
    await writeIndex(p.index, index);
    return { certPath: p.cert, keyPath: p.key, crlPath: p.crl, serial, notAfter: validity.notAfter, encrypted: o.passphrase !== undefined, keySpec: spec };
  });
}

/** A CA ready to sign. */
export interface LoadedCa {
  paths: CaPaths;
  certPem: string;
  x509: X509Certificate;
  key: KeyObject;
  issuer: IssuerRef;
}

/** The CA certificate alone (no key): parsed, with its subject name and key identifier. */
export async function loadCaCertificate(caDir: string): Promise<{ paths: CaPaths; certPem: string; x509: X509Certificate; nameDer: Buffer; keyId: string }> {
  const paths = caPaths(caDir);
  const certPem = await readText(paths.cert, 'CA certificate', 'pki-ca-missing');
  let cert: x509.X509Certificate;
  let node: X509Certificate;
  try {
    cert = new x509.X509Certificate(certPem);
    node = new X509Certificate(certPem);
  } catch (e: unknown) {
    throw new VmgateError('pki-unreadable', `${paths.cert} is not a PEM certificate: ${messageOf(e)}`, { cause: e });
  }
  if (!node.ca) throw new VmgateError('pki-unreadable', `${paths.cert} is not a CA certificate (basicConstraints CA:FALSE)`);
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  const keyId = ski?.keyId ?? keyIdentifier(createPublicKey(certPem));
  return { paths, certPem, x509: node, nameDer: Buffer.from(cert.subjectName.toArrayBuffer()), keyId };
}

export function checkCaValid(x509: X509Certificate, path: string, now: Date): void {
  const from = new Date(x509.validFrom);
  const to = new Date(x509.validTo);
  if (now < from) throw new VmgateError('pki-ca-expired', `CA certificate ${path} is not valid until ${from.toISOString()}`);
  if (now > to) throw new VmgateError('pki-ca-expired', `CA certificate ${path} expired on ${to.toISOString()}; create a new CA (init-ca) and re-issue`);
}

export async function loadCa(caDir: string, passphrase: string | undefined, opts: { requireValid: boolean; now?: Date }): Promise<LoadedCa> {
  const c = await loadCaCertificate(caDir);
  if (opts.requireValid) checkCaValid(c.x509, c.paths.cert, opts.now ?? new Date());
  const keyPem = await readText(c.paths.key, 'CA key', 'pki-ca-missing');
  const key = decodePrivateKey(keyPem, passphrase, c.paths.key);
  if (!c.x509.checkPrivateKey(key)) {
    throw new VmgateError('pki-ca-mismatch', `${c.paths.key} is not the key of ${c.paths.cert}`);
  }
  return {
    paths: c.paths,
    certPem: c.certPem,
    x509: c.x509,
    key,
    issuer: { nameDer: c.nameDer, keyId: c.keyId, key },
  };
}
