import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPlainResponse, parsePlainResponse } from '../../src/auth/sasl-plain.js';
import { isVmgateError, PlainRejectedError, type PlainRejectReason } from '../../src/errors.js';

const SECRET = 'hunter2-Secret';

function rejected(raw: Buffer, reason: PlainRejectReason): void {
  assert.throws(
    () => parsePlainResponse(raw),
    (e: unknown) => {
      assert.ok(e instanceof PlainRejectedError, `expected PlainRejectedError, got ${String(e)}`);
      assert.equal(e.code, 'auth-failed');
      assert.equal(e.reason, reason, e.message);
      assert.ok(!e.message.includes(SECRET), 'message leaks the password');
      return true;
    },
  );
}

const plain = (s: string): Buffer => Buffer.from(s, 'utf8');

test('round-trip-build-parse', () => {
  const raw = buildPlainResponse('alice', SECRET);
  assert.deepEqual(raw, plain(`\0alice\0${SECRET}`));
  assert.deepEqual(parsePlainResponse(raw), { username: 'alice', password: SECRET });
});

test('round-trip-non-ascii', () => {
  const raw = buildPlainResponse('jürgen', 'pässwörd ✓');
  assert.deepEqual(parsePlainResponse(raw), { username: 'jürgen', password: 'pässwörd ✓' });
});

test('authzid-equal-to-authcid-accepted', () => {
  assert.deepEqual(parsePlainResponse(plain(`alice\0alice\0${SECRET}`)), { username: 'alice', password: SECRET });
});

test('empty-response-rejected', () => rejected(Buffer.alloc(0), 'bad-separators'));
test('no-separator-rejected', () => rejected(plain(`alice${SECRET}`), 'bad-separators'));
test('one-separator-rejected', () => rejected(plain(`alice\0${SECRET}`), 'bad-separators'));
test('nul-injection-in-password-rejected', () => rejected(plain(`\0alice\0${SECRET}\0admin`), 'bad-separators'));
test('nul-injection-in-user-rejected', () => rejected(plain(`\0al\0ice\0${SECRET}`), 'bad-separators'));
test('trailing-nul-rejected', () => rejected(plain(`\0alice\0${SECRET}\0`), 'bad-separators'));

test('empty-user-rejected', () => rejected(plain(`\0\0${SECRET}`), 'user-length'));
test('user-256-bytes-rejected', () => rejected(plain(`\0${'u'.repeat(256)}\0${SECRET}`), 'user-length'));
test('user-255-bytes-accepted', () => {
  assert.equal(parsePlainResponse(plain(`\0${'u'.repeat(255)}\0${SECRET}`)).username.length, 255);
});
test('user-length-counts-bytes-not-chars', () => rejected(plain(`\0${'é'.repeat(128)}\0${SECRET}`), 'user-length'));

test('empty-password-rejected', () => rejected(plain('\0alice\0'), 'password-length'));
test('password-1025-bytes-rejected', () => rejected(plain(`\0alice\0${SECRET}${'p'.repeat(1025 - SECRET.length)}`), 'password-length'));
test('password-1024-bytes-accepted', () => {
  assert.equal(parsePlainResponse(plain(`\0alice\0${'p'.repeat(1024)}`)).password.length, 1024);
});

test('invalid-utf8-rejected', () => rejected(Buffer.concat([plain('\0ali'), Buffer.from([0xff]), plain(`\0${SECRET}`)]), 'not-utf8'));
test('overlong-nul-encoding-rejected', () => rejected(Buffer.concat([plain('\0alice'), Buffer.from([0xc0, 0x80]), plain(SECRET)]), 'not-utf8'));
test('lone-surrogate-cesu-rejected', () => rejected(Buffer.concat([plain('\0alice\0'), Buffer.from([0xed, 0xa0, 0x80])]), 'not-utf8'));

test('authzid-mismatch-rejected', () => rejected(plain(`admin\0alice\0${SECRET}`), 'authzid-mismatch'));

test('saslprep-soft-hyphen-mapped-to-nothing', () => {
  assert.deepEqual(parsePlainResponse(plain(`\0al\u00adice\0${SECRET}`)), { username: 'alice', password: SECRET });
  assert.equal(parsePlainResponse(plain('\0alice\0pass\u00adword')).password, 'password');
});

test('saslprep-non-ascii-space-mapped-to-space', () => {
  assert.equal(parsePlainResponse(plain('\0alice\0correct\u00a0horse')).password, 'correct horse');
  assert.equal(parsePlainResponse(plain('\0alice\0correct\u2003horse')).password, 'correct horse');
});

test('saslprep-nfkc-normalised', () => {
  assert.equal(parsePlainResponse(plain(`\0\u2168\0${SECRET}`)).username, 'IX');
});

test('saslprep-control-char-rejected', () => rejected(plain(`\0ali\u0007ce\0${SECRET}`), 'saslprep'));
test('saslprep-control-char-in-password-rejected', () => rejected(plain('\0alice\0pass\u007fword'), 'saslprep'));
test('saslprep-unassigned-rejected', () => rejected(plain(`\0alice\u0221\0${SECRET}`), 'saslprep'));
test('saslprep-bidi-mix-rejected', () => rejected(plain(`\0a\u05d0b\0${SECRET}`), 'saslprep'));
test('saslprep-empty-after-mapping-rejected', () => rejected(plain(`\0\u00ad\0${SECRET}`), 'saslprep'));
test('saslprep-password-empty-after-mapping-rejected', () => rejected(plain('\0alice\0\u034f\u00ad'), 'saslprep'));

test('build-refuses-nul-in-credentials', () => {
  assert.throws(() => buildPlainResponse('al\0ice', SECRET), (e: unknown) => isVmgateError(e) && e.code === 'password-invalid');
  assert.throws(() => buildPlainResponse('alice', `${SECRET}\0x`), (e: unknown) => isVmgateError(e) && e.code === 'password-invalid');
  assert.throws(() => buildPlainResponse('', SECRET), (e: unknown) => isVmgateError(e) && e.code === 'password-invalid');
});
