/**
 * One error type for the whole gateway. Callers match on `code`, never on the
 * message. A code is part of the public interface: it appears in logs, in the
 * control protocol's ERROR frame, in metrics labels and in CLI exit messages,
 * so codes are only ever added, never renamed.
 *
 * `cause class` (DESIGN.md) is the `code` of the error that ended a channel.
 */

export const ERROR_CODES = {
  // configuration and files
  'config-invalid': 'the configuration file is invalid',
  'config-unreadable': 'a configuration or secret file could not be read',
  'file-insecure': 'a secret file is readable by group or others',
  'file-outside-dir': 'a key, certificate or secret file is a symlink leading out of its directory',
  'identity-invalid': 'the gateway certificate, key or CA is unusable',
  'credentials-invalid': 'the SASL credential store is invalid',
  // connection set-up (source side mostly)
  'peer-unreachable': 'the peer gateway could not be reached',
  'tls-failed': 'the TLS handshake failed',
  'tls-verify-failed': 'the peer certificate chain was not trusted',
  'tls-name-mismatch': 'the peer certificate does not carry the expected name',
  'tls-cert-revoked': 'the peer certificate is revoked',
  'tls-cert-expired': 'the peer certificate is expired or not yet valid',
  'tls-no-client-cert': 'the client presented no certificate',
  'tls-bad-usage': 'the peer certificate is not valid for this purpose',
  'tls-protocol': 'the peer does not speak TLS 1.3 with the vmgate ALPN',
  // control phase
  'frame-oversize': 'a control frame is larger than allowed',
  'frame-malformed': 'a control frame could not be decoded',
  'protocol-violation': 'a control message arrived that is not allowed here',
  'version-unsupported': 'no common protocol version',
  'handshake-timeout': 'the control handshake did not finish in time',
  'auth-failed': 'SASL authentication failed',
  'auth-mechanism': 'the SASL mechanism is not offered',
  'target-unknown': 'the requested target is not configured',
  'target-forbidden': 'this identity may not reach the requested target',
  'target-port-mismatch': "the route's port (range) does not fit the target's: a port-range route needs a port-range target that holds its ports, a single-port route a single-port target",
  'target-refused': 'the local target refused the connection',
  'channel-order': 'a channel could not be connected in session order',
  'busy': 'too many connections in handshake',
  // data phase / channel end
  'peer-reset': 'the peer gateway connection ended abnormally',
  'peer-closed': 'the peer gateway closed the channel before it was opened',
  'target-closed': 'the local target ended the connection abnormally',
  'local-closed': 'the local QEMU ended the connection abnormally',
  'stalled': 'no bytes moved for too long while data was waiting',
  'cancelled': 'the channel was cancelled by an operator',
  'shutdown': 'the gateway is shutting down',
  'internal': 'an unexpected internal error',
  'worker-exited': 'the worker process carrying the channel exited unexpectedly',
  // PKI (src/pki, certs/vmgate-pki)
  'pki-usage': 'the PKI command line was used wrongly',
  'pki-bad-input': 'a PKI option is invalid (name, days, key size, reason, serial)',
  'pki-bad-san': 'a subject alternative name is malformed',
  'pki-exists': 'a PKI file exists and would be overwritten',
  'pki-ca-missing': 'the CA directory or one of its files is missing',
  'pki-ca-expired': 'the CA certificate is expired or not yet valid',
  'pki-ca-mismatch': 'a certificate or directory belongs to a different CA',
  'pki-bad-passphrase': 'the CA key passphrase is missing or wrong',
  'pki-unreadable': 'a certificate, key, CRL or CA index could not be read or parsed',
  'pki-unknown-serial': 'the CA issued no certificate with this serial',
  'pki-verify-failed': 'a host certificate directory failed verification',
  'pki-unwritable': 'a PKI file or directory could not be written',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

export class VmgateError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VmgateError';
    this.code = code;
  }
}

export function isVmgateError(e: unknown): e is VmgateError {
  return e instanceof VmgateError;
}

/** Node system errors carry a string `code` (ECONNREFUSED, ERR_SSL_...). */
export function systemCode(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e) {
    const code = (e as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
