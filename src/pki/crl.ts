/**
 * Revocation: marking a serial revoked in the CA index and re-signing the
 * CRL; regenerating the CRL before it runs out; publishing the CA's CRL into
 * host directories (ca-crl.pem), which is what QEMU, libvirt and vmgate read.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { VmgateError, messageOf } from '../errors.js';
import { loadCa, loadCaCertificate } from './ca.js';
import { readIndex, withCaLock, writeIndex, type IndexEntry } from './ca-index.js';
import { parseReason, writeCrl, crlNumberOf } from './crl-writer.js';
import { copyFileAtomic, readText } from './files.js';
import { parseCertificatePem, summarize } from './inspect.js';
import { hostPaths, PUBLIC_MODE } from './layout.js';
import { normalizeSerial } from './serial.js';
import { x509 } from './x509-lib.js';

export interface RevokeOptions {
  caDir: string;
  caPassphrase?: string;
  /** Exactly one of serial and certPath. */
  serial?: string;
  certPath?: string;
  /** RFC 5280 reason name, e.g. keyCompromise, superseded, cessationOfOperation. */
  reason?: string;
  /** Lifetime of the re-signed CRL; default 30 days. */
  days?: number;
}

export interface RevokeResult {
  crlPath: string;
  serial: string;
  commonName: string;
  alreadyRevoked: boolean;
  crlNumber: number;
  nextUpdate: Date;
}

export async function revokeCertificate(o: RevokeOptions): Promise<RevokeResult> {
  if ((o.serial === undefined) === (o.certPath === undefined)) {
    throw new VmgateError('pki-bad-input', 'give exactly one of a serial (--serial) or a certificate file (--cert) to revoke');
  }
  const reason = o.reason !== undefined ? parseReason(o.reason) : undefined;
  let serial: string;
  let fromCert: IndexEntry | undefined;
  if (o.certPath !== undefined) {
    const { cert, node } = parseCertificatePem(await readText(o.certPath, 'certificate'), o.certPath);
    const ca = await loadCaCertificate(o.caDir);
    if (!(node.checkIssued(ca.x509) && node.verify(ca.x509.publicKey))) {
      throw new VmgateError('pki-ca-mismatch', `${o.certPath} was not issued by the CA in ${o.caDir}`);
    }
    const s = summarize(cert, node);
    serial = normalizeSerial(s.serial);
    const ekus = s.extKeyUsage.filter((u): u is 'serverAuth' | 'clientAuth' => u === 'serverAuth' || u === 'clientAuth');
    fromCert = {
      serial, commonName: s.commonName ?? s.subject, kind: ekus.includes('serverAuth') ? 'host' : 'client', dns: s.dns, ips: s.ips,
      extKeyUsage: ekus, notBefore: s.notBefore.toISOString(), notAfter: s.notAfter.toISOString(), issuedAt: s.notBefore.toISOString(),
    };
  } else {
    serial = normalizeSerial(o.serial ?? '');
  }
  const ca = await loadCa(o.caDir, o.caPassphrase, { requireValid: false });
  return withCaLock(o.caDir, async () => {
    const index = await readIndex(ca.paths.index);
    let entry = index.issued.find((e) => normalizeSerial(e.serial) === serial);
    if (entry === undefined && fromCert !== undefined) {
      // Signed by this CA but missing from the index (restored backup): record it so it can be revoked.
      entry = fromCert;
      index.issued.push(entry);
    }
    if (entry === undefined) {
      throw new VmgateError('pki-unknown-serial', `the CA in ${o.caDir} issued no certificate with serial ${serial} (see: vmgate-pki list --ca ${o.caDir})`);
    }
    const alreadyRevoked = entry.revokedAt !== undefined;
    if (!alreadyRevoked) {
      entry.revokedAt = new Date().toISOString();
      if (reason !== undefined) entry.reason = reason;
    }
    const written = await writeCrl(ca, index, o.days ?? 30, new Date());
    await writeIndex(ca.paths.index, index);
    return { ...written, serial: entry.serial, commonName: entry.commonName, alreadyRevoked };
  });
}

export interface GenerateCrlResult {
  crlPath: string;
  crlNumber: number;
  nextUpdate: Date;
  revokedCount: number;
}

/** Re-signs the CA's CRL (run it well before nextUpdate, then publish it). */
export async function generateCrl(o: { caDir: string; caPassphrase?: string; days?: number }): Promise<GenerateCrlResult> {
  const ca = await loadCa(o.caDir, o.caPassphrase, { requireValid: false });
  return withCaLock(o.caDir, async () => {
    const index = await readIndex(ca.paths.index);
    const written = await writeCrl(ca, index, o.days ?? 30, new Date());
    await writeIndex(ca.paths.index, index);
    return { ...written, revokedCount: index.issued.filter((e) => e.revokedAt !== undefined).length };
  });
}

export interface CrlSummary {
  issuer: string;
  thisUpdate: Date;
  nextUpdate: Date | undefined;
  crlNumber: number | undefined;
  revoked: Array<{ serial: string; date: Date; reason: string | undefined }>;
}

export function parseCrlPem(pem: string, where: string): x509.X509Crl {
  try {
    return new x509.X509Crl(pem);
  } catch (e: unknown) {
    throw new VmgateError('pki-unreadable', `${where} is not a PEM CRL: ${messageOf(e)}`, { cause: e });
  }
}

export function summarizeCrl(crl: x509.X509Crl): CrlSummary {
  return {
    issuer: crl.issuer,
    thisUpdate: crl.thisUpdate,
    nextUpdate: crl.nextUpdate,
    crlNumber: crlNumberOf(crl),
    revoked: crl.entries.map((e) => ({
      serial: normalizeSerial(e.serialNumber),
      date: e.revocationDate,
      reason: e.reason !== undefined ? x509.X509CrlReason[e.reason] : undefined,
    })),
  };
}

export interface PublishCrlResult {
  crlPath: string;
  published: string[];
  nextUpdate: Date | undefined;
}

/**
 * Copies the CA's current ca-crl.pem into each host directory. A directory is
 * refused (nothing copied anywhere) unless its ca-cert.pem is this CA.
 */
export async function publishCrl(o: { caDir: string; to: string | string[] }): Promise<PublishCrlResult> {
  const dirs = Array.isArray(o.to) ? o.to : [o.to];
  if (dirs.length === 0) throw new VmgateError('pki-bad-input', 'no directory to publish the CRL to');
  const ca = await loadCaCertificate(o.caDir);
  if (!existsSync(ca.paths.crl)) {
    throw new VmgateError('pki-ca-missing', `${ca.paths.crl} does not exist; create it with: vmgate-pki gen-crl --ca ${o.caDir}`);
  }
  const crl = parseCrlPem(await readText(ca.paths.crl, 'CRL'), ca.paths.crl);
  for (const dir of dirs) {
    const caCopy = hostPaths(dir).caCert;
    let same: boolean;
    try {
      same = new X509Certificate(readFileSync(caCopy)).raw.equals(ca.x509.raw);
    } catch (e: unknown) {
      throw new VmgateError('pki-ca-mismatch', `${dir} is not a host directory of this CA (${caCopy}: ${messageOf(e)})`, { cause: e });
    }
    if (!same) throw new VmgateError('pki-ca-mismatch', `${caCopy} is a different CA than ${ca.paths.cert}; not publishing there`);
  }
  for (const dir of dirs) await copyFileAtomic(ca.paths.crl, hostPaths(dir).crl, PUBLIC_MODE);
  return { crlPath: ca.paths.crl, published: dirs.map((d) => hostPaths(d).crl), nextUpdate: crl.nextUpdate };
}
