import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { TlsFiles } from '../config/config.js';
import { VmgateError, messageOf } from '../errors.js';
import { DISK_FILES, type FileSource } from '../util/file-source.js';
import { groupId } from '../util/group-id.js';
import type { SharedGroup } from '../util/secret-file.js';
import { parseRevocation, type Revocation } from './revocation.js';

export const ALPN_PROTOCOL = 'vmgate/1';
const DAY_MS = 86_400_000;

/** One certificate and its key, checked to belong together and to be in date. */
export interface KeyPair {
  certPem: Buffer;
  /** Unencrypted PKCS#8, in memory only (the file may be encrypted). */
  keyPem: Buffer;
  cert: X509Certificate;
}

/**
 * Everything TLS needs for both roles, loaded and validated as a unit so a
 * reload either swaps in a complete, working identity or nothing at all.
 */
export interface Identity {
  files: TlsFiles;
  ca: Buffer;
  caCert: X509Certificate;
  crl: Buffer | undefined;
  /** The CRL parsed once here, for the checks on resumed sessions. */
  revocation: Revocation | undefined;
  server: KeyPair;
  client: KeyPair;
  serverContext: SecureContext;
  clientContext: SecureContext;
}

export interface ExpiryWarning {
  file: string;
  subject: string;
  daysLeft: number;
}

export async function loadIdentity(files: TlsFiles, now = new Date(), source: FileSource = DISK_FILES): Promise<Identity> {
  const ca = await source.public(files.ca, 'CA certificate');
  const caCert = parseCert(ca, files.ca, 'CA certificate');
  checkValidity(caCert, files.ca, 'CA certificate', now);
  if (!caCert.ca) throw new VmgateError('identity-invalid', `CA certificate ${files.ca} is not a CA (basicConstraints CA:FALSE)`);
  const crl = files.crl !== undefined ? await source.public(files.crl, 'CRL') : undefined;
  const revocation = crl !== undefined && files.crl !== undefined ? parseRevocation(crl, files.crl) : undefined;
  const keys = await keyAccess(files, source);
  const server = await loadKeyPair(files.cert, files.key, caCert, now, source, keys);
  const client = files.clientCert === files.cert && files.clientKey === files.key
    ? server
    : await loadKeyPair(files.clientCert, files.clientKey, caCert, now, source, keys);
  const base = { ca, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ...(crl ? { crl } : {}) } as const;
  let serverContext: SecureContext;
  let clientContext: SecureContext;
  try {
    serverContext = createSecureContext({ ...base, cert: server.certPem, key: server.keyPem });
    clientContext = createSecureContext({ ...base, cert: client.certPem, key: client.keyPem });
  } catch (e: unknown) {
    throw new VmgateError('identity-invalid', `TLS refused the identity in ${files.cert} / ${files.crl ?? 'no CRL'}: ${messageOf(e)}`, { cause: e });
  }
  return { files, ca, caCert, crl, revocation, server, client, serverContext, clientContext };
}

/** Certificates of this identity that expire within `days`. */
export function expiringSoon(id: Identity, days: number, now = new Date()): ExpiryWarning[] {
  const list: Array<[string, X509Certificate]> = [[id.files.ca, id.caCert], [id.files.cert, id.server.cert]];
  if (id.client !== id.server) list.push([id.files.clientCert, id.client.cert]);
  return list
    .map(([file, cert]) => ({ file, subject: cert.subject.replace(/\n/g, ', '), daysLeft: Math.floor((Date.parse(cert.validTo) - now.getTime()) / DAY_MS) }))
    .filter((w) => w.daysLeft < days);
}

/** How private keys may be read: the group that may share them, and the passphrase of encrypted ones. */
interface KeyAccess {
  shared: SharedGroup | undefined;
  passphrase: { file: string; text: string } | undefined;
}

async function keyAccess(files: TlsFiles, source: FileSource): Promise<KeyAccess> {
  const shared = files.keyGroup !== undefined
    ? { gid: await groupId(files.keyGroup, 'tls.keyGroup'), name: files.keyGroup, key: 'tls.keyGroup' }
    : undefined;
  let passphrase: KeyAccess['passphrase'];
  if (files.keyPassphraseFile !== undefined) {
    const text = (await source.secret(files.keyPassphraseFile, 'key passphrase file')).toString('utf8').replace(/\r?\n$/, '');
    if (text.length === 0) {
      throw new VmgateError('identity-key-passphrase', `key passphrase file ${files.keyPassphraseFile} (tls.keyPassphraseFile) is empty; write the passphrase of the private key into it`);
    }
    passphrase = { file: files.keyPassphraseFile, text };
  }
  return { shared, passphrase };
}

function isEncryptedPem(pem: Buffer): boolean {
  const text = pem.toString('latin1');
  return text.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /Proc-Type:\s*4,ENCRYPTED/.test(text);
}

function openPrivateKey(keyPem: Buffer, keyFile: string, access: KeyAccess): KeyObject {
  if (!isEncryptedPem(keyPem)) {
    try {
      return createPrivateKey(keyPem);
    } catch (e: unknown) {
      throw new VmgateError('identity-invalid', `private key ${keyFile} cannot be parsed: ${messageOf(e)}; expected a PEM private key (PKCS#8, PKCS#1 or SEC1)`, { cause: e });
    }
  }
  if (access.passphrase === undefined) {
    throw new VmgateError(
      'identity-key-passphrase',
      `private key ${keyFile} is encrypted and no passphrase is configured; set tls.keyPassphraseFile to a file (mode 0600) holding its passphrase`,
    );
  }
  try {
    return createPrivateKey({ key: keyPem, format: 'pem', passphrase: access.passphrase.text });
  } catch (e: unknown) {
    throw new VmgateError(
      'identity-key-passphrase',
      `the passphrase in ${access.passphrase.file} (tls.keyPassphraseFile) does not open private key ${keyFile}; put the key's passphrase there (one line)`,
      { cause: e },
    );
  }
}

async function loadKeyPair(certFile: string, keyFile: string, caCert: X509Certificate, now: Date, source: FileSource, access: KeyAccess): Promise<KeyPair> {
  const certPem = await source.public(certFile, 'certificate');
  const keyFileData = await source.secret(keyFile, 'private key', access.shared);
  const cert = parseCert(certPem, certFile, 'certificate');
  checkValidity(cert, certFile, 'certificate', now);
  const key = openPrivateKey(keyFileData, keyFile, access);
  if (!cert.checkPrivateKey(key)) {
    throw new VmgateError('identity-invalid', `private key ${keyFile} does not match certificate ${certFile}`);
  }
  if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) {
    throw new VmgateError('identity-invalid', `certificate ${certFile} was not issued by the CA in use (${caCert.subject.replace(/\n/g, ', ')})`);
  }
  const keyPem = Buffer.from(key.export({ type: 'pkcs8', format: 'pem' }));
  return { certPem, keyPem, cert };
}

function parseCert(pem: Buffer, file: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (e: unknown) {
    throw new VmgateError('identity-invalid', `${what} ${file} is not a PEM certificate: ${messageOf(e)}`, { cause: e });
  }
}

function checkValidity(cert: X509Certificate, file: string, what: string, now: Date): void {
  if (Date.parse(cert.validTo) <= now.getTime()) {
    throw new VmgateError('identity-invalid', `${what} ${file} expired on ${cert.validTo}; renew it (certs/vmgate-pki renew)`);
  }
  if (Date.parse(cert.validFrom) > now.getTime()) {
    throw new VmgateError('identity-invalid', `${what} ${file} is not valid before ${cert.validFrom}; check the clock`);
  }
}
