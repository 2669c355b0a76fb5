/**
 * Two builds of vmgate, A/B, on the synthetic stream: to see what one change
 * to the data path buys when the machine's noise is as large as the change.
 * Each round starts a fresh gateway pair from each build in turn (order
 * alternating) and pushes the same bytes through it; the medians of CPU per
 * GiB (both gateways, and each side apart) and throughput are printed.
 *
 *   npm run build && node dist/bench/ab.js --a OLD/dist/src/cli/main.js [--b dist/src/cli/main.js]
 *       [--streams 1] [--size 2GiB] [--rounds 6]
 *
 * OLD is another build, e.g. `git worktree add /tmp/old HEAD~1`, `npx tsc`
 * there, with node_modules linked. The figures are of the data path: the
 * receiver times from its first byte, so channel set-up does not count.
 * Not a test; it never asserts.
 */
import { parseArgs } from 'node:util';
import { makeFixture } from './fixture.js';
import { parseSize } from './options.js';
import { vmgatePath } from './paths/vmgate.js';
import { median } from './stats.js';
import { runSynthetic, type SyntheticSample } from './synthetic.js';
import { Traffic } from './traffic/traffic.js';

const { values: args } = parseArgs({
  options: {
    a: { type: 'string' },
    b: { type: 'string', default: new URL('../src/cli/main.js', import.meta.url).pathname },
    streams: { type: 'string', default: '1' },
    size: { type: 'string', default: '2GiB' },
    rounds: { type: 'string', default: '6' },
  },
});
if (args.a === undefined) throw new Error('--a OTHER/dist/src/cli/main.js is required (the build to compare with)');
const builds = { a: args.a, b: args.b };
const streams = Number(args.streams);
const bytes = parseSize(args.size);
const rounds = Number(args.rounds);

const fx = await makeFixture();
const traffic = await Traffic.start();
let samples: SyntheticSample[];
try {
  // runSynthetic alternates the order of the two paths from round to round.
  const cases = (['a', 'b'] as const).map((name) => ({ path: vmgatePath(fx, { workers: 1, workersPaths: [], cli: builds[name], name }), streams }));
  samples = await runSynthetic(cases, traffic, { runs: rounds, bytes, say: (line) => console.log(line) });
} finally {
  traffic.stop();
  await fx.dispose();
}
const gib = bytes / 2 ** 30;
const figures = {
  'MB/s': (s: SyntheticSample) => s.mbPerSec,
  'CPU s/GiB': (s: SyntheticSample) => s.cpuSecondsPerGiB,
  'A s/GiB': (s: SyntheticSample) => (s.sides.find((x) => x.side === 'A')?.cpuSeconds ?? 0) / gib,
  'B s/GiB': (s: SyntheticSample) => (s.sides.find((x) => x.side === 'B')?.cpuSeconds ?? 0) / gib,
};
console.log(`\nmedians of ${rounds} rounds, ${streams} stream(s) of ${args.size}:  a = ${builds.a}  b = ${builds.b}`);
for (const [label, f] of Object.entries(figures)) {
  const m = (name: string): string => (median(samples.filter((s) => s.path === name).map(f)) ?? 0).toFixed(2).padStart(8);
  console.log(`  ${label.padEnd(10)} a ${m('a')}   b ${m('b')}`);
}
