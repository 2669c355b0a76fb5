/**
 * Memory bounds: the gateways' RSS with many idle channels open, and how much
 * a long transfer on one channel grows it (buffers must stay bounded).
 */
import { closeChannels, openChannel } from './channels.js';
import type { HoldSink } from './hold-sink.js';
import type { PathSpec } from './paths/path.js';
import { resetPeakRss, treeUsage } from './proc-usage.js';
import type { Traffic } from './traffic/traffic.js';

/** Channels opened at a time: below the server's default cap on concurrent handshakes. */
const BATCH = 8;

export interface IdleSample {
  path: string;
  round: number;
  channels: number;
  /** Per gateway, RSS with all channels open and idle. */
  rssBytes: { A: number; B: number };
}

export interface GrowthSample {
  path: string;
  round: number;
  bytes: number;
  /** Per gateway, peak RSS during the transfer minus RSS before the channel opened. */
  growthBytes: { A: number; B: number };
}

export async function measureIdle(path: PathSpec, sink: HoldSink, channels: number, round: number): Promise<IdleSample> {
  const running = await path.start(sink.port);
  const sockets = [];
  try {
    for (let i = 0; i < channels; i += BATCH) {
      const batch = await Promise.all(Array.from({ length: Math.min(BATCH, channels - i) }, () => openChannel(running.port)));
      sockets.push(...batch);
      await sink.waitArrived(sockets.length, 30_000);
    }
    const rss = await sideValues(running.gateways, async (pid) => (await treeUsage(pid)).rssBytes);
    await closeChannels(sockets);
    return { path: path.name, round, channels, rssBytes: rss };
  } finally {
    sink.release();
    await running.stop();
  }
}

export async function measureGrowth(path: PathSpec, traffic: Traffic, bytes: number, round: number): Promise<GrowthSample> {
  const running = await path.start(traffic.targetPort);
  try {
    const before = await sideValues(running.gateways, async (pid) => {
      await resetPeakRss(pid);
      return (await treeUsage(pid)).rssBytes;
    });
    await traffic.transfer({ port: running.port, streams: 1, bytes, timeoutMs: 120_000 + bytes / 5e6 });
    const peak = await sideValues(running.gateways, async (pid) => (await treeUsage(pid)).peakRssBytes);
    return { path: path.name, round, bytes, growthBytes: { A: peak.A - before.A, B: peak.B - before.B } };
  } finally {
    await running.stop();
  }
}

async function sideValues(gateways: ReadonlyArray<{ side: 'A' | 'B'; pid: number }>, f: (pid: number) => Promise<number>): Promise<{ A: number; B: number }> {
  const out = { A: 0, B: 0 };
  for (const g of gateways) out[g.side] = await f(g.pid);
  return out;
}
