/**
 * Checks a host directory the way its peers will see it: chain to
 * ca-cert.pem, key matches certificate, key file private, validity, usages,
 * the expected name, and revocation against ca-crl.pem (itself checked for
 * signature and freshness). Reports findings; never throws for a bad directory.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { messageOf } from '../errors.js';
import { isEncryptedPem } from './keys.js';
import { hostPaths, HOST_FILES, type HostPaths } from './layout.js';
import { parseCrlPem } from './crl.js';
import { summarize, type CertificateSummary } from './inspect.js';
import { normalizeSerial } from './serial.js';
import { DAY_MS } from './validity.js';
import { x509 } from './x509-lib.js';

export type FindingLevel = 'error' | 'warning' | 'info';
export type FindingCheck = 'files' | 'ca' | 'chain' | 'key' | 'permissions' | 'expiry' | 'usage' | 'name' | 'crl' | 'revocation';

export interface Finding {
  ok: boolean;
  /** 'info' for passed checks; 'error' fails the directory, 'warning' does not. */
  level: FindingLevel;
  check: FindingCheck;
  /** The file name inside the directory the finding is about, if one. */
  file?: string;
  message: string;
}

export interface VerifyReport {
  dir: string;
  ok: boolean;
  errors: number;
  warnings: number;
  findings: Finding[];
}

export interface VerifyHostDirOptions {
  dir: string;
  /** A DNS name or IP address peers will expect the certificate to carry. */
  expectName?: string;
  now?: Date;
  /** Warn when a certificate or the CRL runs out within this many days (default 30 and 7). */
  warnDays?: number;
  warnCrlDays?: number;
}

type Role = 'server' | 'client';

export async function verifyHostDir(o: VerifyHostDirOptions): Promise<VerifyReport> {
  const now = o.now ?? new Date();
  const findings = new Findings();
  if (!existsSync(o.dir)) {
    findings.fail('files', `${o.dir} does not exist`);
    return findings.report(o.dir);
  }
  const h = hostPaths(o.dir);
  const ca = checkCa(h.caCert, now, findings);
  // The CRL, checked before the certificates so they can be looked up in it.
  const revoked = await checkCrl(h.crl, ca.peculiar, now, o.warnCrlDays ?? 7, findings);
  const ctx: IdentityContext = { findings, now, ca: ca.node, revoked, warnDays: o.warnDays ?? 30, expectName: o.expectName };
  for (const { files, roles } of identitiesIn(h, findings)) checkIdentity(ctx, files, roles);
  return findings.report(o.dir);
}

/** The findings of one run, in the order they were made. */
class Findings {
  private readonly list: Finding[] = [];

  pass(check: FindingCheck, message: string, file?: string): void {
    this.list.push({ ok: true, level: 'info', check, message, ...(file !== undefined ? { file } : {}) });
  }

  fail(check: FindingCheck, message: string, file?: string, level: 'error' | 'warning' = 'error'): void {
    this.list.push({ ok: false, level, check, message, ...(file !== undefined ? { file } : {}) });
  }

  report(dir: string): VerifyReport {
    const errors = this.list.filter((f) => f.level === 'error').length;
    return { dir, ok: errors === 0, errors, warnings: this.list.filter((f) => f.level === 'warning').length, findings: this.list };
  }
}

/** The CA this directory trusts, in both libraries' forms; either is missing when the file cannot be read. */
interface TrustedCa {
  node?: X509Certificate;
  peculiar?: x509.X509Certificate;
}

function checkCa(path: string, now: Date, findings: Findings): TrustedCa {
  const f = HOST_FILES.caCert;
  const found: TrustedCa = {};
  try {
    const pem = readFileSync(path, 'utf8');
    const ca = new X509Certificate(pem);
    found.node = ca;
    found.peculiar = new x509.X509Certificate(pem);
    if (!ca.ca) findings.fail('ca', `${f} is not a CA certificate (CA:FALSE)`, f);
    else if (now < new Date(ca.validFrom)) findings.fail('ca', `CA ${ca.subject} is not valid until ${ca.validFrom}`, f);
    else if (now > new Date(ca.validTo)) findings.fail('ca', `CA ${ca.subject} expired on ${ca.validTo}`, f);
    else findings.pass('ca', `CA ${ca.subject.replace(/\n/g, ', ')} valid until ${ca.validTo}`, f);
  } catch (e: unknown) {
    findings.fail('ca', existsSync(path) ? `${f} is unreadable: ${messageOf(e)}` : `${f} is missing`, f);
  }
  return found;
}

