/**
 * Renewal: a new key and serial for the identity in a host directory, with the
 * same names, usages and kind. The old certificate stays valid until it
 * expires or is revoked (the CLI prints the revoke command to run once the new
 * one is deployed).
 */
import { existsSync } from 'node:fs';
import { VmgateError } from '../errors.js';
import { loadCa } from './ca.js';
import type { ExtKeyUsage } from './cert-builder.js';
import { readText } from './files.js';
import { parseCertificatePem, summarize } from './inspect.js';
import { issueWith, planIssue, type IssueResult } from './issue.js';
import { keySpecOf } from './keys.js';
import { hostPaths } from './layout.js';

export interface RenewOptions {
  caDir: string;
  caPassphrase?: string;
  outDir: string;
  /** Default 365. */
  days?: number;
  /** Renew even if the current certificate was issued by a different CA (re-homes the directory). */
  force?: boolean;
  /** Default: the type (and RSA size) of the key being replaced. */
  keyType?: string;
  keyBits?: number;
  /** Encrypts the new private key, as for issue. */
  keyPassphrase?: string;
  allowWeakKeyForTests?: boolean;
}

export interface RenewResult extends IssueResult {
  previousSerial: string;
}

export async function renewCertificate(o: RenewOptions): Promise<RenewResult> {
  const h = hostPaths(o.outDir);
  const isHost = existsSync(h.serverCert);
  const current = isHost ? h.serverCert : h.clientCert;
  if (!isHost && !existsSync(current)) {
    throw new VmgateError('pki-bad-input', `${o.outDir} holds no server-cert.pem or client-cert.pem to renew; use issue instead`);
  }
  const { cert, node } = parseCertificatePem(await readText(current, 'certificate'), current);
  const old = summarize(cert, node);
  const ca = await loadCa(o.caDir, o.caPassphrase, { requireValid: true });
  if (!(node.checkIssued(ca.x509) && node.verify(ca.x509.publicKey)) && o.force !== true) {
    throw new VmgateError('pki-ca-mismatch', `${current} was not issued by the CA in ${o.caDir} (issuer ${old.issuer}); use --force / force: true to re-issue it from this CA`);
  }
  const oldSpec = keySpecOf(node.publicKey);
  const keep = o.keyType === undefined && o.keyBits === undefined && oldSpec !== undefined
    ? { keyType: oldSpec.type, ...(oldSpec.bits !== undefined ? { keyBits: oldSpec.bits } : {}) }
    : {};
  const extKeyUsage = old.extKeyUsage.filter((u): u is ExtKeyUsage => u === 'serverAuth' || u === 'clientAuth');
  const plan = planIssue({
    caDir: o.caDir,
    outDir: o.outDir,
    commonName: old.commonName ?? '',
    dns: old.dns,
    ips: old.ips,
    kind: isHost ? 'host' : 'client',
    ...(o.days !== undefined ? { days: o.days } : {}),
    ...(o.keyType !== undefined ? { keyType: o.keyType } : {}),
    ...(o.keyBits !== undefined ? { keyBits: o.keyBits } : {}),
    ...keep,
    ...(o.keyPassphrase !== undefined ? { keyPassphrase: o.keyPassphrase } : {}),
    ...(o.allowWeakKeyForTests !== undefined ? { allowWeakKeyForTests: o.allowWeakKeyForTests } : {}),
    ...(extKeyUsage.length > 0 ? { extKeyUsage } : {}),
  });
  plan.renewedFrom = old.serial;
  const result = await issueWith(ca, plan, o.outDir);
  return { ...result, previousSerial: old.serial };
}
