/**
 * The run's options as they are saved in bench/results/*.json and quoted in
 * docs/performance.md. Those files are committed, so they must not name a
 * directory of the machine that ran the bench: a path inside the repository
 * is written relative to it, a path outside it is left out (the JSON field is
 * dropped, the command line shows the option's placeholder).
 */
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { BenchOptions } from '../options.js';

/** The options that take a path, with the placeholder `--help` shows for each. */
const PATH_OPTIONS = {
  outDir: { flag: '--out-dir', placeholder: '<dir>' },
  baselineCli: { flag: '--baseline-cli', placeholder: '<main.js>' },
  cpuProf: { flag: '--cpu-prof', placeholder: '<dir>' },
} as const;
type PathOption = keyof typeof PATH_OPTIONS;

/** `path` (relative to `cwd` if not absolute) relative to `repoRoot`, or undefined when it lies outside. */
export function repoRelative(path: string, repoRoot: string, cwd: string): string | undefined {
  const rel = relative(resolve(repoRoot), resolve(cwd, path));
  if (rel === '') return '.';
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return undefined;
  return rel;
}

/** The command line with every path option's value made repository-relative or replaced by its placeholder. */
export function portableArgv(argv: readonly string[], repoRoot: string, cwd: string): string {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const option = Object.values(PATH_OPTIONS).find((p) => p.flag === flag);
    if (option === undefined) {
      out.push(arg);
      continue;
    }
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) {
      out.push(arg);
      continue;
    }
    out.push(flag, repoRelative(value, repoRoot, cwd) ?? option.placeholder);
  }
  return out.join(' ');
}

/** What a results file records of `o`: no absolute path, no path outside the repository. */
export function portableOptions(o: BenchOptions, repoRoot: string, cwd: string): Record<string, unknown> {
  const recorded: Record<string, unknown> = { ...o, argv: portableArgv(o.argv, repoRoot, cwd) };
  for (const key of Object.keys(PATH_OPTIONS) as PathOption[]) {
    const value = o[key];
    const rel = value === undefined ? undefined : repoRelative(value, repoRoot, cwd);
    if (rel === undefined) delete recorded[key];
    else recorded[key] = rel;
  }
  return recorded;
}
