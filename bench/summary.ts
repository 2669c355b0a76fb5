/** Medians per path and case, and each vmgate figure as a ratio to stunnel and to direct. */
import type { HandshakeSample } from './handshake.js';
import type { GrowthSample, IdleSample } from './memory.js';
import type { QemuMode, QemuSample } from './qemu-migration.js';
import { median, ratio } from './stats.js';
import type { SyntheticSample } from './synthetic.js';

export interface Ratios {
  /** For throughput: vmgate / other (above 1 is better); for times: other / vmgate (above 1 is faster). */
  speed?: number | undefined;
  /** CPU per GiB: vmgate / other (below 1 is better). */
  cpu?: number | undefined;
  /** The same ratios round by round (both paths measured in that round), to show how much one run's figures move. */
  rounds?: { speed: number[]; cpu: number[] };
}

/** Ratios of `row`'s samples to `other`'s, round by round, for the rounds both have. */
export function perRound<S extends { path: string; round: number }>(samples: readonly S[], row: string, other: string, compare: (a: S, b: S) => Ratios): { speed: number[]; cpu: number[] } {
  const out = { speed: [] as number[], cpu: [] as number[] };
  for (const a of samples.filter((x) => x.path === row)) {
    const b = samples.find((x) => x.path === other && x.round === a.round);
    if (b === undefined) continue;
    const r = compare(a, b);
    if (r.speed !== undefined) out.speed.push(r.speed);
    if (r.cpu !== undefined) out.cpu.push(r.cpu);
  }
  return out;
}

export interface SyntheticRow {
  streams: number;
  path: string;
  runs: number;
  mbPerSec: number | undefined;
  cpuSecondsPerGiB: number | undefined;
  peakRssBytes: number | undefined;
  /** Fewest processes that held the channels in any run, per gateway (vmgate, several streams). */
  channelProcesses?: { A: number; B: number };
  vsStunnel?: Ratios;
  vsDirect?: Ratios;
}

export interface QemuRow {
  mode: QemuMode;
  path: string;
  runs: number;
  completed: number;
  seconds: number | undefined;
  mbPerSec: number | undefined;
  cpuSecondsPerGiB: number | undefined;
  /** Median cores each QEMU kept busy over the migration. */
  sourceQemuCores: number | undefined;
  destinationQemuCores: number | undefined;
  vsStunnel?: Ratios;
  vsDirect?: Ratios;
}

export interface HandshakeRow {
  path: string;
  runs: number;
  channels: number;
  ms: number | undefined;
  vsStunnel?: Ratios;
  vsDirect?: Ratios;
}

export interface MemoryRow {
  path: string;
  /** Largest of both gateways over all runs. */
  idleRssBytes: number | undefined;
  idleChannels: number | undefined;
  growthBytes: number | undefined;
  growthTransferBytes: number | undefined;
}

const isVmgate = (path: string): boolean => path.startsWith('vmgate');

/** Sets vsStunnel and vsDirect on the vmgate rows of one case (rows of the same streams/mode). */
export function attachRatios<R extends { path: string; vsStunnel?: Ratios; vsDirect?: Ratios }>(rows: readonly R[], compare: (row: R, other: R) => Ratios): void {
  const stunnel = rows.find((r) => r.path === 'stunnel');
  const direct = rows.find((r) => r.path === 'direct');
  for (const row of rows.filter((r) => isVmgate(r.path))) {
    if (stunnel) row.vsStunnel = compare(row, stunnel);
    if (direct) row.vsDirect = compare(row, direct);
  }
}
const names = <T extends { path: string }>(xs: readonly T[]): string[] => [...new Set(xs.map((x) => x.path))];

