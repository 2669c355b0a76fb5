/**
 * Private keys: the key types vmgate-pki issues, their generation, PKCS#8 PEM
 * encoding with optional passphrase protection, and decoding. All of it is
 * Node's native crypto (OpenSSL): it generates every key type in
 * milliseconds-to-seconds where forge's pure JavaScript takes many seconds
 * for RSA and has no ECDSA at all, and its PKCS#8 PBES2 / AES-256-CBC output
 * is what `openssl pkey`, GnuTLS and Node read.
 */
import { createPrivateKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { VmgateError, messageOf } from '../errors.js';

const generate = promisify(generateKeyPair);

/**
 * `ec`: ECDSA on P-256 (the default: small, fast, accepted by QEMU 7.2's
 * GnuTLS, OpenSSL and Node). `rsa`: for peers that need it. `ed25519`:
 * accepted by QEMU 7.2 (GnuTLS 3.7) and Node TLS 1.3; see certs/README.md.
 */
export const KEY_TYPES = ['ec', 'rsa', 'ed25519'] as const;
export type KeyType = (typeof KEY_TYPES)[number];
const DEFAULT_KEY_TYPE: KeyType = 'ec';

/** What to generate: a key type, and for RSA its size. */
export interface KeySpec { type: KeyType; bits?: number }

const DEFAULT_KEY_BITS = 3072;
const MIN_KEY_BITS = 3072;
const MIN_TEST_KEY_BITS = 2048;
const MAX_KEY_BITS = 8192;

function checkKeyBits(bits: number | undefined, allowWeakKeyForTests: boolean | undefined): number {
  const b = bits ?? DEFAULT_KEY_BITS;
  const min = allowWeakKeyForTests === true ? MIN_TEST_KEY_BITS : MIN_KEY_BITS;
  if (!Number.isInteger(b) || b < min || b > MAX_KEY_BITS || b % 256 !== 0) {
    throw new VmgateError('pki-bad-input', `key size ${String(b)} is not allowed: use a multiple of 256 from ${min} to ${MAX_KEY_BITS} bits`);
  }
  return b;
}

/**
 * Checks a key type and size as given by an operator. A size alone means RSA
 * (the only type with a size to choose); a size with another type is refused.
 */
export function checkKeySpec(type: string | undefined, bits: number | undefined, allowWeakKeyForTests: boolean | undefined): KeySpec {
  const t = type ?? (bits !== undefined ? 'rsa' : DEFAULT_KEY_TYPE);
  if (!(KEY_TYPES as readonly string[]).includes(t)) {
    throw new VmgateError('pki-bad-input', `key type ${JSON.stringify(t)} is not one of ${KEY_TYPES.join(', ')}`);
  }
  if (t !== 'rsa') {
    if (bits !== undefined) throw new VmgateError('pki-bad-input', `a key size (--key-bits ${String(bits)}) applies to RSA keys only; drop it, or use --key-type rsa`);
    return { type: t as KeyType };
  }
  return { type: 'rsa', bits: checkKeyBits(bits, allowWeakKeyForTests) };
}

/** The spec of an existing key (to renew with the same type and size). */
export function keySpecOf(key: KeyObject): KeySpec | undefined {
  switch (key.asymmetricKeyType) {
    case 'rsa': return { type: 'rsa', bits: key.asymmetricKeyDetails?.modulusLength ?? DEFAULT_KEY_BITS };
    case 'ec': return { type: 'ec' };
    case 'ed25519': return { type: 'ed25519' };
    default: return undefined;
  }
}

export function describeKeySpec(s: KeySpec): string {
  return s.type === 'rsa' ? `RSA ${s.bits ?? DEFAULT_KEY_BITS}` : s.type === 'ec' ? 'ECDSA P-256' : 'Ed25519';
}

export interface KeyPair { privateKey: KeyObject; publicKey: KeyObject }

export async function generateKey(spec: KeySpec): Promise<KeyPair> {
  try {
    switch (spec.type) {
      case 'rsa': return await generate('rsa', { modulusLength: spec.bits ?? DEFAULT_KEY_BITS, publicExponent: 0x10001 });
      case 'ec': return await generate('ec', { namedCurve: 'prime256v1' });
      case 'ed25519': return await generate('ed25519');
    }
  } catch (e: unknown) {
    throw new VmgateError('internal', `${describeKeySpec(spec)} key generation failed: ${messageOf(e)}`, { cause: e });
  }
}

/**
 * PKCS#8 PEM. Unencrypted ("BEGIN PRIVATE KEY") is the form QEMU, GnuTLS and
 * Node all read without help; with a passphrase, PBES2 / AES-256-CBC
 * ("BEGIN ENCRYPTED PRIVATE KEY").
 */
export function encodePrivateKey(key: KeyObject, passphrase: string | undefined): string {
  if (passphrase === undefined) return key.export({ type: 'pkcs8', format: 'pem' }).toString();
  if (passphrase.length === 0) throw new VmgateError('pki-bad-input', 'the passphrase is empty');
  return key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }).toString();
}

export function isEncryptedPem(pem: string): boolean {
  return pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /Proc-Type:\s*4,ENCRYPTED/.test(pem);
}

/** Decodes a (possibly encrypted) private key of a type this PKI signs with; wrong or missing passphrase is `pki-bad-passphrase`. */
export function decodePrivateKey(pem: string, passphrase: string | undefined, path: string): KeyObject {
  const encrypted = isEncryptedPem(pem);
  if (encrypted && passphrase === undefined) {
    throw new VmgateError('pki-bad-passphrase', `${path} is encrypted: give its passphrase (--passphrase-file)`);
  }
  let key: KeyObject;
  try {
    key = encrypted ? createPrivateKey({ key: pem, format: 'pem', passphrase: passphrase ?? '' }) : createPrivateKey(pem);
  } catch (e: unknown) {
    if (encrypted) throw new VmgateError('pki-bad-passphrase', `the passphrase for ${path} is wrong`, { cause: e });
    throw new VmgateError('pki-unreadable', `${path} is not a private key: ${messageOf(e)}`, { cause: e });
  }
  if (keySpecOf(key) === undefined) {
    throw new VmgateError('pki-unreadable', `${path} holds a ${key.asymmetricKeyType ?? 'unknown'} key; the vmgate CA signs with ${KEY_TYPES.join(', ')} keys`);
  }
  return key;
}
