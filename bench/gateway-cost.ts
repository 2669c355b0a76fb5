/**
 * CPU and peak memory of a running path's gateways over one measurement:
 * `begin` before the traffic (also resets the peak RSS), `end` after it.
 */
import type { GatewaySide, RunningPath } from './paths/path.js';
import { resetPeakRss, treeUsage } from './proc-usage.js';

export interface SideCost {
  side: GatewaySide['side'];
  cpuSeconds: number;
  peakRssBytes: number;
  /** Processes in the gateway's tree (1 without workers). */
  processes: number;
}

export interface CostMeter {
  end(): Promise<SideCost[]>;
}

export async function beginCost(path: Pick<RunningPath, 'gateways'>): Promise<CostMeter> {
  await Promise.all(path.gateways.map((g) => resetPeakRss(g.pid)));
  const before = await Promise.all(path.gateways.map((g) => treeUsage(g.pid)));
  return {
    async end() {
      const after = await Promise.all(path.gateways.map((g) => treeUsage(g.pid)));
      return path.gateways.map((g, i) => ({
        side: g.side,
        cpuSeconds: (after[i]?.cpuSeconds ?? 0) - (before[i]?.cpuSeconds ?? 0),
        peakRssBytes: after[i]?.peakRssBytes ?? 0,
        processes: after[i]?.pids.length ?? 0,
      }));
    },
  };
}

/** Both gateways' CPU seconds per GiB carried; undefined for a path without gateways. */
export function cpuPerGiB(costs: readonly SideCost[], bytes: number): number | undefined {
  if (costs.length === 0) return undefined;
  return costs.reduce((s, c) => s + c.cpuSeconds, 0) / (bytes / 2 ** 30);
}

/** The larger of the two gateways' peak RSS; undefined without gateways. */
export function maxPeakRss(costs: readonly SideCost[]): number | undefined {
  return costs.length === 0 ? undefined : Math.max(...costs.map((c) => c.peakRssBytes));
}
