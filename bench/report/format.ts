/** Number formats and a plain-text/markdown table shared by the console report and docs/performance.md. */

const MiB = 2 ** 20;

export const fmt = {
  num: (v: number | undefined, digits = 0): string => (v === undefined ? '-' : v.toFixed(digits)),
  ratio: (v: number | undefined): string => (v === undefined ? '-' : `${v.toFixed(2)}x`),
  mib: (v: number | undefined): string => (v === undefined ? '-' : (v / MiB).toFixed(0)),
};

/** A table as aligned text (console) or GitHub markdown. */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>, style: 'text' | 'markdown'): string {
  if (style === 'markdown') {
    const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
    return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
