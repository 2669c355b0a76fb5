import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameDecoder } from '../../src/control/frame-codec.js';
import { decodeMessage, encodeMessage, MessageType, type Message } from '../../src/control/messages.js';
import { isVmgateError } from '../../src/errors.js';

function roundTrip(m: Message): Message {
  const frames = new FrameDecoder().push(encodeMessage(m));
  assert.equal(frames.length, 1);
  return decodeMessage(frames[0]!);
}

function rejects(type: number, body: Record<string, unknown>, code: string, field?: string): void {
  assert.throws(
    () => decodeMessage({ type, body }),
    (e: unknown) => {
      assert.ok(isVmgateError(e), `expected VmgateError, got ${String(e)}`);
      assert.equal(e.code, code, e.message);
      // The error has no field for the offending key: the message naming it is what the peer's operator sees.
      if (field !== undefined) assert.match(e.message, new RegExp(`\\b${field}\\b`), e.message);
      return true;
    },
  );
}

const session = '0123456789abcdef0123456789abcdef';
const open = { target: 'qemu-dst', session, channel: 0 };

const samples: Message[] = [
  { type: MessageType.HELLO, versions: [1, 2] },
  { type: MessageType.WELCOME, version: 1, mechanisms: ['PLAIN', 'SCRAM-SHA-256'] },
  { type: MessageType.AUTH, mechanism: 'PLAIN', response: Buffer.from('\0alice\0s3cret') },
  { type: MessageType.AUTH_OK, user: 'alice' },
  { type: MessageType.OPEN, target: 'vm-42.migration_a', session, channel: 1023 },
  { type: MessageType.OPENED },
  { type: MessageType.ERROR, code: 'target-refused', message: 'connect ECONNREFUSED 127.0.0.1:4444' },
  { type: MessageType.PROBE, target: 'incoming' },
  { type: MessageType.PROBED },
];
for (const m of samples) {
  test(`round-trip-type-${m.type}`, () => {
    assert.deepEqual(roundTrip(m), m);
  });
}

test('auth-response-decoded-to-buffer', () => {
  const m = decodeMessage({ type: 3, body: { mechanism: 'PLAIN', response: 'AGFsaWNlAHB3' } });
  assert.ok(m.type === MessageType.AUTH);
  assert.deepEqual(m.response, Buffer.from('\0alice\0pw'));
});

test('unknown-type-protocol-violation', () => {
  rejects(0, {}, 'protocol-violation');
  rejects(16, {}, 'protocol-violation');
  rejects(255, {}, 'protocol-violation');
});

test('continue-fields-checked', () => {
  const ok = { session: 'a'.repeat(32), channel: 0, secret: Buffer.alloc(32, 1).toString('base64'), received: 0, ended: false };
  rejects(14, { ...ok, secret: Buffer.alloc(31).toString('base64') }, 'frame-malformed', 'secret');
  rejects(14, { ...ok, received: -1 }, 'frame-malformed', 'received');
  rejects(14, { ...ok, ended: 'yes' }, 'frame-malformed', 'ended');
  rejects(14, { ...ok, extra: 1 }, 'frame-malformed', 'extra');
  // Each field must be there: a CONTINUE that leaves one out is not read as a default.
  for (const field of Object.keys(ok)) {
    const rest: Record<string, unknown> = { ...ok };
    delete rest[field];
    rejects(14, rest, 'frame-malformed', field);
  }
  rejects(14, { ...ok, session: 'A'.repeat(32) }, 'frame-malformed', 'session');
  rejects(14, { ...ok, session: 'a'.repeat(31) }, 'frame-malformed', 'session');
  rejects(14, { ...ok, channel: -1 }, 'frame-malformed', 'channel');
  rejects(14, { ...ok, channel: 1.5 }, 'frame-malformed', 'channel');
  rejects(14, { ...ok, channel: '0' }, 'frame-malformed', 'channel');
  // The secret is exactly 32 bytes in canonical base64: no more, no padding tricks, no other alphabet.
  rejects(14, { ...ok, secret: Buffer.alloc(33, 1).toString('base64') }, 'frame-malformed', 'secret');
  rejects(14, { ...ok, secret: `${ok.secret} ` }, 'frame-malformed', 'secret');
  rejects(14, { ...ok, secret: Buffer.alloc(32, 0xfb).toString('base64url') }, 'frame-malformed', 'secret');
  rejects(14, { ...ok, secret: ok.secret.replace(/=$/, '') }, 'frame-malformed', 'secret');
  rejects(14, { ...ok, secret: '' }, 'frame-malformed', 'secret');
  rejects(14, { ...ok, secret: 1 }, 'frame-malformed', 'secret');
  rejects(14, { ...ok, received: 1.5 }, 'frame-malformed', 'received');
  rejects(14, { ...ok, received: Number.MAX_SAFE_INTEGER + 1 }, 'frame-malformed', 'received');
  rejects(14, { ...ok, received: '0' }, 'frame-malformed', 'received');
  rejects(14, { ...ok, ended: 1 }, 'frame-malformed', 'ended');
  rejects(15, { received: -1, ended: false, secret: ok.secret }, 'frame-malformed', 'received');
  rejects(15, { received: 0, ended: false, secret: ok.secret, extra: 1 }, 'frame-malformed', 'extra');
  rejects(6, { secret: Buffer.alloc(16, 1).toString('base64') }, 'frame-malformed', 'secret');
  assert.equal(decodeMessage({ type: 14, body: ok }).type, 14);
  rejects(15, { received: 0, ended: false }, 'frame-malformed', 'secret');
  rejects(2, { version: 2, mechanisms: ['PLAIN'], instance: 'not-hex' }, 'frame-malformed', 'instance');
});

