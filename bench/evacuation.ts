/**
 * An evacuation: `migrations` precopy migrations of real, paused QEMU guests
 * started at once through one path, each to its own destination QEMU on its
 * own port of a range (as libvirt assigns them from migration_port_min..max).
 * Fresh QEMUs and a fresh path per round and path; the path order rotates
 * each round. Measured: the time until the last migration completes, the
 * aggregate throughput, and whether every guest's random RAM arrived intact.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { messageOf } from '../src/errors.js';
import { GUEST_LOAD_ADDR, QemuVm, configureMigration, migrateAndWait, type MigrationPlan, type RandomImage } from '../src/qemu/qemu-vm.js';
import { beginCost, cpuPerGiB, type SideCost } from './gateway-cost.js';
import { freePortRange } from './paths/free-port.js';
import { RANGE_GATEWAY_HOST, type PathSpec, type RunningRange } from './paths/path.js';
import { rotated } from './stats.js';

const PLAN: MigrationPlan = { mode: 'precopy' };
/** Room below the random data (it is loaded at 16 MiB) and a little above it. */
const GUEST_EXTRA_MIB = 128;
/** Several migrations share two cores with their gateways: far more than one alone needs. */
const MIGRATION_TIMEOUT_MS = 180_000;

/** One migration of an evacuation round. */
export interface EvacuatedGuest {
  /** Offset in the port range. */
  index: number;
  ok: boolean;
  /** The destination's random RAM hashed equal to the image (ok migrations only). */
  intact: boolean;
  error?: string;
  /** ms from the first migrate command of the round to this migrate command. */
  startOffsetMs?: number;
  /** QEMU's total-time, seconds. */
  seconds?: number;
  /** RAM bytes QEMU sent. */
  transferredBytes?: number;
}

export interface EvacuationSample {
  path: string;
  round: number;
  guests: EvacuatedGuest[];
  /** Gateway CPU over the round (none for direct). */
  sides: SideCost[];
  /** Why the round could not start (QEMU or path start failed); guests is then empty. */
  error?: string;
}

export interface EvacuationSetup {
  dir: string;
  binary: string;
  image: RandomImage;
  randomMiB: number;
}

export async function runEvacuations(
  paths: readonly PathSpec[],
  setup: EvacuationSetup,
  o: { runs: number; migrations: number; say: (line: string) => void },
): Promise<EvacuationSample[]> {
  const samples: EvacuationSample[] = [];
  for (let round = 0; round < o.runs; round++) {
    for (const path of rotated(paths, round)) {
      const s = await evacuateOnce(path, setup, o.migrations, round);
      samples.push(s);
      o.say(`  run ${round + 1}/${o.runs}  ${path.name.padEnd(10)} ${describeEvacuation(s, o.migrations)}`);
    }
  }
  return samples;
}

function describeEvacuation(s: EvacuationSample, migrations: number): string {
  if (s.error !== undefined) return `FAILED to start: ${s.error}`;
  const intact = s.guests.filter((g) => g.intact).length;
  const last = lastCompletionSeconds(s.guests);
  const agg = aggregateMbPerSec(s.guests);
  const times = s.guests.filter((g) => g.ok).map((g) => g.seconds ?? 0);
  const spread = times.length === 0 ? '' : ` (each ${Math.min(...times).toFixed(2)}-${Math.max(...times).toFixed(2)} s)`;
  const errors = s.guests.filter((g) => g.error !== undefined).map((g) => `#${g.index}: ${g.error}`);
  const figures = last === undefined ? 'no figure' : `last done after ${last.toFixed(2)} s, ${(agg ?? 0).toFixed(0)} MB/s aggregate${spread}`;
  return `${intact}/${migrations} intact, ${figures}${errors.length > 0 ? `; ${errors.join('; ')}` : ''}`;
}

/**
 * Seconds from the first migrate command to the last completion, from each
 * migration's start offset and QEMU's total-time; undefined unless every
 * migration of the round completed intact (a round with a lost guest has no
 * evacuation time).
 */
export function lastCompletionSeconds(guests: readonly EvacuatedGuest[]): number | undefined {
  if (guests.length === 0 || guests.some((g) => !g.intact || g.seconds === undefined)) return undefined;
  return Math.max(...guests.map((g) => (g.startOffsetMs ?? 0) / 1000 + (g.seconds ?? 0)));
}

