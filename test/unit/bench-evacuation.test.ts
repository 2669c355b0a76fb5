import assert from 'node:assert/strict';
import { test } from 'node:test';
import { aggregateMbPerSec, lastCompletionSeconds, type EvacuatedGuest, type EvacuationSample } from '../../bench/evacuation.js';
import { judgeEvacuation, summarizeEvacuation } from '../../bench/evacuation-summary.js';

/** A guest that completed intact: started `offsetMs` after the first, took `seconds`, sent `mb` MB. */
const guest = (index: number, offsetMs: number, seconds: number, mb: number): EvacuatedGuest => ({
  index, ok: true, intact: true, startOffsetMs: offsetMs, seconds, transferredBytes: mb * 1e6,
});
const lost = (index: number): EvacuatedGuest => ({ index, ok: false, intact: false, startOffsetMs: 0, error: 'connection reset' });

/** A round of two guests whose last one completes at `seconds`, 100 MB each: aggregate 200 / seconds MB/s. */
function round(path: string, r: number, seconds: number, cpuSeconds = 1): EvacuationSample {
  return {
    path,
    round: r,
    guests: [guest(0, 0, seconds - 1, 100), guest(1, 500, seconds - 0.5, 100)],
    sides: path === 'direct' ? [] : [{ side: 'A', cpuSeconds, peakRssBytes: 0, processes: 1 }, { side: 'B', cpuSeconds, peakRssBytes: 0, processes: 1 }],
  };
}

test('the evacuation time runs from the first migrate command to the last completion', () => {
  // Guest 1 starts 0.5 s late and takes 3 s: done at 3.5 s, after guest 0 (3 s).
  const guests = [guest(0, 0, 3, 300), guest(1, 500, 3, 400)];
  assert.equal(lastCompletionSeconds(guests), 3.5);
  assert.equal(aggregateMbPerSec(guests), 700 / 3.5);
});

test('a round with a lost or damaged guest has no evacuation time and no aggregate', () => {
  assert.equal(lastCompletionSeconds([guest(0, 0, 3, 300), lost(1)]), undefined);
  assert.equal(aggregateMbPerSec([guest(0, 0, 3, 300), { ...guest(1, 0, 2, 300), intact: false }]), undefined);
  assert.equal(lastCompletionSeconds([]), undefined);
});

test('medians over rounds with every guest intact; lost migrations are counted, not averaged in', () => {
  const stunnelLost: EvacuationSample = { path: 'stunnel', round: 2, guests: [guest(0, 0, 1, 100), lost(1)], sides: [] };
  const rows = summarizeEvacuation([
    round('stunnel', 0, 4), round('vmgate', 0, 2), round('direct', 0, 1),
    round('stunnel', 1, 5), round('vmgate', 1, 4), round('direct', 1, 1),
    stunnelLost, round('vmgate', 2, 2.5), round('direct', 2, 1),
  ], 2);
  const stunnel = rows.find((r) => r.path === 'stunnel');
  const vmgate = rows.find((r) => r.path === 'vmgate');
  assert.deepEqual([stunnel?.rounds, stunnel?.roundsIntact, stunnel?.migrations, stunnel?.intact], [3, 2, 6, 5]);
  assert.equal(stunnel?.seconds, 4.5);
  assert.equal(stunnel?.mbPerSec, (200 / 4 + 200 / 5) / 2);
  assert.equal(vmgate?.seconds, 2.5);
  assert.equal(vmgate?.mbPerSec, 200 / 2.5);
  // Ratio of medians; round by round only where both paths have a figure.
  assert.ok(Math.abs((vmgate?.vsStunnel?.speed ?? 0) - 80 / 45) < 1e-9);
  assert.deepEqual(vmgate?.vsStunnel?.rounds?.speed.map((v) => v.toFixed(2)), ['2.00', '1.25']);
  assert.equal(vmgate?.vsDirect?.speed, 0.4);
  // CPU per GiB: 2 s of both gateways over 200 MB.
  assert.ok(Math.abs((vmgate?.cpuSecondsPerGiB ?? 0) - 2 / (200e6 / 2 ** 30)) < 1e-9);

  const [speed, intact] = judgeEvacuation(rows, 2);
  assert.equal(speed?.status, 'pass');
  assert.equal(speed?.measured, '1.78x');
  assert.match(speed?.note ?? '', /stunnel lost 1 of 6 migrations/);
  assert.match(speed?.note ?? '', /2 of 2 meet it/);
  assert.deepEqual([intact?.status, intact?.measured], ['pass', '6/6']);
});

test('below 1.2x fails; a damaged vmgate guest fails the intact target', () => {
  const rows = summarizeEvacuation([
    round('stunnel', 0, 4),
    { path: 'vmgate', round: 0, guests: [guest(0, 0, 3.5, 100), { ...guest(1, 0, 3.5, 100), intact: false, error: 'the destination RAM differs from the source' }], sides: [] },
    round('stunnel', 1, 4), round('vmgate', 1, 3.6),
  ], 2);
  const [speed, intact] = judgeEvacuation(rows, 2);
  assert.equal(speed?.status, 'FAIL');
  assert.equal(speed?.measured, `${(4 / 3.6).toFixed(2)}x`);
  assert.deepEqual([intact?.status, intact?.measured], ['FAIL', '3/4']);
});

test('without a vmgate or stunnel figure both targets are "not measured", never passed', () => {
  for (const rows of [[], summarizeEvacuation([round('direct', 0, 1)], 2), summarizeEvacuation([round('vmgate', 0, 2)], 2)]) {
    const [speed] = judgeEvacuation(rows, 2);
    assert.equal(speed?.status, 'not measured');
  }
  const [, intact] = judgeEvacuation([], 2);
  assert.equal(intact?.status, 'not measured');
  // A round that could not start counts all its migrations as not intact.
  const failedStart = summarizeEvacuation([{ path: 'vmgate', round: 0, guests: [], sides: [], error: 'QEMU did not start' }], 2);
  assert.deepEqual(judgeEvacuation(failedStart, 2).map((t) => t.status), ['not measured', 'FAIL']);
});

test('a vmgate-wN row gets its own pair of targets; vmgate is always listed', () => {
  const rows = summarizeEvacuation([round('stunnel', 0, 4), round('vmgate-w2', 0, 3)], 2);
  const results = judgeEvacuation(rows, 2);
  assert.deepEqual(results.map((t) => t.status), ['not measured', 'not measured', 'pass', 'pass']);
  assert.match(results[2]?.target ?? '', /\(vmgate-w2\)/);
  assert.equal(results[2]?.measured, `${(4 / 3).toFixed(2)}x`);
});
