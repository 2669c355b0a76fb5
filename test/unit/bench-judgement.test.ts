import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { QemuSample } from '../../bench/qemu-migration.js';
import { summarizeQemu } from '../../bench/summary.js';
import { judgeTargets, type TargetInput, type TargetResult } from '../../bench/targets.js';

/** One migration of 512 MiB that took `seconds`; `ok: false` for a failed attempt. */
function migration(path: string, round: number, seconds: number | undefined, cores = { source: 0.7, destination: 0.2 }): QemuSample {
  if (seconds === undefined) return { path, mode: 'multifd4', round, ok: false, error: 'channels out of order' };
  return { path, mode: 'multifd4', round, ok: true, seconds, mbPerSec: 536.9 / seconds, cpuSecondsPerGiB: 2 * seconds, qemuCores: cores };
}

const nothingMeasured: TargetInput = {
  synthetic: [],
  qemu: [],
  reliability: undefined,
  reliabilityRequired: 20,
  handshake: [],
  memory: [],
  workers: { available: true, count: 2 },
};

function find(results: TargetResult[], start: string): TargetResult {
  const r = results.find((t) => t.target.startsWith(start));
  assert.ok(r, `no target starting "${start}" in ${results.map((t) => t.target).join('; ')}`);
  return r;
}

test('QEMU medians are over completed migrations; failed attempts count only in runs', () => {
  const rows = summarizeQemu([
    migration('stunnel', 0, undefined),
    migration('stunnel', 0, 1.0),
    migration('vmgate', 0, 0.8, { source: 0.75, destination: 0.1 }),
    migration('stunnel', 1, undefined),
    migration('stunnel', 1, undefined),
    migration('stunnel', 1, 1.2),
    migration('vmgate', 1, 1.0, { source: 0.8, destination: 0.14 }),
    migration('stunnel', 2, 1.1),
    migration('vmgate', 2, 0.9, { source: 0.7, destination: 0.12 }),
  ]);
  const stunnel = rows.find((r) => r.path === 'stunnel');
  const vmgate = rows.find((r) => r.path === 'vmgate');
  assert.deepEqual([stunnel?.runs, stunnel?.completed, stunnel?.seconds], [6, 3, 1.1]);
  assert.deepEqual([vmgate?.runs, vmgate?.completed, vmgate?.seconds], [3, 3, 0.9]);
  assert.equal(vmgate?.sourceQemuCores, 0.75);
  assert.equal(vmgate?.destinationQemuCores, 0.12);
  // Ratio of the medians, and round by round against the completed attempt of the same round.
  assert.ok(Math.abs((vmgate?.vsStunnel?.speed ?? 0) - 1.1 / 0.9) < 1e-9);
  assert.deepEqual(vmgate?.vsStunnel?.rounds?.speed.map((v) => v.toFixed(3)), ['1.250', '1.200', '1.222']);
});

test('a target whose figure is missing is "not measured", never passed', () => {
  const results = judgeTargets(nothingMeasured);
  assert.ok(results.length >= 10);
  for (const r of results) assert.equal(r.status, 'not measured', `${r.target}: ${r.status}`);
});

test('a QEMU ratio is judged on the median and notes how many rounds met it', () => {
  const qemu = summarizeQemu([
    migration('stunnel', 0, 1.3),
    migration('vmgate', 0, 1.0),
    migration('stunnel', 1, 1.0),
    migration('vmgate', 1, 0.9),
    migration('stunnel', 2, 1.0),
    migration('vmgate', 2, 0.7),
  ]);
  const multifd = find(judgeTargets({ ...nothingMeasured, qemu }), 'QEMU multifd4: migration');
  // Medians 1.0 / 0.9 = 1.11x fails although one round (1.43x) and another (1.30x) meet it.
  assert.equal(multifd.status, 'FAIL');
  assert.equal(multifd.measured, '1.11x');
  assert.equal(multifd.note, 'rounds 1.11x-1.43x, 2 of 3 meet it');
});

test('QEMU: with no completed stunnel migration there is nothing to compare with', () => {
  const qemu = summarizeQemu([migration('stunnel', 0, undefined), migration('vmgate', 0, 0.8)]);
  const multifd = find(judgeTargets({ ...nothingMeasured, qemu }), 'QEMU multifd4: migration');
  assert.equal(multifd.status, 'not measured');
  // The note is the bench report's text for the reader: the product.
  assert.match(multifd.note ?? '', /stunnel completed 0\/1/);
});

test('multifd reliability: too few runs is not measured, one failure fails it', () => {
  const few = find(judgeTargets({ ...nothingMeasured, reliability: { path: 'vmgate', runs: 5, completed: 5 } }), 'QEMU multifd 4 through vmgate completes');
  assert.equal(few.status, 'not measured');
  const failed = find(judgeTargets({ ...nothingMeasured, reliability: { path: 'vmgate', runs: 20, completed: 19 } }), 'QEMU multifd 4 through vmgate completes');
  assert.deepEqual([failed.status, failed.measured], ['FAIL', '19/20']);
  const all = find(judgeTargets({ ...nothingMeasured, reliability: { path: 'vmgate', runs: 25, completed: 25 } }), 'QEMU multifd 4 through vmgate completes');
  assert.equal(all.status, 'pass');
});