/** All guests' RAM bytes sent over the time until the last completed, in MB/s (10^6); undefined when that time is. */
export function aggregateMbPerSec(guests: readonly EvacuatedGuest[]): number | undefined {
  const seconds = lastCompletionSeconds(guests);
  if (seconds === undefined || seconds <= 0) return undefined;
  return guests.reduce((n, g) => n + (g.transferredBytes ?? 0), 0) / 1e6 / seconds;
}

async function evacuateOnce(path: PathSpec, setup: EvacuationSetup, n: number, round: number): Promise<EvacuationSample> {
  const base = { path: path.name, round };
  const vms: QemuVm[] = [];
  let running: RunningRange | undefined;
  try {
    const first = await freePortRange(n, ['127.0.0.1', RANGE_GATEWAY_HOST]);
    const workDir = join(setup.dir, `evacuation-${path.name}-${round}`);
    const common = { binary: setup.binary, memMiB: setup.randomMiB + GUEST_EXTRA_MIB };
    // allSettled: a QEMU that fails to start must not leave its siblings starting unseen by the clean-up below.
    const launched = await Promise.allSettled(Array.from({ length: n }, async (_, i) => {
      const src = await QemuVm.launch({ ...common, name: `evac-src-${i}`, loadFile: setup.image.path, workDir: await sub(workDir, `src-${i}`) });
      vms.push(src);
      const dst = await QemuVm.launch({ ...common, name: `evac-dst-${i}`, incoming: true, workDir: await sub(workDir, `dst-${i}`) });
      vms.push(dst);
      await configureMigration(src, PLAN);
      await configureMigration(dst, PLAN);
      await dst.migrateIncoming(`tcp:127.0.0.1:${first + i}`);
      return { src, dst, port: first + i };
    }));
    const pairs = launched.map((l) => {
      if (l.status === 'rejected') throw l.reason;
      return l.value;
    });
    running = await path.startRange(first, n);
    const meter = await beginCost(running);
    const host = running.host;
    const t0 = Date.now();
    const guests = await Promise.all(pairs.map(async ({ src, dst, port }, index): Promise<EvacuatedGuest> => {
      const startOffsetMs = Date.now() - t0;
      // A destination that rejects the stream exits; the source may then sit in "active" until the deadline.
      const dstDied = dst.exited.then((x) => {
        throw new Error(`the destination QEMU exited (code ${x.code}): ${dst.stderr().trim().split('\n').slice(-1)[0] ?? ''}`);
      });
      dstDied.catch(() => undefined);
      try {
        const r = await Promise.race([migrateAndWait(src, dst, `tcp:${host}:${port}`, PLAN, MIGRATION_TIMEOUT_MS), dstDied]);
        const ms = r.source['total-time'] ?? r.elapsedMs;
        return { index, ok: true, intact: false, startOffsetMs, seconds: ms / 1000, transferredBytes: r.source.ram?.transferred ?? 0 };
      } catch (e: unknown) {
        return { index, ok: false, intact: false, startOffsetMs, error: messageOf(e).split('\n')[0] ?? 'unknown' };
      }
    }));
    const sides = await meter.end();
    // Outside the timed part: the destination's random RAM against the image.
    for (const [i, g] of guests.entries()) {
      const dst = pairs[i]?.dst;
      if (!g.ok || dst === undefined) continue;
      g.intact = (await dst.ramHash(GUEST_LOAD_ADDR, setup.image.size)) === setup.image.sha256;
      if (!g.intact) g.error = 'the destination RAM differs from the source';
    }
    return { ...base, guests, sides };
  } catch (e: unknown) {
    return { ...base, guests: [], sides: [], error: messageOf(e).split('\n')[0] ?? 'unknown' };
  } finally {
    // QEMUs first: a failed migration leaves channels that only end when QEMU goes.
    await Promise.allSettled(vms.map((vm) => vm.kill()));
    await running?.stop();
  }
}

/** Gateway CPU seconds per GiB carried over the round; undefined without gateways or without a complete round. */
export function evacuationCpuPerGiB(s: EvacuationSample): number | undefined {
  if (lastCompletionSeconds(s.guests) === undefined) return undefined;
  return cpuPerGiB(s.sides, s.guests.reduce((n, g) => n + (g.transferredBytes ?? 0), 0));
}

async function sub(dir: string, name: string): Promise<string> {
  const p = join(dir, name);
  await mkdir(p, { recursive: true });
  return p;
}
