/**
 * RSA keys: generation (node-forge, which hands the work to Node's native
 * crypto — seconds faster than its pure-JavaScript fallback at 3072 bits),
 * PKCS#8 PEM encoding, and passphrase protection of the CA key (PKCS#8
 * PBES2 / AES-256-CBC, done by Node's OpenSSL so `openssl pkey` reads it).
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { VmgateError, messageOf } from '../errors.js';

const DEFAULT_KEY_BITS = 3072;
const MIN_KEY_BITS = 3072;
const MIN_TEST_KEY_BITS = 2048;
const MAX_KEY_BITS = 8192;

export function checkKeyBits(bits: number | undefined, allowWeakKeyForTests: boolean | undefined): number {
  const b = bits ?? DEFAULT_KEY_BITS;
  const min = allowWeakKeyForTests === true ? MIN_TEST_KEY_BITS : MIN_KEY_BITS;
  if (!Number.isInteger(b) || b < min || b > MAX_KEY_BITS || b % 256 !== 0) {
    throw new VmgateError('pki-bad-input', `key size ${String(b)} is not allowed: use a multiple of 256 from ${min} to ${MAX_KEY_BITS} bits`);
  }
  return b;
}

export function generateRsaKeyPair(bits: number): Promise<forge.pki.rsa.KeyPair> {
  // The native path is taken only when pure JavaScript is not forced and no
  // custom PRNG is passed; keep both true here.
  (forge as unknown as { options: { usePureJavaScript: boolean } }).options.usePureJavaScript = false;
  return new Promise((resolve, reject) => {
    forge.pki.rsa.generateKeyPair({ bits, e: 0x10001 }, (err, keypair) => {
      if (err !== null && err !== undefined) reject(new VmgateError('internal', `RSA key generation failed: ${messageOf(err)}`, { cause: err }));
      else resolve(keypair);
    });
  });
}

/** Unencrypted PKCS#8 ("BEGIN PRIVATE KEY"), the form QEMU, GnuTLS and Node all read. */
export function privateKeyToPkcs8Pem(key: forge.pki.rsa.PrivateKey): string {
  return forge.pki.privateKeyInfoToPem(forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(key)));
}

export function encodePrivateKey(key: forge.pki.rsa.PrivateKey, passphrase: string | undefined): string {
  const pem = privateKeyToPkcs8Pem(key);
  if (passphrase === undefined) return pem;
  if (passphrase.length === 0) throw new VmgateError('pki-bad-input', 'the CA passphrase is empty');
  return createPrivateKey(pem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }).toString();
}

export interface LoadedKey {
  forgeKey: forge.pki.rsa.PrivateKey;
  keyObject: KeyObject;
}

export function isEncryptedPem(pem: string): boolean {
  return pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /Proc-Type:\s*4,ENCRYPTED/.test(pem);
}

/** Decodes a (possibly encrypted) RSA private key; wrong or missing passphrase is `pki-bad-passphrase`. */
export function decodePrivateKey(pem: string, passphrase: string | undefined, path: string): LoadedKey {
  const encrypted = isEncryptedPem(pem);
  if (encrypted && passphrase === undefined) {
    throw new VmgateError('pki-bad-passphrase', `${path} is encrypted: give its passphrase (--passphrase-file)`);
  }
  let keyObject: KeyObject;
  try {
    keyObject = encrypted ? createPrivateKey({ key: pem, format: 'pem', passphrase: passphrase ?? '' }) : createPrivateKey(pem);
  } catch (e: unknown) {
    if (encrypted) throw new VmgateError('pki-bad-passphrase', `the passphrase for ${path} is wrong`, { cause: e });
    throw new VmgateError('pki-unreadable', `${path} is not a private key: ${messageOf(e)}`, { cause: e });
  }
  if (keyObject.asymmetricKeyType !== 'rsa') {
    throw new VmgateError('pki-unreadable', `${path} holds a ${keyObject.asymmetricKeyType ?? 'unknown'} key; the vmgate CA uses RSA`);
  }
  const plain = keyObject.export({ type: 'pkcs8', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(plain);
  return { forgeKey, keyObject };
}
