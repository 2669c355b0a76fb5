/**
 * Writes the results of a run into docs/performance.md, between two marker
 * comments, so that the hand-written parts (method, what each optimisation
 * bought, scaling) stay and the figures are re-recorded with one command.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { repoRelative } from './portable-options.js';
import type { BenchResults } from './results.js';
import { evacuationTables, resultTables } from './tables.js';

const RESULTS_START = '<!-- bench:results:start (written by npm run bench; edits here are overwritten) -->';
const RESULTS_END = '<!-- bench:results:end -->';
export const EVACUATION_START = '<!-- bench:evacuation:start (written by npm run bench; edits here are overwritten) -->';
export const EVACUATION_END = '<!-- bench:evacuation:end -->';

/** The run's header lines: machine, software, command, notes. */
function header(r: BenchResults, jsonFile: string, repoRoot: string, heading: string): string[] {
  const m = r.machine;
  const opts = r.options;
  // The section is committed with the docs: name the JSON file only where a reader of the repository finds it.
  const jsonInRepo = repoRelative(jsonFile, repoRoot, repoRoot);
  const rawFigures = jsonInRepo === undefined ? 'raw figures were saved outside the repository' : `raw figures: \`${jsonInRepo}\``;
  return [
    `### ${heading} of ${r.date.slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `- Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB RAM, Linux ${m.kernel}`,
    `- Software: Node ${m.node} (OpenSSL ${m.openssl}), ${m.stunnel ?? 'stunnel not installed'}, ${m.qemu ?? 'QEMU not installed'}`,
    `- Command: \`npm run bench -- ${typeof opts['argv'] === 'string' ? opts['argv'].trim() : ''}\` (${r.durationSeconds.toFixed(0)} s); ${rawFigures}`,
    ...r.notes.map((n) => `- Note: ${n}`),
    '',
  ];
}

export function resultsSection(r: BenchResults, jsonFile: string, repoRoot: string): string {
  return [RESULTS_START, ...header(r, jsonFile, repoRoot, 'Results'), ...resultTables(r, 'markdown').flatMap((block) => [block, '']), RESULTS_END].join('\n');
}

/** The evacuation figure gets its own marked section, so that `--only evacuation` leaves the other results standing. */
export function evacuationSection(r: BenchResults, jsonFile: string, repoRoot: string): string {
  return [EVACUATION_START, ...header(r, jsonFile, repoRoot, 'Evacuation results'), ...evacuationTables(r, 'markdown').flatMap((block) => [block, '']), EVACUATION_END].join('\n');
}

/** Replaces the marked section of `docFile` (or appends one under `heading`) with this run's figures. */
export async function writeResultsSection(docFile: string, section: string, markers = { start: RESULTS_START, end: RESULTS_END, heading: 'Results' }): Promise<void> {
  let doc = await readFile(docFile, 'utf8').catch(() => '# Performance\n');
  const start = doc.indexOf(markers.start.slice(0, 30));
  const end = doc.indexOf(markers.end);
  if (start >= 0 && end > start) doc = `${doc.slice(0, start)}${section}${doc.slice(end + markers.end.length)}`;
  else doc = `${doc.trimEnd()}\n\n## ${markers.heading}\n\n${section}\n`;
  await writeFile(docFile, doc);
}
