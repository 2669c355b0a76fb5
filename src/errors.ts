/**
 * Every error class of vmgate, and the one list of codes. Callers match on
 * `code` (and on structured fields such as `detail`), never on the message.
 * A code is part of the public interface: it appears in logs, in the control
 * protocol's ERROR frame, in metrics labels and in CLI exit messages. Each
 * code has exactly one meaning; docs/operations.md lists them all with what
 * an operator should do, and every code ever changed (a unit test keeps the
 * two in step).
 *
 * A channel's end cause (the `cause` field of its log line and metrics) is
 * the `code` of the error that ended it.
 */

export const ERROR_CODES = {
  // configuration and files
  'config-invalid': 'the configuration file is invalid: a key, a value, or a file or group it names',
  'config-unreadable': 'a configuration or secret file could not be read',
  'config-changed': 'the config file changed since the gateway started in a way that only a restart applies (routes, listeners, workers)',
  'file-insecure': 'a secret file is readable by group or others',
  'password-invalid': "a route's user name or password file cannot be sent in SASL PLAIN (empty, too long, or contains NUL)",
  'listen-failed': 'a listening socket could not be opened (address in use, no permission, a file in the way)',
  'file-outside-dir': 'a key, certificate or secret file is a symlink leading out of its directory',
  'identity-invalid': 'the gateway certificate, key or CA is unusable',
  'identity-key-passphrase': 'a private key is encrypted and its passphrase (tls.keyPassphraseFile) is missing or wrong',
  'credentials-invalid': 'the SASL credential store, or a user name or password given for it, is invalid',
  'credentials-unwritable': 'the SASL credential store could not be written',
  'user-unknown': 'the credential store has no user of this name',
  // connection set-up (source side mostly)
  'peer-unreachable': 'the peer gateway could not be reached',
  'tls-failed': 'the TLS handshake failed',
  'tls-timeout': 'the TLS handshake did not finish in time',
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
  'handshake-timeout': 'the control handshake (HELLO to OPEN) did not finish in time',
  'auth-failed': 'SASL authentication failed',
  'auth-mechanism': 'the SASL mechanism is not offered',
  'target-unknown': 'the requested target is not configured on the peer gateway',
  'target-forbidden': 'this identity may not reach the requested target',
  'target-port-mismatch': "the route's port (range) does not fit the target's: a port-range route needs a port-range target that holds its ports, a single-port route a single-port target",
  'target-refused': 'the local target refused the connection',
  'channel-order': 'a channel could not be connected in session order',
  'busy': 'too many connections in handshake (server.maxHandshakes or maxHandshakesPerAddress)',
  'channels-full': 'server.maxChannels channels are already open',
  'report-unknown': 'the peer gateway has no record of how the asked-about channel ended',
  'report-timeout': 'the peer gateway did not say in time how a channel ended',
  // healing: continuing a channel over a new connection (docs/protocol.md §6)
  'heal-denied': 'a CONTINUE did not match the channel: another certificate name, SASL user or secret, or a secret already used',
  'heal-live': "a CONTINUE named a channel whose connection is still up at the peer gateway",
  'heal-elsewhere': 'with workers, a CONTINUE reached a worker that does not carry the channel (the source dials again)',
  'heal-unknown': 'a CONTINUE named a channel the peer gateway does not have and has no record of',
  'heal-counts': "the byte counts of a healing channel do not add up (more than was sent, or less than was acknowledged)",
  'peer-restarted': 'the peer gateway restarted since the channel opened: its side of the channel is gone',
  // data phase / channel end
  'peer-reset': 'the peer gateway connection ended abnormally',
  'link-timeout': 'nothing was heard from the peer gateway for channel.linkTimeoutMs',
  'heal-expired': 'the link to the peer gateway did not come back within channel.healWindowMs',
  'peer-closed': 'the peer gateway closed the channel before it was opened',
  'target-closed': 'the local target ended the connection abnormally',
  'local-closed': 'the local QEMU ended the connection abnormally',
  'stalled': 'no bytes moved for too long while data was waiting',
  'cancelled': 'the channel was cancelled by an operator',
  'shutdown': 'the gateway is shutting down',
  'internal': 'an unexpected internal error',
  'control-unreachable': "the gateway's control socket could not be reached or did not answer",
  'request-invalid': 'a control-socket request or answer is not valid (not JSON, too long, unknown op)',
  'session-unknown': 'no open session (or channel) with this id on this gateway, or the id is malformed',
  'worker-exited': 'the worker process carrying the channel exited unexpectedly',
  // command line and the local host
  'usage': 'the vmgate or vmgate-pki command line was used wrongly (unknown command or option, missing or bad argument)',
  'not-enough-memory': 'this host has too little free memory for what was asked',
  'qemu-refused': 'QEMU answered a QMP command with an error',
  // PKI (src/pki, certs/vmgate-pki)
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

/** Facts about an error for programs and tests to match on, beside the code (e.g. the config key). */
export type ErrorDetail = Readonly<Record<string, string | number | boolean>>;

export class VmgateError extends Error {
  readonly code: ErrorCode;
  readonly detail: ErrorDetail | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; detail?: ErrorDetail }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VmgateError';
    this.code = code;
    this.detail = options?.detail;
  }
}

