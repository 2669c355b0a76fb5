import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { SessionAllocator } from '../../src/session/session-allocator.js';
import { SessionOrder } from '../../src/session/session-order.js';
import { VmgateError } from '../../src/errors.js';

test('channels-connect-in-order-even-when-they-arrive-reversed', async () => {
  const order = new SessionOrder(5_000);
  const connected: number[] = [];
  const open = async (ch: number): Promise<void> => {
    await order.turn('peer', 's1', ch);
    connected.push(ch);
    await new Promise((r) => setImmediate(r)); // a connect takes a turn of the event loop: later channels' turns run meanwhile
    order.release('peer', 's1', ch);
  };
  await Promise.all([open(3), open(2), open(1), open(0)]);
  assert.deepEqual(connected, [0, 1, 2, 3]);
});

test('a-missing-channel-times-out-with-channel-order', async () => {
  const order = new SessionOrder(50);
  await assert.rejects(order.turn('peer', 's1', 1), (e: unknown) => e instanceof VmgateError && e.code === 'channel-order');
});

test('a-replayed-channel-is-a-protocol-violation', async () => {
  const order = new SessionOrder(1_000);
  await order.turn('peer', 's1', 0);
  await assert.rejects(order.turn('peer', 's1', 0), (e: unknown) => e instanceof VmgateError && e.code === 'protocol-violation');
});

test('sessions-of-different-peers-do-not-interfere', async () => {
  const order = new SessionOrder(1_000);
  await order.turn('peer-1', 's1', 0);
  await order.turn('peer-2', 's1', 0); // same id, other owner: its own channel 0
  assert.equal(order.size, 2);
});

test('a-finished-session-is-forgotten-one-timeout-later', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const order = new SessionOrder(30);
    await order.turn('peer', 's1', 0);
    order.release('peer', 's1', 0);
    order.closed('peer', 's1');
    assert.equal(order.size, 0, 'a remembered session is not a session in flight');
    mock.timers.tick(30);
    // Forgotten: channel 1 now waits for a channel 0 and times out.
    const late = order.turn('peer', 's1', 1);
    mock.timers.tick(30);
    await assert.rejects(late, (e: unknown) => e instanceof VmgateError && e.code === 'channel-order');
  } finally {
    mock.timers.reset();
  }
});

test('a-channel-that-joins-a-session-whose-channels-all-ended-connects-at-once', async () => {
  // The source accepted it in the gap before it learnt the session's channels had ended.
  const order = new SessionOrder(1_000);
  for (const ch of [0, 1, 2]) {
    await order.turn('peer', 's1', ch);
    order.release('peer', 's1', ch);
  }
  for (let i = 0; i < 3; i += 1) order.closed('peer', 's1');
  const started = Date.now();
  await order.turn('peer', 's1', 3);
  assert.ok(Date.now() - started < 500, 'channel 3 waited for channels that had already connected and ended');
  assert.equal(order.size, 1);
  // Order still holds for the channels after it, and a replay is still refused.
  const four = order.turn('peer', 's1', 4);
  order.release('peer', 's1', 3);
  await four;
  await assert.rejects(order.turn('peer', 's1', 1), (e: unknown) => e instanceof VmgateError && e.code === 'protocol-violation');
});

test('route-groups-concurrent-connections-into-one-session', () => {
  const r = new SessionAllocator();
  const a = r.accept('to-b');
  const b = r.accept('to-b');
  assert.equal(a.session, b.session);
  assert.deepEqual([a.channel, b.channel], [0, 1]);
  r.release('to-b', a.session);
  r.release('to-b', b.session);
  assert.equal(r.size, 0, 'a key with no open channel is forgotten');
  const c = r.accept('to-b');
  assert.notEqual(c.session, a.session, 'a connection after all channels closed starts a new migration');
  assert.equal(c.channel, 0);
});

test('sessions-under-different-keys-never-share-a-session', () => {
  const r = new SessionAllocator();
  const a0 = r.accept('to-b:49152');
  const b0 = r.accept('to-b:49153');
  const a1 = r.accept('to-b:49152');
  assert.notEqual(a0.session, b0.session);
  assert.deepEqual([a0.channel, b0.channel, a1.channel], [0, 0, 1]);
  assert.equal(a1.session, a0.session);
  // A release under the wrong key, or of a session that is over, changes nothing.
  r.release('to-b:49153', a0.session);
  assert.equal(r.accept('to-b:49152').channel, 2);
});

test('stopping-refuses-every-waiting-channel-with-shutdown', async () => {
  const order = new SessionOrder(60_000);
  await order.turn('peer', 's1', 0);
  const waiting = [order.turn('peer', 's1', 2), order.turn('peer', 's2', 1)];
  order.abandonAll();
  for (const w of waiting) await assert.rejects(w, (e: unknown) => e instanceof VmgateError && e.code === 'shutdown');
  assert.equal(order.size, 0);
});
