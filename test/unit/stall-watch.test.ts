import assert from 'node:assert/strict';
import { afterEach, beforeEach, mock, test } from 'node:test';
import type { ChannelSnapshot } from '../../src/session/session-view.js';
import { StallWatch, type StallSubject } from '../../src/session/stall-watch.js';
import { captureLogs } from '../helpers/log-capture.js';

// The watch reads Date.now() and checks on a setInterval; node:test's mock
// timers drive both, so "2 s of silence" takes no wall-clock time (setTimeout
// stays real, so a missing log line fails with its own message). With
// timeoutMs 2000 the watch checks every 500 ms.
const TIMEOUT_MS = 2_000;
const CHECK_MS = 500;

beforeEach(() => mock.timers.enable({ apis: ['setInterval', 'Date'], now: 0 }));
afterEach(() => mock.timers.reset());

function channel(session: string, channel: number, bytes = 0, role: 'route' | 'server' = 'server'): ChannelSnapshot {
  return {
    role, session, channel, target: 't', peer: 'peer', owner: 'owner', startedAt: 0,
    bytesIn: bytes, bytesOut: 0, closing: false, healing: false, pid: process.pid,
  };
}

/** A subject whose channels the test edits between ticks, recording every endSession call. */
function subject(channels: ChannelSnapshot[], answer: (session: string) => number | Promise<number> = () => 1): StallSubject & { ended: Array<{ session: string; message: string }> } {
  const ended: Array<{ session: string; message: string }> = [];
  return {
    ended,
    snapshot: () => channels.map((c) => ({ ...c })),
    endSession(session, message) {
      ended.push({ session, message });
      return answer(session);
    },
  };
}

/**
 * Moves the clock one check at a time: a single mock tick runs every due
 * callback with Date.now() already at the end of the span, which would hide
 * the silence the watch measures.
 */
function advance(ms: number): void {
  for (let done = 0; done < ms; done += CHECK_MS) mock.timers.tick(Math.min(CHECK_MS, ms - done));
}

/** Lets the `.then` after endSession run (it resolves on the microtask queue, which mock timers do not drive). */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

test('a-session-silent-for-the-timeout-is-ended-and-logged', async () => {
  const logs = captureLogs('info');
  const s = subject([channel('s1', 0, 100), channel('s1', 1, 7)]);
  const watch = new StallWatch(s, TIMEOUT_MS, logs.log);
  try {
    advance(CHECK_MS); // first sight of the session: 107 bytes at t=500
    advance(TIMEOUT_MS - CHECK_MS); // t=2000: silent for 1.5 s only
    assert.equal(s.ended.length, 0, 'ended before the timeout had passed');
    advance(CHECK_MS); // t=2500: silent for 2 s
    assert.equal(s.ended.length, 1);
    assert.equal(s.ended[0]?.session, 's1');
    await settle();
    const line = await logs.waitFor({ event: 'session-stalled', session: 's1' }, 1_000);
    assert.equal(line['level'], 40, 'a stall is a warning');
    assert.equal(line['channels'], 1, 'the log line carries the count endSession returned');
  } finally {
    watch.stop();
  }
});

test('one-moving-channel-keeps-its-quiet-siblings-alive', () => {
  const logs = captureLogs('info');
  const quiet = channel('s1', 0, 500);
  const busy = channel('s1', 1, 0);
  const s = subject([busy, quiet]); // the moving one first: a sum, not the last channel's count, decides
  const watch = new StallWatch(s, TIMEOUT_MS, logs.log);
  try {
    for (let t = 0; t < 4 * TIMEOUT_MS; t += CHECK_MS) {
      busy.bytesOut += 1; // a multifd channel working while the main channel is quiet
      advance(CHECK_MS);
    }
    assert.equal(s.ended.length, 0, 'a session with any byte moving is not stalled');
    advance(TIMEOUT_MS + CHECK_MS); // now every channel is quiet
    assert.deepEqual(s.ended.map((e) => e.session), ['s1']);
  } finally {
    watch.stop();
  }
});