export function summarizeSynthetic(samples: readonly SyntheticSample[]): SyntheticRow[] {
  const rows: SyntheticRow[] = [];
  for (const streams of [...new Set(samples.map((s) => s.streams))]) {
    const these = samples.filter((s) => s.streams === streams);
    const byPath = new Map<string, SyntheticRow>();
    for (const path of names(these)) {
      const ss = these.filter((s) => s.path === path);
      const spread = ss.map((s) => s.channelProcesses).filter((x) => x !== undefined);
      const row: SyntheticRow = {
        streams,
        path,
        runs: ss.length,
        mbPerSec: median(ss.map((s) => s.mbPerSec)),
        cpuSecondsPerGiB: median(ss.map((s) => s.cpuSecondsPerGiB)),
        peakRssBytes: median(ss.map((s) => s.peakRssBytes)),
        ...(spread.length > 0 ? { channelProcesses: { A: Math.min(...spread.map((x) => x.A)), B: Math.min(...spread.map((x) => x.B)) } } : {}),
      };
      byPath.set(path, row);
      rows.push(row);
    }
    attachRatios([...byPath.values()], (row, other) => ({
      speed: ratio(row.mbPerSec, other.mbPerSec),
      cpu: ratio(row.cpuSecondsPerGiB, other.cpuSecondsPerGiB),
      rounds: perRound(these, row.path, other.path, (a, b) => ({ speed: ratio(a.mbPerSec, b.mbPerSec), cpu: ratio(a.cpuSecondsPerGiB, b.cpuSecondsPerGiB) })),
    }));
  }
  return rows;
}

export function summarizeQemu(samples: readonly QemuSample[]): QemuRow[] {
  const rows: QemuRow[] = [];
  for (const mode of [...new Set(samples.map((s) => s.mode))]) {
    const these = samples.filter((s) => s.mode === mode);
    const byPath = new Map<string, QemuRow>();
    for (const path of names(these)) {
      const ss = these.filter((s) => s.path === path);
      const ok = ss.filter((s) => s.ok);
      const row: QemuRow = {
        mode,
        path,
        runs: ss.length,
        completed: ok.length,
        seconds: median(ok.map((s) => s.seconds)),
        mbPerSec: median(ok.map((s) => s.mbPerSec)),
        cpuSecondsPerGiB: median(ok.map((s) => s.cpuSecondsPerGiB)),
        sourceQemuCores: median(ok.map((s) => s.qemuCores?.source)),
        destinationQemuCores: median(ok.map((s) => s.qemuCores?.destination)),
      };
      byPath.set(path, row);
      rows.push(row);
    }
    const completed = these.filter((x) => x.ok);
    attachRatios([...byPath.values()], (row, other) => ({
      speed: ratio(other.seconds, row.seconds),
      cpu: ratio(row.cpuSecondsPerGiB, other.cpuSecondsPerGiB),
      rounds: perRound(completed, row.path, other.path, (a, b) => ({ speed: ratio(b.seconds, a.seconds), cpu: ratio(a.cpuSecondsPerGiB, b.cpuSecondsPerGiB) })),
    }));
  }
  return rows;
}

export function summarizeHandshakes(samples: readonly HandshakeSample[]): HandshakeRow[] {
  const rows = names(samples).map((path): HandshakeRow => {
    const ss = samples.filter((s) => s.path === path);
    return { path, runs: ss.length, channels: ss[0]?.channels ?? 0, ms: median(ss.map((s) => s.ms)) };
  });
  attachRatios(rows, (row, other) => ({ speed: ratio(other.ms, row.ms) }));
  return rows;
}

export function summarizeMemory(idle: readonly IdleSample[], growth: readonly GrowthSample[]): MemoryRow[] {
  return names([...idle, ...growth]).map((path) => {
    const i = idle.filter((s) => s.path === path);
    const g = growth.filter((s) => s.path === path);
    const worst = (xs: number[]): number | undefined => (xs.length === 0 ? undefined : Math.max(...xs));
    return {
      path,
      idleRssBytes: worst(i.map((s) => Math.max(s.rssBytes.A, s.rssBytes.B))),
      idleChannels: i[0]?.channels,
      growthBytes: worst(g.map((s) => Math.max(s.growthBytes.A, s.growthBytes.B))),
      growthTransferBytes: g[0]?.bytes,
    };
  });
}
