import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { LogThrottle } from '../../src/log/log-throttle.js';
import { captureLogs } from '../helpers/log-capture.js';

test('flood-of-one-kind-logs-a-burst-then-one-summary', async () => {
  const logs = captureLogs('info');
  const t = new LogThrottle(logs.log, 3, 200);
  for (let i = 0; i < 50; i++) t.warn('busy', { event: 'channel-refused', i }, 'refused');
  t.warn('tls-protocol', { event: 'channel-refused', other: true }, 'other kind');
  assert.equal(logs.find({ event: 'channel-refused' }).length, 4, 'three of the flood and the other kind');
  const summary = await logs.waitFor({ event: 'log-suppressed', kind: 'busy' }, 2_000);
  assert.equal(summary['dropped'], 47);
  assert.equal(logs.find({ event: 'log-suppressed' }).length, 1, 'no summary for a kind that dropped nothing');
});

test('a-new-window-logs-again', () => {
  // The window is measured with Date.now() and ended by a timer: mock both.
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  try {
    const logs = captureLogs('info');
    const t = new LogThrottle(logs.log, 1, 100);
    t.warn('k', { event: 'x' }, 'first');
    t.warn('k', { event: 'x' }, 'dropped');
    mock.timers.tick(99);
    t.warn('k', { event: 'x' }, 'still the first window');
    assert.equal(logs.find({ event: 'x' }).length, 1, 'a line passed the burst inside its window');
    mock.timers.tick(1);
    assert.equal(logs.find({ event: 'log-suppressed' })[0]?.['dropped'], 2, 'the summary at the end of the window');
    t.warn('k', { event: 'x' }, 'next window');
    assert.equal(logs.find({ event: 'x' }).length, 2);
  } finally {
    mock.timers.reset();
  }
});
