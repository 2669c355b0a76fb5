import { type ErrorCode, VmgateError, messageOf, systemCode } from '../errors.js';

/**
 * Turns what Node/OpenSSL report about a failed TLS set-up into one of our
 * stable codes with a sentence an operator can act on. Two sources:
 * - verification errors raised locally (we rejected the peer's certificate);
 * - TLS alerts received from the peer (the peer rejected ours), which arrive
 *   as ERR_SSL_*_ALERT_* codes.
 */
const LOCAL_VERIFY: Record<string, [ErrorCode, string]> = {
  CERT_REVOKED: ['tls-cert-revoked', 'the peer certificate is revoked by our CRL'],
  CERT_HAS_EXPIRED: ['tls-cert-expired', 'the peer certificate has expired'],
  CERT_NOT_YET_VALID: ['tls-cert-expired', 'the peer certificate is not valid yet (check both clocks)'],
  INVALID_PURPOSE: ['tls-bad-usage', 'the peer certificate lacks the required extended key usage (serverAuth/clientAuth)'],
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: ['tls-verify-failed', 'the peer certificate is not signed by our CA'],
  UNABLE_TO_GET_ISSUER_CERT: ['tls-verify-failed', 'the peer certificate is not signed by our CA'],
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: ['tls-verify-failed', 'the peer certificate is not signed by our CA'],
  DEPTH_ZERO_SELF_SIGNED_CERT: ['tls-verify-failed', 'the peer certificate is self-signed'],
  SELF_SIGNED_CERT_IN_CHAIN: ['tls-verify-failed', 'the peer chain ends in a CA we do not trust'],
  CERT_SIGNATURE_FAILURE: ['tls-verify-failed', 'the peer certificate signature is invalid'],
  UNABLE_TO_GET_CRL: ['tls-verify-failed', 'no CRL for the peer certificate issuer; publish the CA CRL (ca-crl.pem)'],
  CRL_HAS_EXPIRED: ['tls-verify-failed', 'our CRL has expired; publish a fresh one (certs/vmgate-pki publish-crl)'],
  CRL_NOT_YET_VALID: ['tls-verify-failed', 'our CRL is not valid yet (check the clock)'],
  ERR_TLS_CERT_ALTNAME_INVALID: ['tls-name-mismatch', 'the peer certificate does not carry the expected name'],
  ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE: ['tls-no-client-cert', 'the client presented no certificate'],
};

const PEER_ALERT: Record<string, [ErrorCode, string]> = {
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED: ['tls-cert-revoked', 'the peer says our certificate is revoked'],
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: ['tls-cert-expired', 'the peer says our certificate has expired or is not yet valid'],
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: ['tls-verify-failed', 'the peer does not trust the CA that signed our certificate'],
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: ['tls-verify-failed', 'the peer rejected our certificate'],
  ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE: ['tls-bad-usage', 'the peer says our certificate lacks the required key usage'],
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: ['tls-no-client-cert', 'the peer requires a client certificate and we sent none'],
  ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL: ['tls-protocol', 'the peer does not speak the vmgate ALPN protocol (is it a vmgate gateway of the same major version?)'],
  ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION: ['tls-protocol', 'the peer does not accept TLS 1.3'],
  ERR_SSL_UNSUPPORTED_PROTOCOL: ['tls-protocol', 'the peer offered a TLS version other than 1.3'],
  ERR_SSL_VERSION_TOO_LOW: ['tls-protocol', 'the peer offered SSL 3.0 or older (vmgate speaks TLS 1.3 only)'],
  ERR_SSL_NO_PROTOCOLS_AVAILABLE: ['tls-protocol', 'no common TLS version (vmgate speaks TLS 1.3 only)'],
  ERR_SSL_WRONG_VERSION_NUMBER: ['tls-protocol', 'the peer does not speak TLS (plain TCP or HTTP on the TLS port?)'],
  ERR_SSL_HTTP_REQUEST: ['tls-protocol', 'the peer sent HTTP to the TLS port'],
  ERR_SSL_PACKET_LENGTH_TOO_LONG: ['tls-protocol', 'the peer does not speak TLS'],
  ERR_SSL_UNEXPECTED_EOF_WHILE_READING: ['peer-reset', 'the peer closed the connection during the TLS handshake'],
  ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM: ['tls-protocol', 'no common signature algorithm'],
  ERR_SSL_NO_SHARED_CIPHER: ['tls-protocol', 'no common cipher suite'],
};

const NETWORK: Record<string, [ErrorCode, string]> = {
  ECONNREFUSED: ['peer-unreachable', 'connection refused: is the peer gateway running and listening on that port?'],
  EHOSTUNREACH: ['peer-unreachable', 'host unreachable: check routing and firewalls'],
  ENETUNREACH: ['peer-unreachable', 'network unreachable: check routing'],
  ETIMEDOUT: ['peer-unreachable', 'connection timed out: check firewalls and the peer address'],
  ENOTFOUND: ['peer-unreachable', 'the peer host name does not resolve'],
  EAI_AGAIN: ['peer-unreachable', 'the peer host name could not be resolved (DNS)'],
  ECONNRESET: ['peer-reset', 'the connection was reset by the peer'],
  EPIPE: ['peer-reset', 'the peer closed the connection'],
  // Node's tls.Server `handshakeTimeout`: a client that is idle or dribbles its handshake (slowloris).
  ERR_TLS_HANDSHAKE_TIMEOUT: ['tls-timeout', 'the TLS handshake did not finish within server.handshakeTimeoutMs (an idle or very slow client)'],
};

/** Classify an error seen on a gateway-to-gateway connection. */
export function classifyPeerError(e: unknown): VmgateError {
  if (e instanceof VmgateError) return e;
  const code = systemCode(e) ?? '';
  const known = LOCAL_VERIFY[code] ?? PEER_ALERT[code] ?? NETWORK[code];
  if (known) return new VmgateError(known[0], `${known[1]} (${code})`, { cause: e });
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) {
    return new VmgateError('tls-failed', `TLS failed: ${messageOf(e)} (${code})`, { cause: e });
  }
  return new VmgateError('peer-reset', `connection to the peer failed: ${messageOf(e)}${code ? ` (${code})` : ''}`, { cause: e });
}

/** Maps a server-side verifyError string (socket.authorizationError) the same way. */
export function classifyAuthorizationError(code: string): VmgateError {
  const known = LOCAL_VERIFY[code];
  if (known) return new VmgateError(known[0], `${known[1]} (${code})`);
  return new VmgateError('tls-verify-failed', `the peer certificate was not accepted (${code})`);
}
