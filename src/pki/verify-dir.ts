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
import { hostPaths, HOST_FILES } from './layout.js';
import { parseCrlPem } from './crl.js';
import { summarize } from './inspect.js';
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
  const findings: Finding[] = [];
  const pass = (check: FindingCheck, message: string, file?: string): void => { findings.push({ ok: true, level: 'info', check, message, ...(file !== undefined ? { file } : {}) }); };
  const fail = (check: FindingCheck, message: string, file?: string, level: 'error' | 'warning' = 'error'): void => { findings.push({ ok: false, level, check, message, ...(file !== undefined ? { file } : {}) }); };
  const report = (): VerifyReport => {
    const errors = findings.filter((f) => f.level === 'error').length;
    return { dir: o.dir, ok: errors === 0, errors, warnings: findings.filter((f) => f.level === 'warning').length, findings };
  };
  const h = hostPaths(o.dir);
  if (!existsSync(o.dir)) {
    fail('files', `${o.dir} does not exist`);
    return report();
  }

  // The CA this directory trusts.
  let ca: X509Certificate | undefined;
  let caPeculiar: x509.X509Certificate | undefined;
  try {
    const pem = readFileSync(h.caCert, 'utf8');
    ca = new X509Certificate(pem);
    caPeculiar = new x509.X509Certificate(pem);
    if (!ca.ca) fail('ca', `${HOST_FILES.caCert} is not a CA certificate (CA:FALSE)`, HOST_FILES.caCert);
    else if (now < new Date(ca.validFrom)) fail('ca', `CA ${ca.subject} is not valid until ${ca.validFrom}`, HOST_FILES.caCert);
    else if (now > new Date(ca.validTo)) fail('ca', `CA ${ca.subject} expired on ${ca.validTo}`, HOST_FILES.caCert);
    else pass('ca', `CA ${ca.subject.replace(/\n/g, ', ')} valid until ${ca.validTo}`, HOST_FILES.caCert);
  } catch (e: unknown) {
    fail('ca', existsSync(h.caCert) ? `${HOST_FILES.caCert} is unreadable: ${messageOf(e)}` : `${HOST_FILES.caCert} is missing`, HOST_FILES.caCert);
  }

  // The CRL, checked before the certificates so they can be looked up in it.
  let revoked: Map<string, x509.X509CrlEntry> | undefined;
  if (!existsSync(h.crl)) {
    fail('crl', `${HOST_FILES.crl} is missing: revoked peers will not be refused`, HOST_FILES.crl, 'warning');
  } else {
    try {
      const crl = parseCrlPem(readFileSync(h.crl, 'utf8'), HOST_FILES.crl);
      const signed = caPeculiar !== undefined && (await crl.verify({ publicKey: caPeculiar }));
      if (!signed) {
        fail('crl', `${HOST_FILES.crl} is not signed by ${HOST_FILES.caCert}: publish this CA's CRL (vmgate-pki publish-crl)`, HOST_FILES.crl);
      } else if (crl.thisUpdate > now) {
        fail('crl', `${HOST_FILES.crl} is not valid until ${crl.thisUpdate.toISOString()}`, HOST_FILES.crl);
      } else if (crl.nextUpdate !== undefined && crl.nextUpdate < now) {
        fail('crl', `${HOST_FILES.crl} expired on ${crl.nextUpdate.toISOString()}; TLS peers will refuse every handshake: vmgate-pki gen-crl, then publish-crl`, HOST_FILES.crl);
      } else {
        revoked = new Map(crl.entries.map((e) => [normalizeSerial(e.serialNumber), e]));
        const soon = crl.nextUpdate !== undefined && crl.nextUpdate.getTime() - now.getTime() < (o.warnCrlDays ?? 7) * DAY_MS;
        if (soon) fail('crl', `${HOST_FILES.crl} expires on ${crl.nextUpdate?.toISOString() ?? '?'}: vmgate-pki gen-crl, then publish-crl`, HOST_FILES.crl, 'warning');
        else pass('crl', `${HOST_FILES.crl} signed by the CA, ${crl.entries.length} revoked, next update ${crl.nextUpdate?.toISOString() ?? 'none'}`, HOST_FILES.crl);
      }
    } catch (e: unknown) {
      fail('crl', `${HOST_FILES.crl} is unreadable: ${messageOf(e)}`, HOST_FILES.crl);
    }
  }

  // The identities: server-* and client-* (one check when they are the same file content).
  const pairs: Array<{ role: Role; cert: string; key: string; certName: string; keyName: string }> = [
    { role: 'server', cert: h.serverCert, key: h.serverKey, certName: HOST_FILES.serverCert, keyName: HOST_FILES.serverKey },
    { role: 'client', cert: h.clientCert, key: h.clientKey, certName: HOST_FILES.clientCert, keyName: HOST_FILES.clientKey },
  ];
  // Group by content: a host dir's server-* and client-* are usually one identity, checked once for both roles.
  const identities = new Map<string, { pair: (typeof pairs)[number]; roles: Role[] }>();
  let present = 0;
  for (const p of pairs) {
    const hasCert = existsSync(p.cert);
    const hasKey = existsSync(p.key);
    if (hasCert || hasKey) present++;
    if (hasCert !== hasKey) {
      fail('files', hasCert ? `${p.certName} has no ${p.keyName}` : `${p.keyName} has no ${p.certName}`, hasCert ? p.keyName : p.certName);
      continue;
    }
    if (!hasCert) continue;
    const content = readFileSync(p.cert, 'utf8') + readFileSync(p.key, 'utf8');
    const same = identities.get(content);
    if (same !== undefined) same.roles.push(p.role);
    else identities.set(content, { pair: p, roles: [p.role] });
  }
  if (present === 0) fail('files', `no ${HOST_FILES.serverCert} or ${HOST_FILES.clientCert} in ${o.dir}`);
  for (const { pair, roles } of identities.values()) checkIdentity(pair, roles);
  return report();

  function checkIdentity(p: { cert: string; key: string; certName: string; keyName: string }, roles: Role[]): void {
    const f = p.certName;
    let node: X509Certificate;
    let cert: x509.X509Certificate;
    try {
      const pem = readFileSync(p.cert, 'utf8');
      node = new X509Certificate(pem);
      cert = new x509.X509Certificate(pem);
    } catch (e: unknown) {
      fail('files', `${f} is not a PEM certificate: ${messageOf(e)}`, f);
      return;
    }
    const s = summarize(cert, node, now);
    const who = `${f} (CN=${s.commonName ?? '?'}, serial ${s.serial})`;

    if (ca === undefined) fail('chain', `${who} cannot be checked without a CA certificate`, f);
    else if (node.checkIssued(ca) && node.verify(ca.publicKey)) pass('chain', `${who} is signed by the CA`, f);
    else fail('chain', `${who} is not issued by ${HOST_FILES.caCert} (its issuer is ${s.issuer})`, f);

    try {
      const keyPem = readFileSync(p.key, 'utf8');
      if (isEncryptedPem(keyPem)) fail('key', `${p.keyName} is encrypted, so it cannot be matched to ${f} here; vmgate opens it with tls.keyPassphraseFile`, p.keyName, 'warning');
      else if (node.checkPrivateKey(createPrivateKey(keyPem))) pass('key', `${p.keyName} matches ${f}`, p.keyName);
      else fail('key', `${p.keyName} does not match ${f}: they are from different issues; re-issue or renew`, p.keyName);
    } catch (e: unknown) {
      fail('key', `${p.keyName} is not a usable private key: ${messageOf(e)}`, p.keyName);
    }
    const mode = statSync(p.key).mode & 0o777;
    if ((mode & 0o037) !== 0) fail('permissions', `${p.keyName} is mode 0${mode.toString(8)}: accessible by others or group-writable (chmod 600, or 640 for a group shared with QEMU)`, p.keyName);
    else if ((mode & 0o040) !== 0) fail('permissions', `${p.keyName} is mode 0${mode.toString(8)}: group-readable; vmgate accepts that only with tls.keyGroup naming its group (else chmod 600)`, p.keyName, 'warning');
    else pass('permissions', `${p.keyName} is mode 0${mode.toString(8)}`, p.keyName);

    if (now < s.notBefore) fail('expiry', `${who} is not valid until ${s.notBefore.toISOString()}`, f);
    else if (now > s.notAfter) fail('expiry', `${who} expired on ${s.notAfter.toISOString()}: vmgate-pki renew`, f);
    else if (s.daysLeft < (o.warnDays ?? 30)) fail('expiry', `${who} expires in ${s.daysLeft} days (${s.notAfter.toISOString()}): vmgate-pki renew`, f, 'warning');
    else pass('expiry', `${who} valid until ${s.notAfter.toISOString()} (${s.daysLeft} days)`, f);

    for (const role of roles) {
      const need = role === 'server' ? 'serverAuth' : 'clientAuth';
      if (s.extKeyUsage.length > 0 && !s.extKeyUsage.includes(need) && !s.extKeyUsage.includes('anyExtendedKeyUsage')) {
        fail('usage', `${who} is used as a ${role} certificate but its extended key usage is ${s.extKeyUsage.join(', ')} (needs ${need})`, f);
      } else {
        pass('usage', `${who} may act as ${role} (${need})`, f);
      }
    }
    if (s.keyUsage.length > 0 && !s.keyUsage.includes('digitalSignature')) {
      fail('usage', `${who} key usage ${s.keyUsage.join(', ')} lacks digitalSignature, which TLS 1.3 needs`, f);
    }

    if (o.expectName !== undefined) {
      const matched = isIP(o.expectName) !== 0 ? node.checkIP(o.expectName) : node.checkHost(o.expectName);
      if (matched !== undefined) pass('name', `${who} carries the name ${o.expectName}`, f);
      else fail('name', `${who} does not carry the name ${o.expectName} (it has DNS ${s.dns.join(', ') || 'none'}; IP ${s.ips.join(', ') || 'none'})`, f);
    }

    if (revoked !== undefined) {
      const entry = revoked.get(normalizeSerial(s.serial));
      if (entry !== undefined) {
        const reason = entry.reason !== undefined ? ` (${x509.X509CrlReason[entry.reason]})` : '';
        fail('revocation', `${who} is revoked since ${entry.revocationDate.toISOString()}${reason}`, f);
      } else {
        pass('revocation', `${who} is not in ${HOST_FILES.crl}`, f);
      }
    }
  }
}