test('only-the-silent-session-is-ended', () => {
  const logs = captureLogs('info');
  const moving = channel('s2', 0, 0);
  const s = subject([channel('s1', 0, 9), moving]);
  const watch = new StallWatch(s, TIMEOUT_MS, logs.log);
  try {
    for (let t = 0; t < TIMEOUT_MS + 2 * CHECK_MS; t += CHECK_MS) {
      moving.bytesIn += 10;
      advance(CHECK_MS);
    }
    assert.deepEqual(s.ended.map((e) => e.session), ['s1']);
  } finally {
    watch.stop();
  }
});

test('a-stalled-session-is-ended-once-per-timeout-not-on-every-check', () => {
  const logs = captureLogs('info');
  // endSession does not remove the channels at once (they are closing): the
  // watch must not call it again on the next check.
  const s = subject([channel('s1', 0, 1)]);
  const watch = new StallWatch(s, TIMEOUT_MS, logs.log);
  try {
    advance(CHECK_MS + TIMEOUT_MS); // ended at t=2500
    assert.equal(s.ended.length, 1);
    advance(TIMEOUT_MS); // t=4500: starts watching it afresh at t=3000
    assert.equal(s.ended.length, 1, 'ended again on the check right after');
  } finally {
    watch.stop();
  }
});

test('a-session-that-leaves-and-returns-is-watched-afresh', () => {
  const logs = captureLogs('info');
  const channels = [channel('s1', 0, 5)];
  const s = subject(channels);
  const watch = new StallWatch(s, TIMEOUT_MS, logs.log);
  try {
    advance(CHECK_MS + TIMEOUT_MS - CHECK_MS); // silent 1.5 s
    channels.length = 0; // its channels ended
    advance(CHECK_MS);
    channels.push(channel('s1', 0, 5)); // same id, same byte count: a new sighting
    advance(CHECK_MS);
    assert.equal(s.ended.length, 0, 'the silence before it left was counted against it');
  } finally {
    watch.stop();
  }
});

test('the-end-is-logged-after-an-asynchronous-endSession-settles', async () => {
  // With workers, endSession asks every worker and answers later.
  const logs = captureLogs('info');
  let answer!: (n: number) => void;
  const s = subject([channel('s1', 0, 1)], () => new Promise<number>((r) => { answer = r; }));
  const watch = new StallWatch(s, TIMEOUT_MS, logs.log);
  try {
    advance(CHECK_MS + TIMEOUT_MS);
    assert.equal(s.ended.length, 1);
    await settle();
    assert.equal(logs.find({ event: 'session-stalled' }).length, 0, 'logged before the workers answered');
    answer(3);
    const line = await logs.waitFor({ event: 'session-stalled', session: 's1' }, 1_000);
    assert.equal(line['channels'], 3);
  } finally {
    watch.stop();
  }
});

test('timeout-zero-disables-the-watch', () => {
  const logs = captureLogs('info');
  const s = subject([channel('s1', 0, 1)]);
  const watch = new StallWatch(s, 0, logs.log);
  try {
    advance(60 * 60_000);
    assert.equal(s.ended.length, 0);
  } finally {
    watch.stop();
  }
});

test('stop-ends-the-checks', () => {
  const logs = captureLogs('info');
  const s = subject([channel('s1', 0, 1)]);
  const watch = new StallWatch(s, TIMEOUT_MS, logs.log);
  advance(CHECK_MS);
  watch.stop();
  advance(10 * TIMEOUT_MS);
  assert.equal(s.ended.length, 0);
});

test('a-healing-session-is-never-stalled-and-its-time-starts-again-once-healed', () => {
  const logs = captureLogs('info');
  const c = channel('s1', 0, 100);
  c.healing = true;
  const s = subject([c]);
  const watch = new StallWatch(s, TIMEOUT_MS, logs.log);
  try {
    advance(4 * TIMEOUT_MS);
    assert.equal(s.ended.length, 0, 'no bytes for 8 s, but the link is healing: not a stall');
    c.healing = false; // healed, and then nothing moves
    advance(TIMEOUT_MS - CHECK_MS);
    assert.equal(s.ended.length, 0, 'the timeout counts from the heal, not from the last byte');
    advance(2 * CHECK_MS);
    assert.equal(s.ended.length, 1, 'a healed link that moves nothing is a stall');
  } finally {
    watch.stop();
  }
});
