/**
 * The evacuation figure per path (medians over rounds in which every guest
 * arrived intact), vmgate's ratio to stunnel and direct, and its two targets:
 * aggregate throughput at least 1.2x stunnel's, and every migration intact.
 */
import { aggregateMbPerSec, evacuationCpuPerGiB, lastCompletionSeconds, type EvacuationSample } from './evacuation.js';
import { median, ratio } from './stats.js';
import { attachRatios, perRound, type Ratios } from './summary.js';
import { judgeRatio, type TargetResult } from './targets.js';

const EVACUATION_TARGET_RATIO = 1.2;

export interface EvacuationRow {
  path: string;
  rounds: number;
  /** Rounds in which every migration completed with its RAM intact: the rounds the figures come from. */
  roundsIntact: number;
  migrations: number;
  /** Migrations that completed with the destination's RAM equal to the source's. */
  intact: number;
  /** Median seconds until the last migration of a round completed. */
  seconds: number | undefined;
  /** Median aggregate MB/s (all guests' bytes / time until the last completed). */
  mbPerSec: number | undefined;
  cpuSecondsPerGiB: number | undefined;
  vsStunnel?: Ratios;
  vsDirect?: Ratios;
}

interface Figures {
  path: string;
  round: number;
  seconds: number | undefined;
  mbPerSec: number | undefined;
  cpu: number | undefined;
}

export function summarizeEvacuation(samples: readonly EvacuationSample[], migrations: number): EvacuationRow[] {
  // A round that could not start still counts its migrations as not intact.
  const guestsOf = (s: EvacuationSample): number => (s.error !== undefined ? migrations : s.guests.length);
  const figures: Figures[] = samples.map((s) => ({
    path: s.path,
    round: s.round,
    seconds: lastCompletionSeconds(s.guests),
    mbPerSec: aggregateMbPerSec(s.guests),
    cpu: evacuationCpuPerGiB(s),
  }));
  const complete = figures.filter((f) => f.mbPerSec !== undefined);
  const rows = [...new Set(samples.map((s) => s.path))].map((path): EvacuationRow => {
    const ss = samples.filter((s) => s.path === path);
    const ok = complete.filter((f) => f.path === path);
    return {
      path,
      rounds: ss.length,
      roundsIntact: ok.length,
      migrations: ss.reduce((n, s) => n + guestsOf(s), 0),
      intact: ss.reduce((n, s) => n + s.guests.filter((g) => g.intact).length, 0),
      seconds: median(ok.map((f) => f.seconds)),
      mbPerSec: median(ok.map((f) => f.mbPerSec)),
      cpuSecondsPerGiB: median(ok.map((f) => f.cpu)),
    };
  });
  attachRatios(rows, (row, other) => ({
    speed: ratio(row.mbPerSec, other.mbPerSec),
    cpu: ratio(row.cpuSecondsPerGiB, other.cpuSecondsPerGiB),
    rounds: perRound(complete, row.path, other.path, (a, b) => ({ speed: ratio(a.mbPerSec, b.mbPerSec), cpu: ratio(a.cpu, b.cpu) })),
  }));
  return rows;
}

/** The targets for `vmgate` (always listed) and for any other vmgate row measured (vmgate-wN). */
export function judgeEvacuation(rows: readonly EvacuationRow[], migrations: number): TargetResult[] {
  const stunnel = rows.find((r) => r.path === 'stunnel');
  const ok = (v: number): boolean => v >= EVACUATION_TARGET_RATIO;
  const lost = stunnel !== undefined && stunnel.intact < stunnel.migrations ? `stunnel lost ${stunnel.migrations - stunnel.intact} of ${stunnel.migrations} migrations` : undefined;
  const paths = ['vmgate', ...rows.map((r) => r.path).filter((p) => p.startsWith('vmgate-w'))];
  const out: TargetResult[] = [];
  for (const path of paths) {
    const row = rows.find((r) => r.path === path);
    const label = path === 'vmgate' ? '' : ` (${path})`;
    const ratioTarget = judgeRatio(`evacuation, ${migrations} precopy at once${label}: aggregate >= ${EVACUATION_TARGET_RATIO}x stunnel`, row?.vsStunnel, 'speed', ok);
    const notes = [ratioTarget.note, lost].filter((n) => n !== undefined);
    out.push({ ...ratioTarget, ...(notes.length > 0 ? { note: notes.join('; ') } : {}) });
    const target = `evacuation through ${path}: every migration intact (RAM equal)`;
    if (row === undefined || row.migrations === 0) out.push({ target, measured: '-', status: 'not measured' });
    else out.push({ target, measured: `${row.intact}/${row.migrations}`, status: row.intact === row.migrations ? 'pass' : 'FAIL' });
  }
  return out;
}
