/**
 * Issuing host and client certificates into a directory in QEMU's
 * `tls-creds-x509` layout. Every input is checked, and every file that would
 * be overwritten is refused, before a key is generated or the CA key is read.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VmgateError } from '../errors.js';
import { loadCa, loadCaCertificate, checkCaValid, type LoadedCa } from './ca.js';
import { readIndex, withCaLock, writeIndex, type IndexEntry } from './ca-index.js';
import { buildCertificate, type ExtKeyUsage } from './cert-builder.js';
import { assertAbsent, copyFileAtomic, ensureDir, writeFileAtomic } from './files.js';
import { checkKeySpec, encodePrivateKey, generateKey, type KeySpec } from './keys.js';
import { hostPaths, PUBLIC_MODE, SECRET_MODE } from './layout.js';
import { checkCommonName, checkDnsName, checkSans } from './names.js';
import { randomSerial } from './serial.js';
import { checkDays, period } from './validity.js';

export type CertKind = 'host' | 'client';

export interface IssueOptions {
  caDir: string;
  caPassphrase?: string;
  outDir: string;
  commonName: string;
  dns?: string[];
  ips?: string[];
  /** 'host' (default): one certificate for both roles, written as server-* and client-*. 'client': client-* only. */
  kind?: CertKind;
  /** Default 365; never beyond the CA's own notAfter. */
  days?: number;
  /** 'ec' (ECDSA P-256, the default), 'rsa' or 'ed25519'. A `keyBits` alone means 'rsa'. */
  keyType?: string;
  /** RSA only. Default 3072; at least 3072 unless `allowWeakKeyForTests`. */
  keyBits?: number;
  /** Encrypts the written private key (PKCS#8, AES-256-CBC); vmgate reads it with tls.keyPassphraseFile. */
  keyPassphrase?: string;
  force?: boolean;
  /* knobs for tests that need bad certificates: */
  notBefore?: Date;
  notAfter?: Date;
  extKeyUsage?: ExtKeyUsage[];
  allowWeakKeyForTests?: boolean;
}

export interface IssueResult {
  serial: string;
  /** server-cert.pem for a host, client-cert.pem for a client. */
  certPath: string;
  keyPath: string;
  outDir: string;
  kind: CertKind;
  commonName: string;
  dns: string[];
  ips: string[];
  notAfter: Date;
  /** The CRL copied into outDir, if the CA has one. */
  crlPath: string | undefined;
  keySpec: KeySpec;
  keyEncrypted: boolean;
}

/** Internal: issue after the caller has decided about overwriting. */
export interface IssuePlan {
  commonName: string;
  dns: string[];
  ips: string[];
  kind: CertKind;
  extKeyUsage: ExtKeyUsage[];
  days: number;
  keySpec: KeySpec;
  keyPassphrase: string | undefined;
  notBefore: Date | undefined;
  notAfter: Date | undefined;
  renewedFrom?: string;
}

export function planIssue(o: IssueOptions): IssuePlan {
  const commonName = checkCommonName(o.commonName);
  const kind = o.kind ?? 'host';
  if (kind !== 'host' && kind !== 'client') throw new VmgateError('pki-bad-input', `kind must be 'host' or 'client', got ${JSON.stringify(kind)}`);
  const sans = checkSans(o.dns, o.ips);
  const ips = sans.ips;
  let dns = sans.dns;
  if (kind === 'host' && dns.length === 0 && ips.length === 0) {
    try {
      dns = [checkDnsName(commonName)];
    } catch {
      throw new VmgateError('pki-bad-san', `a host certificate needs a DNS name or IP address that peers will check (--dns / --ip); CN ${JSON.stringify(commonName)} is not a DNS name`);
    }
  }
  const extKeyUsage = o.extKeyUsage ?? (kind === 'host' ? ['serverAuth', 'clientAuth'] : ['clientAuth']);
  if (extKeyUsage.length === 0 || extKeyUsage.some((u) => u !== 'serverAuth' && u !== 'clientAuth')) {
    throw new VmgateError('pki-bad-input', `extKeyUsage must be a non-empty list of serverAuth / clientAuth, got ${JSON.stringify(extKeyUsage)}`);
  }
  return {
    commonName,
    dns,
    ips,
    kind,
    extKeyUsage: [...new Set(extKeyUsage)],
    days: checkDays(o.days, 365, 'certificate validity'),
    keySpec: checkKeySpec(o.keyType, o.keyBits, o.allowWeakKeyForTests),
    keyPassphrase: checkKeyPassphrase(o.keyPassphrase),
    notBefore: o.notBefore,
    notAfter: o.notAfter,
  };
}

function checkKeyPassphrase(p: string | undefined): string | undefined {
  if (p !== undefined && p.length === 0) throw new VmgateError('pki-bad-input', 'the key passphrase is empty');
  return p;
}

