/** The bench's command line. */
import { Command, InvalidArgumentError } from 'commander';

export const SECTIONS = ['synthetic', 'handshake', 'memory', 'qemu', 'evacuation'] as const;
export type Section = (typeof SECTIONS)[number];

export interface BenchOptions {
  runs: number;
  bytes: number;
  guestMiB: number;
  multifdReliability: number;
  /** Migrations started at once in the evacuation figure. */
  evacuationMigrations: number;
  /** MiB of random RAM in each evacuated guest (the guest has 128 MiB more). */
  evacuationMiB: number;
  workers: number;
  handshakeChannels: number;
  idleChannels: number;
  growthBytes: number;
  sections: Section[];
  outDir: string;
  docs: boolean;
  /** Another build's dist/src/cli/main.js, measured as path "vmgate-baseline" in the synthetic streams. */
  baselineCli: string | undefined;
  /** Directory for V8 CPU profiles of the vmgate processes. */
  cpuProf: string | undefined;
  /** The command line as given (it may hold paths of this machine: see report/portable-options.ts). */
  argv: readonly string[];
}

const UNITS: Record<string, number> = { '': 1, k: 1e3, kib: 2 ** 10, m: 1e6, mib: 2 ** 20, g: 1e9, gib: 2 ** 30 };

/** "2GiB", "256MiB", "1e9", "512m": a byte count. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = UNITS[(m?.[2] ?? '').toLowerCase()];
  if (m === null || unit === undefined) throw new InvalidArgumentError(`"${text}" is not a size (e.g. 2GiB, 256MiB, 500MB as 500m)`);
  const bytes = Math.round(Number(m[1]) * unit);
  if (bytes < 1) throw new InvalidArgumentError(`"${text}" is less than one byte`);
  return bytes;
}

function positiveInt(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`"${text}" is not a whole number >= 0`);
  return n;
}

function sections(text: string): Section[] {
  const list = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const s of list) if (!(SECTIONS as readonly string[]).includes(s)) throw new InvalidArgumentError(`unknown section "${s}" (sections: ${SECTIONS.join(', ')})`);
  return list as Section[];
}

export function parseOptions(argv: readonly string[], defaultOutDir: string): BenchOptions {
  const program = new Command('npm run bench --')
    .description('vmgate benchmark: direct loopback vs a stunnel pair vs a vmgate pair, medians, ratios and the targets of issues 6 and 15')
    .option('--runs <n>', 'rounds; each figure is the median of this many runs', positiveInt, 5)
    .option('--size <bytes>', 'bytes per synthetic measurement (all streams together)', parseSize, 2 * 2 ** 30)
    .option('--guest-mib <n>', 'MiB of random RAM in the migrated guest', positiveInt, 512)
    .option('--multifd-reliability <n>', 'extra multifd 4 migrations through vmgate that must all complete (0: none)', positiveInt, 20)
    .option('--evacuation-migrations <n>', 'evacuation: precopy migrations started at once, each on its own port of a range', positiveInt, 4)
    .option('--evacuation-mib <n>', 'evacuation: MiB of random RAM per guest (each guest has 128 MiB more)', positiveInt, 128)
    .option('--workers <n>', 'workers setting to compare with 1 on 4 streams (when the setting exists)', positiveInt, 2)
    .option('--handshake-channels <n>', 'channels opened at once for the handshake figure', positiveInt, 8)
    .option('--idle-channels <n>', 'idle channels held open for the memory figure', positiveInt, 64)
    .option('--growth-size <bytes>', 'transfer on one channel for the RSS growth figure', parseSize, 2 ** 30)
    .option('--only <sections>', `comma-separated subset of: ${SECTIONS.join(', ')}`, sections, [...SECTIONS])
    .option('--out-dir <dir>', 'where the JSON results go', defaultOutDir)
    .option('--baseline-cli <main.js>', 'also measure another build (its dist/src/cli/main.js) as "vmgate-baseline", to see what a change bought')
    .option('--cpu-prof <dir>', 'write V8 CPU profiles of the vmgate gateways (node --cpu-prof) into this directory')
    .option('--no-docs', 'do not rewrite the results section of docs/performance.md')
    .exitOverride();
  program.parse([...argv], { from: 'user' });
  const o = program.opts<{
    runs: number; size: number; guestMib: number; multifdReliability: number; evacuationMigrations: number; evacuationMib: number; workers: number;
    handshakeChannels: number; idleChannels: number; growthSize: number; only: Section[]; outDir: string; docs: boolean; baselineCli?: string; cpuProf?: string;
  }>();
  if (o.runs < 1) throw new InvalidArgumentError('--runs must be at least 1');
  return {
    runs: o.runs,
    bytes: o.size,
    guestMiB: Math.max(o.guestMib, 64),
    multifdReliability: o.multifdReliability,
    evacuationMigrations: Math.max(o.evacuationMigrations, 1),
    evacuationMiB: Math.max(o.evacuationMib, 16),
    workers: Math.max(o.workers, 2),
    handshakeChannels: Math.max(o.handshakeChannels, 1),
    idleChannels: Math.max(o.idleChannels, 1),
    growthBytes: o.growthSize,
    sections: o.only,
    outDir: o.outDir,
    docs: o.docs,
    baselineCli: o.baselineCli,
    cpuProf: o.cpuProf,
    argv: [...argv],
  };
}