test('probe-target-checked-like-open', () => {
  rejects(12, { target: '../etc' }, 'frame-malformed', 'target');
  rejects(12, {}, 'frame-malformed', 'target');
  rejects(13, { extra: 1 }, 'frame-malformed', 'extra');
});

test('unknown-field-malformed', () => {
  rejects(6, { extra: 1 }, 'frame-malformed', 'extra');
  rejects(1, { versions: [1], v: 2 }, 'frame-malformed', 'v');
});

test('missing-field-malformed-naming-it', () => {
  rejects(5, { target: 'a', session }, 'frame-malformed', 'channel');
  rejects(3, { mechanism: 'PLAIN' }, 'frame-malformed', 'response');
});

test('versions-constraints', () => {
  rejects(1, { versions: [] }, 'frame-malformed', 'versions');
  rejects(1, { versions: Array.from({ length: 17 }, (_, i) => i + 1) }, 'frame-malformed', 'versions');
  rejects(1, { versions: [0] }, 'frame-malformed', 'versions');
  rejects(1, { versions: [-1] }, 'frame-malformed', 'versions');
  rejects(1, { versions: [1.5] }, 'frame-malformed', 'versions');
  rejects(1, { versions: ['1'] }, 'frame-malformed', 'versions');
  rejects(1, { versions: 1 }, 'frame-malformed', 'versions');
  assert.equal(roundTrip({ type: 1, versions: Array.from({ length: 16 }, (_, i) => i + 1) }).type, 1);
});

test('welcome-constraints', () => {
  rejects(2, { version: 0, mechanisms: ['PLAIN'] }, 'frame-malformed', 'version');
  rejects(2, { version: 1, mechanisms: [] }, 'frame-malformed', 'mechanisms');
  rejects(2, { version: 1, mechanisms: Array(9).fill('PLAIN') }, 'frame-malformed', 'mechanisms');
  rejects(2, { version: 1, mechanisms: ['A'.repeat(21)] }, 'frame-malformed', 'mechanisms');
  rejects(2, { version: 1, mechanisms: [''] }, 'frame-malformed', 'mechanisms');
  rejects(2, { version: 1, mechanisms: [7] }, 'frame-malformed', 'mechanisms');
  assert.equal(decodeMessage({ type: 2, body: { version: 1, mechanisms: ['A'.repeat(20)] } }).type, 2);
});

test('auth-response-constraints', () => {
  rejects(3, { mechanism: 'PLAIN', response: 'A'.repeat(4100) }, 'frame-malformed', 'response');
  rejects(3, { mechanism: 'PLAIN', response: 'AGFsaWNlAHB3 ' }, 'frame-malformed', 'response');
  rejects(3, { mechanism: 'PLAIN', response: 'AGFs\naWNlAHB3' }, 'frame-malformed', 'response');
  rejects(3, { mechanism: 'PLAIN', response: 'AGFsaWNlAHB' }, 'frame-malformed', 'response'); // no padding
  rejects(3, { mechanism: 'PLAIN', response: 'AB==' }, 'frame-malformed', 'response'); // non-zero pad bits
  rejects(3, { mechanism: 'PLAIN', response: 'A=B=' }, 'frame-malformed', 'response');
  rejects(3, { mechanism: 'PLAIN', response: '-_-_' }, 'frame-malformed', 'response'); // URL alphabet
  rejects(3, { mechanism: 'PLAIN', response: 'AA*A' }, 'frame-malformed', 'response');
  rejects(3, { mechanism: 'PLAIN', response: 42 }, 'frame-malformed', 'response');
  rejects(3, { mechanism: 'plain!', response: '' }, 'frame-malformed', 'mechanism');
  const max = Buffer.alloc(3072, 7).toString('base64');
  assert.equal(max.length, 4096);
  assert.equal(decodeMessage({ type: 3, body: { mechanism: 'PLAIN', response: max } }).type, 3);
});

test('auth-ok-user-constraints', () => {
  rejects(4, { user: 'u'.repeat(256) }, 'frame-malformed', 'user');
  rejects(4, { user: '' }, 'frame-malformed', 'user');
  assert.equal(decodeMessage({ type: 4, body: { user: 'u'.repeat(255) } }).type, 4);
});

