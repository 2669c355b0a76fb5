/**
 * Writes the results of a run into docs/performance.md, between two marker
 * comments, so that the hand-written parts (method, what each optimisation
 * bought, scaling) stay and the figures are re-recorded with one command.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { repoRelative } from './portable-options.js';
import type { BenchResults } from './results.js';
import { resultTables } from './tables.js';

export const RESULTS_START = '<!-- bench:results:start (written by npm run bench; edits here are overwritten) -->';
export const RESULTS_END = '<!-- bench:results:end -->';

export function resultsSection(r: BenchResults, jsonFile: string, repoRoot: string): string {
  const m = r.machine;
  const opts = r.options;
  // The section is committed with the docs: name the JSON file only where a reader of the repository finds it.
  const jsonInRepo = repoRelative(jsonFile, repoRoot, repoRoot);
  const rawFigures = jsonInRepo === undefined ? 'raw figures were saved outside the repository' : `raw figures: \`${jsonInRepo}\``;
  const lines = [
    RESULTS_START,
    `### Results of ${r.date.slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `- Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB RAM, Linux ${m.kernel}`,
    `- Software: Node ${m.node} (OpenSSL ${m.openssl}), ${m.stunnel ?? 'stunnel not installed'}, ${m.qemu ?? 'QEMU not installed'}`,
    `- Command: \`npm run bench -- ${String(opts['argv'] ?? '').trim()}\` (${r.durationSeconds.toFixed(0)} s); ${rawFigures}`,
    ...r.notes.map((n) => `- Note: ${n}`),
    '',
    ...resultTables(r, 'markdown').flatMap((block) => [block, '']),
    RESULTS_END,
  ];
  return lines.join('\n');
}

/** Replaces the marked section of `docFile` (or appends one) with this run's results. */
export async function writeResultsSection(docFile: string, section: string): Promise<void> {
  let doc = await readFile(docFile, 'utf8').catch(() => '# Performance\n');
  const start = doc.indexOf(RESULTS_START.slice(0, 30));
  const end = doc.indexOf(RESULTS_END);
  if (start >= 0 && end > start) doc = `${doc.slice(0, start)}${section}${doc.slice(end + RESULTS_END.length)}`;
  else doc = `${doc.trimEnd()}\n\n## Results\n\n${section}\n`;
  await writeFile(docFile, doc);
}
