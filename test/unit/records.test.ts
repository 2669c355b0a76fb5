import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { ErrorCode } from '../../src/errors.js';
import { abortRecord, ackRecord, dataHeader, END_RECORD, MAX_DATA_LENGTH, RecordParser } from '../../src/relay/records.js';
import { code } from '../helpers/assert-code.js';

const CANCELLED: ErrorCode = 'cancelled';

type Event = { kind: 'data'; bytes: Buffer } | { kind: 'ack'; received: number; ended: boolean } | { kind: 'end' } | { kind: 'abort'; code: ErrorCode; message: string };

/** Parses `stream` fed in pieces cut at `cuts`; DATA pieces are joined per record boundary for comparison. */
function parse(stream: Buffer, cuts: number[] = []): Event[] {
  const events: Event[] = [];
  const parser = new RecordParser({
    data: (payload) => {
      const last = events.at(-1);
      // A payload may arrive in pieces; copy, since the pieces are views of the pushed chunk.
      if (last?.kind === 'data') last.bytes = Buffer.concat([last.bytes, payload]);
      else events.push({ kind: 'data', bytes: Buffer.from(payload) });
    },
    ack: (received, ended) => events.push({ kind: 'ack', received, ended }),
    end: () => events.push({ kind: 'end' }),
    abort: (c, message) => events.push({ kind: 'abort', code: c, message }),
  });
  let at = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < stream.length)].sort((a, b) => a - b).concat(stream.length)) {
    if (cut > at) parser.push(stream.subarray(at, cut));
    at = Math.max(at, cut);
  }
  assert.equal(parser.idle, true, 'the parser ends between records');
  return events;
}

const record = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => ({ kind: 'data' as const, bytes: Buffer.from(b) })),
  fc.record({ received: fc.maxSafeNat(), ended: fc.boolean() }).map((a) => ({ kind: 'ack' as const, ...a })),
  fc.constant({ kind: 'end' as const }),
  fc.string({ maxLength: 100 }).map((message) => ({ kind: 'abort' as const, code: CANCELLED, message })),
);

function encode(e: Event): Buffer {
  switch (e.kind) {
    case 'data':
      return Buffer.concat([dataHeader(e.bytes.length), e.bytes]);
    case 'ack':
      return ackRecord(e.received, e.ended);
    case 'end':
      return END_RECORD;
    case 'abort':
      return abortRecord(e.code, e.message);
  }
}

test('records: any sequence, cut anywhere, parses back to the same events', () => {
  fc.assert(
    fc.property(fc.array(record, { maxLength: 20 }), fc.array(fc.nat({ max: 8000 }), { maxLength: 30 }), (events, cuts) => {
      // Adjacent DATA records join in `parse`, as a receiver writes them one after the other.
      const expected: Event[] = [];
      for (const e of events) {
        const last = expected.at(-1);
        if (e.kind === 'data' && last?.kind === 'data') last.bytes = Buffer.concat([last.bytes, e.bytes]);
        else expected.push(e.kind === 'data' ? { kind: 'data', bytes: Buffer.from(e.bytes) } : e);
      }
      assert.deepEqual(parse(Buffer.concat(events.map(encode)), cuts), expected);
    }),
  );
});

test('records: a DATA payload is handed on without a copy when it fills the chunk', () => {
  const payload = Buffer.alloc(1000, 9);
  const seen: Buffer[] = [];
  const parser = new RecordParser({ data: (p) => seen.push(p), ack: () => undefined, end: () => undefined, abort: () => undefined });
  parser.push(dataHeader(payload.length));
  parser.push(payload);
  assert.equal(seen.length, 1);
  assert.equal(seen[0]?.buffer, payload.buffer, 'the same memory, not a copy');
});

test('records: bytes no honest peer sends are refused with a code', () => {
  const push = (bytes: Buffer) => () => new RecordParser({ data: () => undefined, ack: () => undefined, end: () => undefined, abort: () => undefined }).push(bytes);
  assert.throws(push(Buffer.from([0x09])), code('protocol-violation'), 'unknown record type');
  assert.throws(push(dataHeader(0)), code('frame-malformed'), 'empty DATA');
  const tooLong = Buffer.alloc(5);
  tooLong[0] = 1;
  tooLong.writeUInt32BE(MAX_DATA_LENGTH + 1, 1);
  assert.throws(push(tooLong), code('frame-malformed'), 'DATA over the limit');
  const badAck = ackRecord(5, false);
  badAck[9] = 2;
  assert.throws(push(badAck), code('frame-malformed'), 'ACK ended flag not 0/1');
  assert.throws(push(Buffer.concat([Buffer.from([4, 0, 3]), Buffer.from('{x}')])), code('frame-malformed'), 'ABORT body not JSON');
  assert.throws(push(Buffer.from([4, 0, 0])), code('frame-malformed'), 'empty ABORT');
});

test('records: an ABORT with a code this build does not know arrives as internal, its code kept in the message', () => {
  const body = Buffer.from(JSON.stringify({ code: 'from-the-future', message: 'x' }));
  const header = Buffer.from([4, 0, body.length]);
  const events = parse(Buffer.concat([header, body]));
  assert.equal(events[0]?.kind, 'abort');
  assert.equal(events[0]?.kind === 'abort' ? events[0].code : '', 'internal');
});