const badTargets: [string, unknown][] = [
  ['dotdot-slash', '../x'],
  ['absolute-path', '/etc/passwd'],
  ['slash', 'a/b'],
  ['host-port', 'host:22'],
  ['dotfile', '.hidden'],
  ['empty', ''],
  ['65-chars', 'a'.repeat(65)],
  ['inner-dotdot', 'a..b'],
  ['trailing-dotdot', 'a..'],
  ['backslash', 'a\\b'],
  ['space', 'a b'],
  ['nul', 'a\0b'],
  ['newline', 'a\n'],
  ['leading-dash', '-x'],
  ['non-ascii', 'vm\u0131'],
  ['number', 5],
];
for (const [name, target] of badTargets) {
  test(`target-${name}-rejected`, () => {
    rejects(5, { ...open, target }, 'frame-malformed', 'target');
  });
}

test('target-64-chars-accepted', () => {
  assert.equal(decodeMessage({ type: 5, body: { ...open, target: 'a'.repeat(64) } }).type, 5);
  assert.equal(decodeMessage({ type: 5, body: { ...open, target: '0.a_b-c.d' } }).type, 5);
});

test('session-constraints', () => {
  rejects(5, { ...open, session: session.toUpperCase() }, 'frame-malformed', 'session');
  rejects(5, { ...open, session: session.slice(1) }, 'frame-malformed', 'session');
  rejects(5, { ...open, session: `${session}0` }, 'frame-malformed', 'session');
  rejects(5, { ...open, session: `${session.slice(1)}g` }, 'frame-malformed', 'session');
  rejects(5, { ...open, session: `${session}\n` }, 'frame-malformed', 'session');
});

test('channel-constraints', () => {
  rejects(5, { ...open, channel: -1 }, 'frame-malformed', 'channel');
  rejects(5, { ...open, channel: 1024 }, 'frame-malformed', 'channel');
  rejects(5, { ...open, channel: 1.5 }, 'frame-malformed', 'channel');
  rejects(5, { ...open, channel: '1' }, 'frame-malformed', 'channel');
});

test('error-known-code-kept', () => {
  const m = decodeMessage({ type: 7, body: { code: 'auth-failed', message: '' } });
  assert.deepEqual(m, { type: 7, code: 'auth-failed', message: '' });
});

test('error-unknown-code-maps-to-internal-keeping-original', () => {
  const m = decodeMessage({ type: 7, body: { code: 'quota-exceeded', message: 'too many' } });
  assert.ok(m.type === MessageType.ERROR);
  assert.equal(m.code, 'internal');
  // Keeping the peer's unknown code and text in the message is the behaviour under test.
  assert.match(m.message, /quota-exceeded/);
  assert.match(m.message, /too many/);
});

test('error-constraints', () => {
  rejects(7, { code: 'auth-failed', message: 'm'.repeat(513) }, 'frame-malformed', 'message');
  rejects(7, { code: 3, message: '' }, 'frame-malformed', 'code');
  rejects(7, { code: 'Bad Code\n', message: '' }, 'frame-malformed', 'code');
  rejects(7, { code: 'x'.repeat(65), message: '' }, 'frame-malformed', 'code');
  rejects(7, { code: 'auth-failed' }, 'frame-malformed', 'message');
});

test('encode-truncates-long-error-message', () => {
  const m = roundTrip({ type: MessageType.ERROR, code: 'internal', message: 'e'.repeat(2000) });
  assert.ok(m.type === MessageType.ERROR);
  assert.equal(m.message.length, 512);
});

test('encode-refuses-invalid-message', () => {
  assert.throws(
    () => encodeMessage({ type: MessageType.OPEN, target: '../etc', session, channel: 0 }),
    (e: unknown) => isVmgateError(e) && e.code === 'internal' && /target/.test(e.message),
  );
});

test('malformed-message-text-bounded', () => {
  const key = 'k'.repeat(5000);
  assert.throws(
    () => decodeMessage({ type: 6, body: { [key]: 1 } }),
    (e: unknown) => isVmgateError(e) && e.code === 'frame-malformed' && e.message.length < 200,
  );
});

test('abort-and-report-round-trip', () => {
  const session = 'a'.repeat(32);
  const msgs: Message[] = [
    { type: MessageType.ABORT, session, channels: [0, 3], code: 'cancelled', message: 'operator' },
    { type: MessageType.ABORTED, count: 2 },
    { type: MessageType.REPORT, session, channel: 1 },
    { type: MessageType.REPORTED, code: 'ok', message: 'normal end', bytesIn: 5, bytesOut: 0 },
    { type: MessageType.REPORTED, code: 'target-closed', message: 'target died', bytesIn: 1 << 30, bytesOut: 7 },
  ];
  for (const m of msgs) {
    const [frame] = new FrameDecoder().push(encodeMessage(m));
    assert.ok(frame);
    assert.deepEqual(decodeMessage(frame), m);
  }
});

test('abort-constraints', () => {
  const session = 'a'.repeat(32);
  rejects(MessageType.ABORT, { session, channels: [], code: 'cancelled', message: '' }, 'frame-malformed', 'channels');
  rejects(MessageType.ABORT, { session, channels: [1024], code: 'cancelled', message: '' }, 'frame-malformed', 'channels');
  rejects(MessageType.REPORTED, { code: 'ok', message: '', bytesIn: -1, bytesOut: 0 }, 'frame-malformed', 'bytesIn');
});
