/**
 * Real QEMU: a paused guest whose RAM holds `randomMiB` of random data
 * migrates through each path, single channel (precopy) and multifd 4. Fresh
 * QEMUs and a fresh path per migration; the destination listens on
 * 127.0.0.1 and the path connects it (direct: the source connects it).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { messageOf } from '../src/errors.js';
import { QemuVm, configureMigration, migrateAndWait, type MigrationPlan, type RandomImage } from '../src/qemu/qemu-vm.js';
import { beginCost, cpuPerGiB, maxPeakRss, type SideCost } from './gateway-cost.js';
import { treeUsage } from './proc-usage.js';
import type { PathSpec } from './paths/path.js';
import { rotated } from './stats.js';

export type QemuMode = 'single' | 'multifd4';

const PLANS: Record<QemuMode, MigrationPlan> = {
  single: { mode: 'precopy' },
  multifd4: { mode: 'multifd', multifdChannels: 4 },
};

/** Room below the random data (it is loaded at 16 MiB) and a little above it. */
const GUEST_EXTRA_MIB = 128;
const MIGRATION_TIMEOUT_MS = 30_000;

export interface QemuSample {
  path: string;
  mode: QemuMode;
  round: number;
  ok: boolean;
  /** Why it failed (ok false). */
  error?: string;
  /** QEMU's total-time, seconds. */
  seconds?: number;
  /** QEMU's setup-time, seconds: from the migrate command until every channel is connected and the first byte goes. */
  setupSeconds?: number | undefined;
  /** RAM bytes QEMU sent / total-time. */
  mbPerSec?: number;
  cpuSecondsPerGiB?: number | undefined;
  peakRssBytes?: number | undefined;
  sides?: SideCost[];
  /**
   * How many cores each QEMU kept busy on average over the migration (CPU
   * seconds / total-time). On a small machine this is the CPU the gateways
   * did not get: QEMU 7.2's multifd sender busy-waits for a free channel.
   */
  qemuCores?: { source: number; destination: number };
}

export interface QemuSetup {
  dir: string;
  binary: string;
  image: RandomImage;
  randomMiB: number;
}

export interface QemuCase {
  path: PathSpec;
  mode: QemuMode;
}

export async function runQemuMigrations(
  cases: readonly QemuCase[],
  setup: QemuSetup,
  o: { runs: number; say: (line: string) => void },
): Promise<QemuSample[]> {
  const samples: QemuSample[] = [];
  const modes = [...new Set(cases.map((c) => c.mode))];
  for (let round = 0; round < o.runs; round++) {
    for (const mode of modes) {
      for (const path of rotated(cases.filter((c) => c.mode === mode).map((c) => c.path), round)) {
        // A failed migration (stunnel with multifd fails about two in three
        // on channel order) is tried again, so that each median is over
        // `runs` completed migrations, not one or two; every attempt is kept
        // and counted in "completed k/n".
        for (let attempt = 1; attempt <= ATTEMPTS_PER_RUN; attempt++) {
          const s = await migrateOnce(path, mode, setup, round);
          samples.push(s);
          const tried = attempt > 1 ? ` (attempt ${attempt})` : '';
          o.say(`  run ${round + 1}/${o.runs}  ${mode.padEnd(8)} ${path.name.padEnd(10)} ${describe(s)}${tried}`);
          if (s.ok) break;
        }
      }
    }
  }
  return samples;
}

/** Attempts per path and round before the round is left without a figure for that path. */
const ATTEMPTS_PER_RUN = 6;

/** `count` multifd 4 migrations through `path`: how many complete. */
export async function runReliability(path: PathSpec, setup: QemuSetup, o: { count: number; say: (line: string) => void }): Promise<QemuSample[]> {
  const samples: QemuSample[] = [];
  for (let i = 0; i < o.count; i++) {
    const s = await migrateOnce(path, 'multifd4', setup, i);
    samples.push(s);
    o.say(`  multifd 4 through ${path.name} ${i + 1}/${o.count}: ${describe(s)}`);
  }
  return samples;
}

function describe(s: QemuSample): string {
  if (!s.ok) return `FAILED: ${s.error ?? 'unknown'}`;
  const cpu = s.cpuSecondsPerGiB === undefined ? '' : `, ${s.cpuSecondsPerGiB.toFixed(2)} CPU s/GiB`;
  const setup = s.setupSeconds === undefined ? '' : ` (setup ${(s.setupSeconds * 1000).toFixed(0)} ms)`;
  const q = s.qemuCores === undefined ? '' : `, QEMU cores ${s.qemuCores.source.toFixed(2)} source / ${s.qemuCores.destination.toFixed(2)} destination`;
  return `${(s.seconds ?? 0).toFixed(2)} s${setup}, ${(s.mbPerSec ?? 0).toFixed(0)} MB/s${cpu}${q}`;
}