/** The revoked serials of a CRL that is signed by the CA and current; undefined when there is none such. */
async function checkCrl(path: string, ca: x509.X509Certificate | undefined, now: Date, warnDays: number, findings: Findings): Promise<Map<string, x509.X509CrlEntry> | undefined> {
  const f = HOST_FILES.crl;
  if (!existsSync(path)) {
    findings.fail('crl', `${f} is missing: revoked peers will not be refused`, f, 'warning');
    return undefined;
  }
  try {
    const crl = parseCrlPem(readFileSync(path, 'utf8'), f);
    const signed = ca !== undefined && (await crl.verify({ publicKey: ca }));
    if (!signed) {
      findings.fail('crl', `${f} is not signed by ${HOST_FILES.caCert}: publish this CA's CRL (vmgate-pki publish-crl)`, f);
    } else if (crl.thisUpdate > now) {
      findings.fail('crl', `${f} is not valid until ${crl.thisUpdate.toISOString()}`, f);
    } else if (crl.nextUpdate !== undefined && crl.nextUpdate < now) {
      findings.fail('crl', `${f} expired on ${crl.nextUpdate.toISOString()}; TLS peers will refuse every handshake: vmgate-pki gen-crl, then publish-crl`, f);
    } else {
      const soon = crl.nextUpdate !== undefined && crl.nextUpdate.getTime() - now.getTime() < warnDays * DAY_MS;
      if (soon) findings.fail('crl', `${f} expires on ${crl.nextUpdate?.toISOString() ?? '?'}: vmgate-pki gen-crl, then publish-crl`, f, 'warning');
      else findings.pass('crl', `${f} signed by the CA, ${crl.entries.length} revoked, next update ${crl.nextUpdate?.toISOString() ?? 'none'}`, f);
      return new Map(crl.entries.map((e) => [normalizeSerial(e.serialNumber), e]));
    }
  } catch (e: unknown) {
    findings.fail('crl', `${f} is unreadable: ${messageOf(e)}`, f);
  }
  return undefined;
}

/** A certificate and its key: paths, and the names used in findings. */
interface IdentityFiles {
  cert: string;
  key: string;
  certName: string;
  keyName: string;
}

/**
 * The identities in the directory: server-* and client-*, grouped by
 * content, since a host dir's two are usually one identity, checked once for
 * both roles. A certificate without its key (or the reverse) is a finding.
 */
function identitiesIn(h: HostPaths, findings: Findings): Array<{ files: IdentityFiles; roles: Role[] }> {
  const pairs: Array<IdentityFiles & { role: Role }> = [
    { role: 'server', cert: h.serverCert, key: h.serverKey, certName: HOST_FILES.serverCert, keyName: HOST_FILES.serverKey },
    { role: 'client', cert: h.clientCert, key: h.clientKey, certName: HOST_FILES.clientCert, keyName: HOST_FILES.clientKey },
  ];
  const identities = new Map<string, { files: IdentityFiles; roles: Role[] }>();
  let present = 0;
  for (const p of pairs) {
    const hasCert = existsSync(p.cert);
    const hasKey = existsSync(p.key);
    if (hasCert || hasKey) present++;
    if (hasCert !== hasKey) {
      findings.fail('files', hasCert ? `${p.certName} has no ${p.keyName}` : `${p.keyName} has no ${p.certName}`, hasCert ? p.keyName : p.certName);
      continue;
    }
    if (!hasCert) continue;
    const content = readFileSync(p.cert, 'utf8') + readFileSync(p.key, 'utf8');
    const same = identities.get(content);
    if (same !== undefined) same.roles.push(p.role);
    else identities.set(content, { files: p, roles: [p.role] });
  }
  if (present === 0) findings.fail('files', `no ${HOST_FILES.serverCert} or ${HOST_FILES.clientCert} in ${h.dir}`);
  return [...identities.values()];
}

/** What every identity is checked against. */
interface IdentityContext {
  findings: Findings;
  now: Date;
  ca: X509Certificate | undefined;
  revoked: Map<string, x509.X509CrlEntry> | undefined;
  warnDays: number;
  expectName: string | undefined;
}

/** One certificate under check: both parsed forms, its summary, and how findings name it. */
interface Subject {
  node: X509Certificate;
  summary: CertificateSummary;
  /** The file name, for findings. */
  file: string;
  /** "server-cert.pem (CN=..., serial ...)", for messages. */
  who: string;
}

function checkIdentity(ctx: IdentityContext, files: IdentityFiles, roles: Role[]): void {
  const subject = loadSubject(files.cert, files.certName, ctx);
  if (subject === undefined) return;
  checkChain(ctx, subject);
  checkKey(ctx.findings, files, subject);
  checkExpiry(ctx, subject);
  checkUsage(ctx.findings, subject, roles);
  if (ctx.expectName !== undefined) checkName(ctx.findings, subject, ctx.expectName);
  if (ctx.revoked !== undefined) checkRevocation(ctx.findings, subject, ctx.revoked);
}

function loadSubject(path: string, file: string, ctx: IdentityContext): Subject | undefined {
  let node: X509Certificate;
  let cert: x509.X509Certificate;
  try {
    const pem = readFileSync(path, 'utf8');
    node = new X509Certificate(pem);
    cert = new x509.X509Certificate(pem);
  } catch (e: unknown) {
    ctx.findings.fail('files', `${file} is not a PEM certificate: ${messageOf(e)}`, file);
    return undefined;
  }
  const summary = summarize(cert, node, ctx.now);
  return { node, summary, file, who: `${file} (CN=${summary.commonName ?? '?'}, serial ${summary.serial})` };
}

