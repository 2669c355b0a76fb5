import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ObservedChannel } from '../../src/metrics/gateway-metrics.js';
import { SessionTracker } from '../../src/metrics/session-tracker.js';

function channel(session: string, owner = 'peer-1', role: 'route' | 'server' = 'server'): ObservedChannel {
  return { role, target: 'incoming', session, owner, relay: { counters: { bytesIn: 0, bytesOut: 0 } } };
}

test('session-ends-with-its-last-channel', () => {
  const t = new SessionTracker();
  const main = channel('s1');
  const multifd = channel('s1');
  t.channelStarted(main);
  t.channelStarted(multifd);
  assert.deepEqual(t.active('server'), { sessions: 1, channels: 2 });
  assert.equal(t.channelEnded(multifd, 'ok'), undefined, 'the main channel is still open');
  assert.equal(t.channelEnded(main, 'ok'), 'ok');
  assert.deepEqual(t.active('server'), { sessions: 0, channels: 0 });
});

test('session-outcome-is-the-first-failure', () => {
  const t = new SessionTracker();
  const [a, b, c] = [channel('s1'), channel('s1'), channel('s1')];
  for (const x of [a, b, c]) t.channelStarted(x);
  assert.equal(t.channelEnded(a, 'stalled'), undefined);
  assert.equal(t.channelEnded(b, 'peer-reset'), undefined);
  assert.equal(t.channelEnded(c, 'ok'), 'stalled');
});

test('same-session-id-from-two-peers-is-two-sessions', () => {
  const t = new SessionTracker();
  const fromA = channel('s1', 'peer-a');
  const fromB = channel('s1', 'peer-b');
  t.channelStarted(fromA);
  t.channelStarted(fromB);
  assert.deepEqual(t.active('server'), { sessions: 2, channels: 2 });
  assert.equal(t.channelEnded(fromA, 'cancelled'), 'cancelled');
  assert.equal(t.channelEnded(fromB, 'ok'), 'ok');
});

test('roles-are-counted-apart', () => {
  const t = new SessionTracker();
  t.channelStarted(channel('s1', 'p', 'route'));
  t.channelStarted(channel('s2', 'p', 'server'));
  t.channelStarted(channel('s2', 'p', 'server'));
  assert.deepEqual(t.active('route'), { sessions: 1, channels: 1 });
  assert.deepEqual(t.active('server'), { sessions: 1, channels: 2 });
});

test('an-end-without-a-start-is-ignored', () => {
  const t = new SessionTracker();
  assert.equal(t.channelEnded(channel('never-started'), 'ok'), undefined);
  assert.deepEqual(t.active('server'), { sessions: 0, channels: 0 });
});
