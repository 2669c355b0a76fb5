/**
 * Opening channels: the time from the first connect to the route until all
 * `channels` channels have carried their first byte to the target, on a
 * freshly started path, channels opened at once as QEMU's multifd does. For
 * vmgate that is TCP + TLS 1.3 + SASL + OPEN + the target connect, per channel.
 */
import { performance } from 'node:perf_hooks';
import { closeChannels, openChannel } from './channels.js';
import type { HoldSink } from './hold-sink.js';
import type { PathSpec } from './paths/path.js';
import { rotated } from './stats.js';

export interface HandshakeSample {
  path: string;
  round: number;
  channels: number;
  ms: number;
}

export async function runHandshakes(
  paths: readonly PathSpec[],
  sink: HoldSink,
  o: { runs: number; channels: number; say: (line: string) => void },
): Promise<HandshakeSample[]> {
  const samples: HandshakeSample[] = [];
  for (let round = 0; round < o.runs; round++) {
    for (const path of rotated(paths, round)) {
      const running = await path.start(sink.port);
      try {
        const t0 = performance.now();
        const sockets = await Promise.all(Array.from({ length: o.channels }, () => openChannel(running.port)));
        const last = await sink.waitArrived(o.channels, 30_000);
        const ms = last - t0;
        samples.push({ path: path.name, round, channels: o.channels, ms });
        o.say(`  run ${round + 1}/${o.runs}  ${path.name.padEnd(10)} ${o.channels} channels open in ${ms.toFixed(1)} ms`);
        await closeChannels(sockets);
      } finally {
        sink.release();
        await running.stop();
      }
    }
  }
  return samples;
}