/** A refusal the peer sent us as an ERROR frame; its code is the peer's verdict. */
export class PeerError extends VmgateError {
  readonly fromPeer = true;
}

/** Which check of a SASL PLAIN response failed (server log only; the peer sees `auth-failed`). */
export const PLAIN_REJECT_REASONS = [
  'not-utf8',
  'bad-separators',
  'user-length',
  'password-length',
  'authzid-mismatch',
  'saslprep',
] as const;
export type PlainRejectReason = (typeof PLAIN_REJECT_REASONS)[number];

/** `auth-failed` with the check that failed, for the server log. */
export class PlainRejectedError extends VmgateError {
  readonly reason: PlainRejectReason;

  constructor(reason: PlainRejectReason, message: string, options?: { cause?: unknown }) {
    super('auth-failed', `SASL PLAIN rejected (${reason}): ${message}`, options);
    this.reason = reason;
  }
}

/** `qemu-refused`: QEMU answered a QMP command with `{"error": {"class": ..., "desc": ...}}`. */
export class QmpError extends VmgateError {
  readonly command: string;
  readonly errorClass: string;
  readonly desc: string;

  constructor(command: string, errorClass: string, desc: string) {
    super('qemu-refused', `QMP ${command}: ${errorClass}: ${desc}`);
    this.name = 'QmpError';
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}

/** What is wrong with one key of a config file. */
export type ConfigProblemKind =
  | 'yaml' // the file is not valid YAML
  | 'unknown-key' // a key vmgate does not know (see `suggestion`)
  | 'missing' // a required key is absent
  | 'wrong-type' // e.g. text where a number belongs
  | 'out-of-range' // a number too small, too large or not whole
  | 'bad-value'; // a value of the right type that is still wrong (address, name, empty list, loopback rule)

export interface ConfigProblem {
  /** Dotted key path, e.g. `routes.to-b.peer`; `(top level)` for the document itself. */
  readonly key: string;
  readonly kind: ConfigProblemKind;
  /** One plain sentence naming the key, what was found and what is expected. */
  readonly message: string;
  /** For `unknown-key`: the known key it most likely misspells. */
  readonly suggestion?: string;
}

/** `config-invalid`, with every problem of the file listed at once. */
export class ConfigError extends VmgateError {
  readonly file: string;
  readonly problems: readonly ConfigProblem[];

  constructor(file: string, problems: readonly ConfigProblem[]) {
    super('config-invalid', `config ${file} is invalid:\n${problems.map((p) => `  - ${p.message}`).join('\n')}`);
    this.name = 'ConfigError';
    this.file = file;
    this.problems = problems;
  }
}

export function isVmgateError(e: unknown): e is VmgateError {
  return e instanceof VmgateError;
}

/** Node system errors carry a string `code` (ECONNREFUSED, ERR_SSL_...). */
export function systemCode(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e) {
    if (typeof e.code === 'string') return e.code;
  }
  return undefined;
}

export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