function checkChain(ctx: IdentityContext, { node, summary, file, who }: Subject): void {
  if (ctx.ca === undefined) ctx.findings.fail('chain', `${who} cannot be checked without a CA certificate`, file);
  else if (node.checkIssued(ctx.ca) && node.verify(ctx.ca.publicKey)) ctx.findings.pass('chain', `${who} is signed by the CA`, file);
  else ctx.findings.fail('chain', `${who} is not issued by ${HOST_FILES.caCert} (its issuer is ${summary.issuer})`, file);
}

/** The key matches the certificate (an encrypted one cannot be checked here), and only its owner, or one shared group, can read it. */
function checkKey(findings: Findings, files: IdentityFiles, { node, file }: Subject): void {
  const k = files.keyName;
  try {
    const keyPem = readFileSync(files.key, 'utf8');
    if (isEncryptedPem(keyPem)) findings.fail('key', `${k} is encrypted, so it cannot be matched to ${file} here; vmgate opens it with tls.keyPassphraseFile`, k, 'warning');
    else if (node.checkPrivateKey(createPrivateKey(keyPem))) findings.pass('key', `${k} matches ${file}`, k);
    else findings.fail('key', `${k} does not match ${file}: they are from different issues; re-issue or renew`, k);
  } catch (e: unknown) {
    findings.fail('key', `${k} is not a usable private key: ${messageOf(e)}`, k);
  }
  const mode = statSync(files.key).mode & 0o777;
  if ((mode & 0o037) !== 0) findings.fail('permissions', `${k} is mode 0${mode.toString(8)}: accessible by others or group-writable (chmod 600, or 640 for a group shared with QEMU)`, k);
  else if ((mode & 0o040) !== 0) findings.fail('permissions', `${k} is mode 0${mode.toString(8)}: group-readable; vmgate accepts that only with tls.keyGroup naming its group (else chmod 600)`, k, 'warning');
  else findings.pass('permissions', `${k} is mode 0${mode.toString(8)}`, k);
}

function checkExpiry(ctx: IdentityContext, { summary: s, file, who }: Subject): void {
  if (ctx.now < s.notBefore) ctx.findings.fail('expiry', `${who} is not valid until ${s.notBefore.toISOString()}`, file);
  else if (ctx.now > s.notAfter) ctx.findings.fail('expiry', `${who} expired on ${s.notAfter.toISOString()}: vmgate-pki renew`, file);
  else if (s.daysLeft < ctx.warnDays) ctx.findings.fail('expiry', `${who} expires in ${s.daysLeft} days (${s.notAfter.toISOString()}): vmgate-pki renew`, file, 'warning');
  else ctx.findings.pass('expiry', `${who} valid until ${s.notAfter.toISOString()} (${s.daysLeft} days)`, file);
}

/** Extended key usage fits each role the certificate plays; key usage allows TLS 1.3 signatures. */
function checkUsage(findings: Findings, { summary: s, file, who }: Subject, roles: Role[]): void {
  for (const role of roles) {
    const need = role === 'server' ? 'serverAuth' : 'clientAuth';
    if (s.extKeyUsage.length > 0 && !s.extKeyUsage.includes(need) && !s.extKeyUsage.includes('anyExtendedKeyUsage')) {
      findings.fail('usage', `${who} is used as a ${role} certificate but its extended key usage is ${s.extKeyUsage.join(', ')} (needs ${need})`, file);
    } else {
      findings.pass('usage', `${who} may act as ${role} (${need})`, file);
    }
  }
  if (s.keyUsage.length > 0 && !s.keyUsage.includes('digitalSignature')) {
    findings.fail('usage', `${who} key usage ${s.keyUsage.join(', ')} lacks digitalSignature, which TLS 1.3 needs`, file);
  }
}

function checkName(findings: Findings, { node, summary: s, file, who }: Subject, name: string): void {
  const matched = isIP(name) !== 0 ? node.checkIP(name) : node.checkHost(name);
  if (matched !== undefined) findings.pass('name', `${who} carries the name ${name}`, file);
  else findings.fail('name', `${who} does not carry the name ${name} (it has DNS ${s.dns.join(', ') || 'none'}; IP ${s.ips.join(', ') || 'none'})`, file);
}

function checkRevocation(findings: Findings, { summary, file, who }: Subject, revoked: Map<string, x509.X509CrlEntry>): void {
  const entry = revoked.get(normalizeSerial(summary.serial));
  if (entry === undefined) {
    findings.pass('revocation', `${who} is not in ${HOST_FILES.crl}`, file);
    return;
  }
  const reason = entry.reason !== undefined ? ` (${x509.X509CrlReason[entry.reason]})` : '';
  findings.fail('revocation', `${who} is revoked since ${entry.revocationDate.toISOString()}${reason}`, file);
}