/** The files an issue of `kind` writes into `outDir` that hold this host's identity. */
function identityFiles(outDir: string, kind: CertKind): string[] {
  const h = hostPaths(outDir);
  return kind === 'host' ? [h.serverCert, h.serverKey, h.clientCert, h.clientKey] : [h.clientCert, h.clientKey];
}

/** ca-cert.pem in outDir may stay only if it is this very CA. */
function checkCaCopy(outDir: string, caX509: X509Certificate, force: boolean | undefined): void {
  const path = hostPaths(outDir).caCert;
  if (force === true || !existsSync(path)) return;
  let same: boolean;
  try {
    same = new X509Certificate(readFileSync(path)).raw.equals(caX509.raw);
  } catch {
    same = false;
  }
  if (!same) throw new VmgateError('pki-exists', `${path} already exists and holds a different CA certificate; nothing was changed (use --force / force: true to overwrite)`);
}

export async function issueCertificate(o: IssueOptions): Promise<IssueResult> {
  const plan = planIssue(o);
  assertAbsent(identityFiles(o.outDir, plan.kind), o.force);
  const caCert = await loadCaCertificate(o.caDir);
  checkCaValid(caCert.x509, caCert.paths.cert, new Date());
  checkCaCopy(o.outDir, caCert.x509, o.force);
  const ca = await loadCa(o.caDir, o.caPassphrase, { requireValid: true });
  return issueWith(ca, plan, o.outDir);
}

/** Signs, records and writes one certificate. Used by issue and renew. */
export async function issueWith(ca: LoadedCa, plan: IssuePlan, outDir: string): Promise<IssueResult> {
  await ensureDir(outDir); // an unusable output path fails before anything is signed
  const keys = await generateKey(plan.keySpec);
  const now = new Date();
  const caNotAfter = new Date(ca.x509.validTo);
  const validity = period(now, plan.days, plan.notBefore, plan.notAfter);
  if (plan.notAfter === undefined && validity.notAfter > caNotAfter) validity.notAfter = caNotAfter;

  const { serial, certPem } = await withCaLock(ca.paths.dir, async () => {
    const index = await readIndex(ca.paths.index);
    let s = randomSerial();
    while (s === index.caSerial || index.issued.some((e) => e.serial === s)) s = randomSerial();
    const pem = buildCertificate({
      serial: s,
      commonName: plan.commonName,
      publicKey: keys.publicKey,
      issuer: ca.issuer,
      ...validity,
      profile: { kind: 'leaf', extKeyUsage: plan.extKeyUsage, dns: plan.dns, ips: plan.ips },
    });
    const entry: IndexEntry = {
      serial: s,
      commonName: plan.commonName,
      kind: plan.kind,
      dns: plan.dns,
      ips: plan.ips,
      extKeyUsage: plan.extKeyUsage,
      notBefore: validity.notBefore.toISOString(),
      notAfter: validity.notAfter.toISOString(),
      issuedAt: now.toISOString(),
      outDir,
      ...(plan.renewedFrom !== undefined ? { renewedFrom: plan.renewedFrom } : {}),
    };
    // Record first: the CA must know every certificate it signed, even if
    // writing the output directory fails below.
    await ensureDir(ca.paths.issuedDir);
    await writeFileAtomic(join(ca.paths.issuedDir, `${s}.pem`), pem, PUBLIC_MODE);
    index.issued.push(entry);
    await writeIndex(ca.paths.index, index);
    return { serial: s, certPem: pem };
  });

  const h = hostPaths(outDir);
  const keyPem = encodePrivateKey(keys.privateKey, plan.keyPassphrase);
  if (plan.kind === 'host') {
    await writeFileAtomic(h.serverKey, keyPem, SECRET_MODE);
    await writeFileAtomic(h.serverCert, certPem, PUBLIC_MODE);
  }
  await writeFileAtomic(h.clientKey, keyPem, SECRET_MODE);
  await writeFileAtomic(h.clientCert, certPem, PUBLIC_MODE);
  await writeFileAtomic(h.caCert, ca.certPem, PUBLIC_MODE);
  let crlPath: string | undefined;
  if (existsSync(ca.paths.crl)) {
    await copyFileAtomic(ca.paths.crl, h.crl, PUBLIC_MODE);
    crlPath = h.crl;
  }
  return {
    serial,
    certPath: plan.kind === 'host' ? h.serverCert : h.clientCert,
    keyPath: plan.kind === 'host' ? h.serverKey : h.clientKey,
    outDir,
    kind: plan.kind,
    commonName: plan.commonName,
    dns: plan.dns,
    ips: plan.ips,
    notAfter: validity.notAfter,
    crlPath,
    keySpec: plan.keySpec,
    keyEncrypted: plan.keyPassphrase !== undefined,
  };
}
