import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame, FrameDecoder, MAX_FRAME_LENGTH, type Frame } from '../../src/control/frame-codec.js';
import { isVmgateError } from '../../src/errors.js';

function rawFrame(type: number, body: Buffer | string, length?: number): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const header = Buffer.alloc(5);
  header.writeUInt32BE(length ?? 1 + bytes.length, 0);
  header.writeUInt8(type, 4);
  return Buffer.concat([header, bytes]);
}

function expectCode(code: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(isVmgateError(e), `expected VmgateError, got ${String(e)}`);
    assert.equal(e.code, code);
    return true;
  };
}

const frames: Frame[] = [
  { type: 1, body: { versions: [1] } },
  { type: 2, body: { version: 1, mechanisms: ['PLAIN'] } },
  { type: 3, body: { note: 'ünïcødé ✓ 𝄞', nested: { a: [1, 2, { b: null }] } } },
  { type: 6, body: {} },
];
const tail = Buffer.from('QEVM\x00\x00\x00\x03raw data phase bytes', 'latin1');
const stream = Buffer.concat([...frames.map((f) => encodeFrame(f.type, f.body)), tail]);

test('split-at-every-offset-decodes-identically', () => {
  for (let cut = 0; cut <= stream.length; cut++) {
    const d = new FrameDecoder(MAX_FRAME_LENGTH, { stopAfter: (f) => f.type === 6 });
    const got = d.push(stream.subarray(0, cut));
    let rest: Buffer;
    if (d.stopped) {
      // The last frame completed inside the first part: the second part was never the decoder's.
      rest = Buffer.concat([d.takeRemainder(), stream.subarray(cut)]);
    } else {
      got.push(...d.push(stream.subarray(cut)));
      assert.ok(d.stopped, `cut at ${cut}`);
      rest = d.takeRemainder();
    }
    assert.deepEqual(got, frames, `frames, cut at ${cut}`);
    assert.deepEqual(rest, tail, `remainder, cut at ${cut}`);
  }
});

test('split-at-every-pair-of-offsets-decodes-identically', () => {
  const body = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.body)));
  for (let a = 0; a <= body.length; a += 3) {
    for (let b = a; b <= body.length; b += 5) {
      const d = new FrameDecoder();
      const got = [...d.push(body.subarray(0, a)), ...d.push(body.subarray(a, b)), ...d.push(body.subarray(b))];
      assert.deepEqual(got, frames, `cuts at ${a},${b}`);
      assert.equal(d.buffered, 0);
    }
  }
});

test('byte-at-a-time-decodes-identically', () => {
  const d = new FrameDecoder(MAX_FRAME_LENGTH, { stopAfter: (f) => f.type === 6 });
  const got: Frame[] = [];
  let i = 0;
  while (!d.stopped) got.push(...d.push(stream.subarray(i, ++i)));
  assert.deepEqual(got, frames);
  assert.deepEqual(Buffer.concat([d.takeRemainder(), stream.subarray(i)]), tail);
});

test('byte-at-a-time-maximal-frame-linear-and-bounded', () => {
  const body = { pad: 'x'.repeat(MAX_FRAME_LENGTH - 1 - '{"pad":""}'.length) };
  const wire = encodeFrame(9, body);
  assert.equal(wire.length, MAX_FRAME_LENGTH + 4);
  const d = new FrameDecoder();
  const started = process.hrtime.bigint();
  let got: Frame[] = [];
  for (let i = 0; i < wire.length; i++) {
    got = d.push(wire.subarray(i, i + 1));
    assert.ok(d.buffered <= MAX_FRAME_LENGTH + 4);
  }
  assert.deepEqual(got, [{ type: 9, body }]);
  assert.ok(process.hrtime.bigint() - started < 2_000_000_000n, 'byte-at-a-time decode took too long');
});

test('remainder-after-frames-returned-exactly', () => {
  const d = new FrameDecoder();
  const partial = encodeFrame(1, { versions: [1] }).subarray(0, 7);
  const input = Buffer.concat([encodeFrame(6, {}), partial]);
  assert.deepEqual(d.push(input), [{ type: 6, body: {} }]);
  assert.equal(d.buffered, 7);
  assert.deepEqual(d.takeRemainder(), partial);
  assert.throws(() => d.push(Buffer.from([0])), expectCode('internal'));
});

