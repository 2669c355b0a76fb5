import assert from 'node:assert/strict';
import { afterEach, beforeEach, mock, test } from 'node:test';
import { EndRecords, type EndRecord, type PeerNotice } from '../../src/session/end-records.js';

// Notices are kept for 5 s and waiters give up after their timeout: node:test's
// mock timers stand in for the clock, so no test waits in real time.
beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
afterEach(() => mock.timers.reset());

const ended = (cause: EndRecord['cause'], bytesIn = 0): EndRecord => ({ cause, message: `ended: ${cause}`, bytesIn, bytesOut: 0 });
const abort = (code: PeerNotice['code']): PeerNotice => ({ code, message: `peer says ${code}` });

/** The promise's value if it has settled by the time queued microtasks ran, else 'pending'. */
async function state<T>(p: Promise<T>): Promise<T | 'pending'> {
  return Promise.race([p, new Promise<'pending'>((r) => setImmediate(() => r('pending')))]);
}

test('a-record-is-found-by-owner-session-and-channel-only', () => {
  const r = new EndRecords();
  r.record('owner-a', 's1', 2, ended('peer-reset', 42));
  assert.deepEqual(r.lookup('owner-a', 's1', 2), ended('peer-reset', 42));
  assert.equal(r.lookup('owner-b', 's1', 2), undefined, 'another peer read this peer\'s record');
  assert.equal(r.lookup('owner-a', 's2', 2), undefined);
  assert.equal(r.lookup('owner-a', 's1', 1), undefined);
});

test('a-later-record-for-the-same-channel-replaces-the-earlier', () => {
  const r = new EndRecords();
  r.record('o', 's1', 0, ended('ok'));
  r.record('o', 's1', 0, ended('cancelled'));
  assert.equal(r.lookup('o', 's1', 0)?.cause, 'cancelled');
});

test('records-are-bounded-and-the-oldest-goes-first', () => {
  const r = new EndRecords();
  const LIMIT = 4096;
  for (let i = 0; i < LIMIT; i += 1) r.record('o', 's', i, ended('ok', i));
  r.record('o', 's', 0, ended('ok', 0)); // rewritten: now the newest
  r.record('o', 's', LIMIT, ended('ok', LIMIT)); // one over the limit
  assert.equal(r.lookup('o', 's', 1), undefined, 'the oldest record was kept past the limit');
  assert.equal(r.lookup('o', 's', 0)?.bytesIn, 0, 'a rewritten record counts as new');
  assert.equal(r.lookup('o', 's', 2)?.bytesIn, 2);
  assert.equal(r.lookup('o', 's', LIMIT)?.bytesIn, LIMIT);
});

test('a-waiter-wakes-when-the-notice-arrives', async () => {
  const r = new EndRecords();
  const waiting = r.waitForNotice('o', 's1', 0, 1_000);
  assert.equal(await state(waiting), 'pending');
  r.notice('o', 's1', 0, abort('stalled'));
  assert.deepEqual(await waiting, abort('stalled'));
});

test('a-waiter-gives-up-after-its-timeout', async () => {
  const r = new EndRecords();
  const waiting = r.waitForNotice('o', 's1', 0, 1_000);
  mock.timers.tick(999);
  assert.equal(await state(waiting), 'pending', 'gave up before its timeout');
  mock.timers.tick(1);
  assert.equal(await waiting, undefined);
});

test('a-notice-for-another-owner-does-not-wake-the-waiter', async () => {
  const r = new EndRecords();
  const waiting = r.waitForNotice('owner-a', 's1', 0, 1_000);
  r.notice('owner-b', 's1', 0, abort('cancelled'));
  r.notice('owner-a', 's1', 1, abort('cancelled'));
  assert.equal(await state(waiting), 'pending', 'woken by another peer\'s or another channel\'s notice');
  mock.timers.tick(1_000);
  assert.equal(await waiting, undefined);
});

test('an-early-notice-is-kept-for-the-relay-about-to-end-and-taken-once', async () => {
  const r = new EndRecords();
  r.notice('o', 's1', 0, abort('cancelled')); // ABORT overtook the reset
  assert.deepEqual(await state(r.waitForNotice('o', 's1', 0, 1_000)), abort('cancelled'), 'the kept notice was not returned at once');
  const again = r.waitForNotice('o', 's1', 0, 1_000);
  mock.timers.tick(1_000);
  assert.equal(await again, undefined, 'one notice was handed out twice');
});

test('an-early-notice-is-kept-for-5-s-then-forgotten', async () => {
  const r = new EndRecords();
  r.notice('o', 's1', 0, abort('cancelled'));
  r.notice('o', 's1', 1, abort('stalled'));
  mock.timers.tick(4_999);
  assert.deepEqual(await state(r.waitForNotice('o', 's1', 1, 100)), abort('stalled'), 'a notice was forgotten before 5 s');
  mock.timers.tick(1);
  const forgotten = r.waitForNotice('o', 's1', 0, 100);
  mock.timers.tick(100);
  assert.equal(await forgotten, undefined, 'a notice was kept past 5 s');
});

test('a-notice-after-the-waiter-gave-up-is-kept-for-the-next-waiter', async () => {
  const r = new EndRecords();
  const first = r.waitForNotice('o', 's1', 0, 100);
  mock.timers.tick(100);
  assert.equal(await first, undefined);
  r.notice('o', 's1', 0, abort('stalled'));
  assert.deepEqual(await state(r.waitForNotice('o', 's1', 0, 100)), abort('stalled'));
});
