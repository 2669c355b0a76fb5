/**
 * Which failures of one path let a route try its next path
 * (src/route/peer-client.ts): those of the network only, never a verdict
 * of the peer or of our TLS checks, which every path would meet again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PeerError, VmgateError, type ErrorCode } from '../../src/errors.js';
import { isPathFailure } from '../../src/route/peer-client.js';

test('network failures move on to the next path', () => {
  for (const code of ['peer-unreachable', 'peer-reset', 'peer-closed', 'tls-timeout', 'handshake-timeout'] as ErrorCode[]) {
    assert.equal(isPathFailure(new VmgateError(code, 'x')), true, code);
  }
});

test('a refusal the peer sent never moves on, whatever its code', () => {
  for (const code of ['auth-failed', 'busy', 'target-forbidden', 'target-unknown', 'peer-unreachable', 'peer-reset'] as ErrorCode[]) {
    assert.equal(isPathFailure(new PeerError(code, 'x')), false, code);
  }
});

test('our verdicts on the server, an abandoned dial and anything else stay on the path', () => {
  for (const code of ['tls-name-mismatch', 'tls-verify-failed', 'tls-cert-revoked', 'tls-protocol', 'version-unsupported', 'auth-mechanism', 'local-closed', 'shutdown', 'internal'] as ErrorCode[]) {
    assert.equal(isPathFailure(new VmgateError(code, 'x')), false, code);
  }
  assert.equal(isPathFailure(new Error('ECONNREFUSED')), false, 'an unclassified error is not a known network failure');
});