test('stop-after-frame-keeps-following-bytes-raw', () => {
  // A remainder that parses as a valid frame must not be consumed as one.
  const trailing = encodeFrame(7, { code: 'internal', message: 'looks like a frame' });
  const d = new FrameDecoder(MAX_FRAME_LENGTH, { stopAfter: (f) => f.type === 6 });
  assert.deepEqual(d.push(Buffer.concat([encodeFrame(6, {}), trailing])), [{ type: 6, body: {} }]);
  assert.ok(d.stopped);
  assert.deepEqual(d.takeRemainder(), trailing);
});

test('push-after-stop-appends-raw-bytes', () => {
  const d = new FrameDecoder(MAX_FRAME_LENGTH, { stopAfter: (f) => f.type === 6 });
  assert.deepEqual(d.push(Buffer.concat([encodeFrame(6, {}), Buffer.from('QE')])), [{ type: 6, body: {} }]);
  // A chunk that arrives before the owner detaches is data, not a frame header.
  assert.deepEqual(d.push(Buffer.from('VM\xff\xff\xff\xff', 'latin1')), []);
  assert.deepEqual(d.takeRemainder(), Buffer.from('QEVM\xff\xff\xff\xff', 'latin1'));
});

test('oversize-rejected-at-header-before-body', () => {
  const d = new FrameDecoder();
  const header = Buffer.alloc(4);
  header.writeUInt32BE(MAX_FRAME_LENGTH + 1, 0);
  assert.deepEqual(d.push(header.subarray(0, 3)), []);
  assert.throws(() => d.push(header.subarray(3)), expectCode('frame-oversize'));
});

test('max-length-frame-accepted', () => {
  const body = Buffer.from(`{"p":"${'y'.repeat(MAX_FRAME_LENGTH - 1 - 8)}"}`);
  assert.equal(1 + body.length, MAX_FRAME_LENGTH);
  assert.equal(new FrameDecoder().push(rawFrame(4, body)).length, 1);
});

test('custom-limit-applies', () => {
  const d = new FrameDecoder(16);
  assert.throws(() => d.push(encodeFrame(1, { versions: [1, 2, 3] })), expectCode('frame-oversize'));
});

test('dead-after-error', () => {
  const d = new FrameDecoder();
  assert.throws(() => d.push(rawFrame(1, '', 0)), expectCode('frame-malformed'));
  assert.throws(() => d.push(encodeFrame(6, {})), expectCode('frame-malformed'));
  assert.equal(d.buffered, 0);
});

test('length-zero-malformed', () => {
  assert.throws(() => new FrameDecoder().push(Buffer.from([0, 0, 0, 0])), expectCode('frame-malformed'));
});

const malformed: [string, Buffer][] = [
  ['bad-utf8', rawFrame(1, Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]))],
  ['overlong-utf8', rawFrame(1, Buffer.from([0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x3a, 0x31, 0x7d]))],
  ['utf8-bom', rawFrame(1, Buffer.from('\ufeff{}', 'utf8'))],
  ['non-json', rawFrame(1, '{versions:[1]}')],
  ['empty-body', rawFrame(6, '')],
  ['json-array', rawFrame(1, '[1]')],
  ['json-number', rawFrame(1, '42')],
  ['json-string', rawFrame(1, '"x"')],
  ['json-null', rawFrame(1, 'null')],
  ['trailing-garbage', rawFrame(1, '{} x')],
];
for (const [name, wire] of malformed) {
  test(`${name}-malformed`, () => {
    assert.throws(() => new FrameDecoder().push(wire), expectCode('frame-malformed'));
  });
}

test('frames-before-an-error-are-lost-with-the-error', () => {
  // A push that contains good frames and then a bad one throws: the connection is over.
  const d = new FrameDecoder();
  assert.throws(() => d.push(Buffer.concat([encodeFrame(6, {}), rawFrame(1, '[]')])), expectCode('frame-malformed'));
});

test('encode-rejects-oversize', () => {
  const pad = 'z'.repeat(MAX_FRAME_LENGTH);
  assert.throws(() => encodeFrame(1, { pad }), expectCode('frame-oversize'));
});

test('encode-writes-length-and-type', () => {
  const wire = encodeFrame(5, { a: 'é' });
  assert.equal(wire.readUInt32BE(0), wire.length - 4);
  assert.equal(wire[4], 5);
  assert.equal(wire.subarray(5).toString('utf8'), '{"a":"é"}');
});

test('encode-rejects-non-byte-type', () => {
  assert.throws(() => encodeFrame(256, {}), expectCode('internal'));
  assert.throws(() => encodeFrame(-1, {}), expectCode('internal'));
});
