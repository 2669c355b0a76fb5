/**
 * WorkerSlots, the primary's worker bookkeeping, with stand-in worker
 * handles and Node's mock timers: round robin over usable workers, and the
 * replacement of a dead one after a back-off that doubles while
 * replacements die young.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, mock, test } from 'node:test';
import type { WorkerHandle } from '../../src/workers/worker-handle.js';
import { WorkerSlots } from '../../src/workers/worker-slots.js';
import { captureLogs, type CapturedLogs } from '../helpers/log-capture.js';

/** The parts of a WorkerHandle that WorkerSlots reads. */
interface FakeWorker {
  pid: number;
  usable: boolean;
  link: { connected: boolean };
  ready: Promise<void>;
  killed: boolean;
  kill(): void;
  start(): void;
  fail(): void;
}

let nextPid = 1000;

function fakeWorker(): FakeWorker {
  let settle: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  const ready = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  ready.catch(() => undefined);
  const w: FakeWorker = {
    pid: nextPid++,
    usable: false,
    link: { connected: true },
    ready,
    killed: false,
    kill: () => {
      w.killed = true;
    },
    start: () => {
      w.usable = true;
      settle?.resolve();
    },
    fail: () => settle?.reject(new Error('the config no longer loads')),
  };
  return w;
}

let spawned: Array<{ slot: number; w: FakeWorker }>;
let stopping: boolean;
let logs: CapturedLogs;

function slots(size: number): WorkerSlots {
  return new WorkerSlots(size, (slot) => {
    const w = fakeWorker();
    spawned.push({ slot, w });
    return w as unknown as WorkerHandle;
  }, () => stopping, logs.log);
}

/** Lets promise callbacks (ready.then) run. */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

beforeEach(() => {
  spawned = [];
  stopping = false;
  logs = captureLogs('debug');
  mock.timers.enable({ apis: ['setTimeout'] });
});

afterEach(() => {
  mock.timers.reset();
});

test('startAll starts one worker per slot and resolves once every one is ready', async () => {
  const s = slots(3);
  let done = false;
  const all = s.startAll().then(() => (done = true));
  assert.deepEqual(spawned.map((x) => x.slot), [0, 1, 2]);
  spawned[0]?.w.start();
  spawned[1]?.w.start();
  await settle();
  assert.equal(done, false, 'not before the last worker is ready');
  spawned[2]?.w.start();
  await all;
  assert.deepEqual(s.pids(), spawned.map((x) => x.w.pid));
});

test('pick() goes round robin over the usable workers and skips the others', async () => {
  const s = slots(3);
  const all = s.startAll();
  for (const x of spawned) x.w.start();
  await all;
  const [a, b, c] = spawned.map((x) => x.w.pid);
  const picks = (n: number): number[] => Array.from({ length: n }, () => s.pick()?.pid ?? -1);
  assert.deepEqual(picks(4), [a, b, c, a]);
  const second = spawned[1]?.w;
  assert.ok(second);
  second.usable = false; // stopping, or its IPC closed
  assert.deepEqual(picks(4), [c, a, c, a]);
  assert.deepEqual(s.pids(), [a, c]);
  for (const x of spawned) x.w.usable = false;
  assert.equal(s.pick(), undefined, 'no usable worker: nobody is picked');
});

test('a dead worker is replaced after a back-off that doubles while replacements die young, and resets after a healthy life', async () => {
  const s = slots(2);
  const all = s.startAll();
  for (const x of spawned) x.w.start();
  await all;
  const first = spawned[0]?.w;
  assert.ok(first);

  /** Vacates slot 0 of `w`, asks for a replacement, and returns after how many ms it was spawned. */
  const replaceAfter = async (w: FakeWorker, livedMs: number): Promise<number> => {
    s.vacate(0, w as unknown as WorkerHandle);
    const before = spawned.length;
    s.replace(0, livedMs);
    let waited = 0;
    while (spawned.length === before) {
      assert.ok(waited <= 60_000, 'no replacement within the longest back-off');
      mock.timers.tick(100);
      waited += 100;
    }
    const w2 = spawned.at(-1)?.w;
    assert.ok(w2);
    assert.equal(spawned.at(-1)?.slot, 0);
    w2.start();
    await settle();
    return waited;
  };

  const d1 = await replaceAfter(first, 50);
  const d2 = await replaceAfter(spawned.at(-1)?.w as FakeWorker, 50);
  const d3 = await replaceAfter(spawned.at(-1)?.w as FakeWorker, 10_000);
  assert.deepEqual([d1, d2, d3], [400, 800, 200]);
  assert.equal(s.all().length, 2);
  assert.equal(logs.find({ event: 'worker-started' }).length, 3);
});

test('a replacement that fails to start is killed, logged with its code, and tried again later', async () => {
  const s = slots(1);
  const all = s.startAll();
  spawned[0]?.w.start();
  await all;
  const dead = spawned[0]?.w as FakeWorker;
  s.vacate(0, dead as unknown as WorkerHandle);
  s.replace(0, 0);
  mock.timers.tick(400);
  const broken = spawned[1]?.w;
  assert.ok(broken);
  broken.fail();
  await settle();
  assert.equal(broken.killed, true);
  assert.equal(s.all().length, 0, 'the failed replacement left its slot');
  const failed = logs.find({ event: 'worker-start-failed' });
  assert.equal(failed.length, 1);
  assert.equal(failed[0]?.['cause'], 'internal');
  mock.timers.tick(799);
  assert.equal(spawned.length, 2, 'not before the doubled back-off');
  mock.timers.tick(1);
  assert.equal(spawned.length, 3, 'tried again');
});

test('no replacement is started once the pool is stopping', () => {
  const s = slots(1);
  void s.startAll();
  const w = spawned[0]?.w as FakeWorker;
  s.vacate(0, w as unknown as WorkerHandle);
  s.replace(0, 0);
  stopping = true;
  mock.timers.tick(60_000);
  assert.equal(spawned.length, 1);
  assert.equal(s.all().length, 0);
});
