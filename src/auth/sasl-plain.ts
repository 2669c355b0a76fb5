/**
 * SASL PLAIN (RFC 4616): `authzid NUL authcid NUL passwd`, UTF-8.
 *
 * The server side checks the response field by field, in a fixed order and
 * before any hash is computed (docs/protocol.md "SASL PLAIN"). Every failure is
 * `auth-failed` for the peer; `reason` tells the server log which check
 * failed. No message ever contains the password.
 */
import PlainMechanism from 'sasl-plain';
import saslprepLib from '@mongodb-js/saslprep';
import { PlainRejectedError, VmgateError } from '../errors.js';

export const MAX_USER_BYTES = 255;
export const MAX_PASSWORD_BYTES = 1024;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * RFC 4013 SASLprep as a stored string (unassigned code points refused).
 * Returns undefined when the string is refused or maps to nothing.
 */
export function saslprep(value: string): string | undefined {
  try {
    // The library throws a TypeError (not a clean error) when everything maps to nothing.
    const out = saslprepLib(value, { allowUnassigned: false });
    return out === '' ? undefined : out;
  } catch {
    return undefined;
  }
}

/** Client side: the initial response for `user`/`password`, authzid empty. */
export function buildPlainResponse(user: string, password: string): Buffer {
  if (user.includes('\0') || password.includes('\0')) {
    throw new VmgateError('password-invalid', 'the SASL user name or password contains a NUL byte, which SASL PLAIN cannot carry');
  }
  const userBytes = Buffer.byteLength(user, 'utf8');
  const passwordBytes = Buffer.byteLength(password, 'utf8');
  if (userBytes < 1 || userBytes > MAX_USER_BYTES) {
    throw new VmgateError('password-invalid', `the SASL user name is ${userBytes} bytes long; it must be 1 to ${MAX_USER_BYTES} bytes`);
  }
  if (passwordBytes < 1 || passwordBytes > MAX_PASSWORD_BYTES) {
    throw new VmgateError('password-invalid', `the SASL password is ${passwordBytes} bytes long; it must be 1 to ${MAX_PASSWORD_BYTES} bytes`);
  }
  return Buffer.from(new PlainMechanism().response({ authzid: '', username: user, password }), 'utf8');
}

/**
 * Server side: parses and prepares a PLAIN initial response. The returned
 * username and password are SASLprep'd, ready for CredentialStore.verify.
 */
export function parsePlainResponse(raw: Buffer): { username: string; password: string } {
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    throw new PlainRejectedError('not-utf8', `response of ${raw.length} bytes is not valid UTF-8`);
  }
  const fields = text.split('\0');
  if (fields.length !== 3) {
    throw new PlainRejectedError('bad-separators', `expected exactly 2 NUL separators, found ${fields.length - 1}`);
  }
  const [authzid, authcid, passwd] = fields as [string, string, string];
  const userBytes = Buffer.byteLength(authcid, 'utf8');
  if (userBytes < 1 || userBytes > MAX_USER_BYTES) {
    throw new PlainRejectedError('user-length', `authcid is ${userBytes} bytes, allowed 1..${MAX_USER_BYTES}`);
  }
  const passwordBytes = Buffer.byteLength(passwd, 'utf8');
  if (passwordBytes < 1 || passwordBytes > MAX_PASSWORD_BYTES) {
    throw new PlainRejectedError('password-length', `password is ${passwordBytes} bytes, allowed 1..${MAX_PASSWORD_BYTES}`);
  }
  if (authzid !== '' && authzid !== authcid) {
    throw new PlainRejectedError('authzid-mismatch', 'authzid is neither empty nor equal to authcid');
  }
  const username = saslprep(authcid);
  if (username === undefined) {
    throw new PlainRejectedError('saslprep', 'authcid is refused by SASLprep (prohibited or unassigned character, bidi rule, or empty after mapping)');
  }
  if (Buffer.byteLength(username, 'utf8') > MAX_USER_BYTES) {
    throw new PlainRejectedError('user-length', `authcid is longer than ${MAX_USER_BYTES} bytes after SASLprep`);
  }
  const password = saslprep(passwd);
  if (password === undefined) {
    throw new PlainRejectedError('saslprep', 'password is refused by SASLprep (prohibited or unassigned character, bidi rule, or empty after mapping)');
  }
  if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) {
    throw new PlainRejectedError('password-length', `password is longer than ${MAX_PASSWORD_BYTES} bytes after SASLprep`);
  }
  return { username, password };
}