async function migrateOnce(path: PathSpec, mode: QemuMode, setup: QemuSetup, round: number): Promise<QemuSample> {
  const plan = PLANS[mode];
  const base = { path: path.name, mode, round };
  const vms: QemuVm[] = [];
  const workDir = join(setup.dir, `qemu-${path.name}-${mode}-${round}`);
  try {
    await mkdir(workDir, { recursive: true });
    const common = { binary: setup.binary, memMiB: setup.randomMiB + GUEST_EXTRA_MIB };
    const src = await QemuVm.launch({ ...common, name: 'bench-src', loadFile: setup.image.path, workDir: await sub(workDir, 'src') });
    vms.push(src);
    const dst = await QemuVm.launch({ ...common, name: 'bench-dst', incoming: true, workDir: await sub(workDir, 'dst') });
    vms.push(dst);
    await configureMigration(src, plan);
    await configureMigration(dst, plan);
    const incoming = await dst.migrateIncoming('tcp:127.0.0.1:0');
    if (incoming === undefined) throw new Error('the destination QEMU reported no port');
    const running = await path.start(incoming);
    try {
      const meter = await beginCost(running);
      const qemuBefore = await Promise.all([treeUsage(src.pid), treeUsage(dst.pid)]);
      // A destination that rejects the stream exits, and the source may then
      // sit in "active" for ever (QEMU 7.2, channels out of order).
      const dstDied = dst.exited.then((x) => {
        const said = dst.stderr().split('\n').filter((l) => l.trim() !== '' && !l.includes('warning:')).slice(-2).join(' | ');
        throw new Error(`the destination QEMU exited (code ${x.code}): ${said}`);
      });
      dstDied.catch(() => undefined);
      const rejected = watchRejectedStream(dst);
      rejected.failed.catch(() => undefined);
      let result;
      try {
        result = await Promise.race([migrateAndWait(src, dst, `tcp:127.0.0.1:${running.port}`, plan, MIGRATION_TIMEOUT_MS), dstDied, rejected.failed]);
      } finally {
        rejected.stop();
      }
      const sides = await meter.end();
      const qemuAfter = await Promise.all([treeUsage(src.pid), treeUsage(dst.pid)]);
      const info = result.source;
      const ms = info['total-time'] ?? result.elapsedMs;
      const cores = (i: 0 | 1): number => (qemuAfter[i].cpuSeconds - qemuBefore[i].cpuSeconds) / (ms / 1000);
      const transferred = info.ram?.transferred ?? 0;
      return {
        ...base,
        ok: true,
        seconds: ms / 1000,
        setupSeconds: info['setup-time'] === undefined ? undefined : info['setup-time'] / 1000,
        mbPerSec: transferred / 1e6 / (ms / 1000),
        cpuSecondsPerGiB: cpuPerGiB(sides, transferred),
        peakRssBytes: maxPeakRss(sides),
        sides,
        qemuCores: { source: cores(0), destination: cores(1) },
      };
    } finally {
      // QEMUs first: a failed migration leaves channels that only end when QEMU goes.
      await Promise.allSettled(vms.map((vm) => vm.kill()));
      await running.stop();
    }
  } catch (e: unknown) {
    return { ...base, ok: false, error: messageOf(e).split('\n')[0] ?? 'unknown' };
  } finally {
    await Promise.allSettled(vms.map((vm) => vm.kill()));
  }
}

/**
 * A destination that got a multifd channel where it expected the main one
 * says so on stderr and may neither exit nor fail the source (which then
 * stays "active"): fail at once instead of waiting for the deadline.
 */
function watchRejectedStream(dst: QemuVm): { failed: Promise<never>; stop: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const failed = new Promise<never>((_, reject) => {
    timer = setInterval(() => {
      const line = dst.stderr().split('\n').find((l) => REJECTED_STREAM.test(l));
      if (line !== undefined) reject(new Error(`the destination QEMU rejected the stream: ${line.trim()}`));
    }, 200);
  });
  return { failed, stop: () => clearInterval(timer) };
}

const REJECTED_STREAM = /received packet magic|load of migration failed|multifd.*(error|failed)/i;

async function sub(dir: string, name: string): Promise<string> {
  const p = join(dir, name);
  await mkdir(p, { recursive: true });
  return p;
}
