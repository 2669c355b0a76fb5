/**
 * Synthetic streams: a plain sender pushes random bytes to a plain receiver
 * through each path, one stream and four in parallel. Paths are started fresh
 * per measurement and their order rotates from round to round.
 */
import { beginCost, cpuPerGiB, maxPeakRss, type SideCost } from './gateway-cost.js';
import type { PathSpec, RunningPath } from './paths/path.js';
import { connectionOwners } from './socket-owner.js';
import { rotated } from './stats.js';
import type { Traffic } from './traffic/traffic.js';

export interface SyntheticCase {
  path: PathSpec;
  streams: number;
}

export interface SyntheticSample {
  path: string;
  streams: number;
  round: number;
  bytes: number;
  seconds: number;
  mbPerSec: number;
  /** Both gateways together; undefined for direct. */
  cpuSecondsPerGiB: number | undefined;
  peakRssBytes: number | undefined;
  sides: SideCost[];
  /** Distinct processes that held the session's channels, per gateway (vmgate, several streams). */
  channelProcesses?: { A: number; B: number };
}

/** Measures every case `runs` times; `say` gets one line per measurement. */
export async function runSynthetic(
  cases: readonly SyntheticCase[],
  traffic: Traffic,
  o: { runs: number; bytes: number; say: (line: string) => void },
): Promise<SyntheticSample[]> {
  const samples: SyntheticSample[] = [];
  const streamCounts = [...new Set(cases.map((c) => c.streams))];
  for (let round = 0; round < o.runs; round++) {
    for (const streams of streamCounts) {
      for (const c of rotated(cases.filter((x) => x.streams === streams), round)) {
        const s = await measure(c, traffic, o.bytes, round);
        samples.push(s);
        const cpu = s.cpuSecondsPerGiB === undefined ? '' : `, ${s.cpuSecondsPerGiB.toFixed(2)} CPU s/GiB`;
        const spread = s.channelProcesses ? `, channels in ${s.channelProcesses.A}/${s.channelProcesses.B} processes (A/B)` : '';
        o.say(`  run ${round + 1}/${o.runs}  ${streams} stream(s)  ${c.path.name.padEnd(16)} ${s.mbPerSec.toFixed(0).padStart(5)} MB/s${cpu}${spread}`);
      }
    }
  }
  return samples;
}

async function measure(c: SyntheticCase, traffic: Traffic, bytes: number, round: number): Promise<SyntheticSample> {
  const running = await c.path.start(traffic.targetPort);
  try {
    const meter = await beginCost(running);
    let channelProcesses: SyntheticSample['channelProcesses'];
    const result = await traffic.transfer({
      port: running.port,
      streams: c.streams,
      bytes,
      timeoutMs: 120_000 + bytes / 5e6,
      ...(c.path.kind === 'vmgate' && c.streams > 1
        ? {
            whileConnected: async (ports) => {
              channelProcesses = await spread(running, ports, traffic.targetPort);
            },
          }
        : {}),
    });
    const sides = await meter.end();
    return {
      path: c.path.name,
      streams: c.streams,
      round,
      bytes,
      seconds: result.seconds,
      mbPerSec: bytes / 1e6 / result.seconds,
      cpuSecondsPerGiB: cpuPerGiB(sides, bytes),
      peakRssBytes: maxPeakRss(sides),
      sides,
      ...(channelProcesses ? { channelProcesses } : {}),
    };
  } finally {
    await running.stop();
  }
}

/**
 * How many processes of each gateway hold the session's channels: A's
 * accepted sockets (route port <- sender port), B's target sockets
 * (its port -> receiver port).
 */
async function spread(
  running: RunningPath,
  ports: { receiverRemotePorts: number[]; senderLocalPorts: number[] },
  targetPort: number,
): Promise<{ A: number; B: number }> {
  const pidOf = (side: 'A' | 'B'): number => running.gateways.find((g) => g.side === side)?.pid ?? -1;
  const a = await connectionOwners(pidOf('A'), ports.senderLocalPorts.map((p) => [running.port, p] as const));
  const b = await connectionOwners(pidOf('B'), ports.receiverRemotePorts.map((p) => [p, targetPort] as const));
  const distinct = (xs: Array<number | undefined>): number => new Set(xs.filter((x) => x !== undefined)).size;
  return { A: distinct(a), B: distinct(b) };
}
