import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { dataHeader, DATA_HEADER_BYTES } from '../../src/relay/records.js';
import { ReplayBudget, ReplayBuffer } from '../../src/relay/replay-buffer.js';

function record(payload: Buffer): Buffer {
  return Buffer.concat([dataHeader(payload.length), payload]);
}

/** The payload bytes a sequence of written records carries. */
function payloadOf(records: Buffer[]): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  const all = Buffer.concat(records);
  while (at < all.length) {
    const n = all.readUInt32BE(at + 1);
    out.push(all.subarray(at + DATA_HEADER_BYTES, at + DATA_HEADER_BYTES + n));
    at += DATA_HEADER_BYTES + n;
  }
  return Buffer.concat(out);
}

test('replay: what is resent from any count the peer may have is exactly the bytes it lacks', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 50 }), { minLength: 1, maxLength: 20 }), fc.nat(), fc.nat(), (chunks, ackPick, resumePick) => {
      const buf = new ReplayBuffer(new ReplayBudget(1 << 20));
      const sent = Buffer.concat(chunks.map((c) => Buffer.from(c)));
      for (const c of chunks) buf.push(record(Buffer.from(c)), undefined);
      const acked = ackPick % (sent.length + 1);
      buf.ack(acked);
      const resumeAt = acked + (resumePick % (sent.length - acked + 1));
      assert.equal(buf.fits(resumeAt), true);
      assert.deepEqual(payloadOf([...buf.from(resumeAt)]), sent.subarray(resumeAt));
    }),
  );
});

test('replay: counts outside acknowledged..sent do not fit', () => {
  const buf = new ReplayBuffer(new ReplayBudget(1 << 20));
  buf.push(record(Buffer.alloc(100)), undefined);
  buf.ack(40);
  assert.equal(buf.fits(39), false, 'below what the peer acknowledged');
  assert.equal(buf.fits(101), false, 'above what was sent');
  assert.equal(buf.fits(40) && buf.fits(100), true);
});

test('replay: a record goes back (release, budget) only once the peer has all of it, in order', () => {
  const budget = new ReplayBudget(1 << 20);
  const buf = new ReplayBuffer(budget);
  const released: number[] = [];
  buf.push(record(Buffer.alloc(10)), () => released.push(1));
  buf.push(record(Buffer.alloc(10)), () => released.push(2));
  assert.equal(budget.heldBytes, 2 * (10 + DATA_HEADER_BYTES));
  buf.ack(9);
  assert.deepEqual(released, [], 'a record the peer has in part is kept');
  buf.ack(10);
  assert.deepEqual(released, [1]);
  assert.equal(budget.heldBytes, 10 + DATA_HEADER_BYTES);
  buf.clear();
  assert.deepEqual(released, [1, 2]);
  assert.equal(budget.heldBytes, 0);
});

test('replay budget: over the limit only a channel under the floor may read; room wakes the waiters', () => {
  const budget = new ReplayBudget(1000, 100);
  let woken = 0;
  budget.onRoom(() => (woken += 1));
  budget.take(1000);
  assert.equal(budget.allows(99), true, 'under the floor');
  assert.equal(budget.allows(100), false, 'at the floor, over the limit');
  budget.give(1);
  assert.equal(woken, 1);
  assert.equal(budget.allows(5000), true);
});
