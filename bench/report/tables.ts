/** The result tables, as text for the console and as markdown for docs/performance.md. */
import { fmt, table } from './format.js';
import type { BenchResults } from './results.js';

export function resultTables(r: BenchResults, style: 'text' | 'markdown'): string[] {
  const out: string[] = [];
  const title = (t: string): string => (style === 'markdown' ? `#### ${t}` : `== ${t}`);
  if (r.synthetic.rows.length > 0) {
    const size = Number(r.options['bytes'] ?? 0) / 2 ** 30;
    out.push(title(`Synthetic streams (${size.toFixed(2)} GiB per run, medians of ${String(r.options['runs'])})`));
    out.push(
      table(
        ['streams', 'path', 'MB/s', 'x stunnel', 'x direct', 'CPU s/GiB (A+B)', 'CPU x stunnel', 'peak RSS MiB', 'channel processes A/B'],
        r.synthetic.rows.map((row) => [
          String(row.streams),
          row.path,
          fmt.num(row.mbPerSec),
          fmt.ratio(row.vsStunnel?.speed),
          fmt.ratio(row.vsDirect?.speed),
          fmt.num(row.cpuSecondsPerGiB, 2),
          fmt.ratio(row.vsStunnel?.cpu),
          fmt.mib(row.peakRssBytes),
          row.channelProcesses ? `${row.channelProcesses.A}/${row.channelProcesses.B}` : '-',
        ]),
        style,
      ),
    );
  }
  if (r.qemu.rows.length > 0) {
    out.push(title(`Real QEMU migration (paused guest, ${String(r.options['guestMiB'])} MiB random RAM, medians of completed runs)`));
    out.push(
      table(
        ['mode', 'path', 'completed', 'seconds', 'MB/s', 'x faster than stunnel', 'x direct', 'CPU s/GiB (A+B)', 'QEMU cores source/dest'],
        r.qemu.rows.map((row) => [
          row.mode,
          row.path,
          `${row.completed}/${row.runs}`,
          fmt.num(row.seconds, 2),
          fmt.num(row.mbPerSec),
          fmt.ratio(row.vsStunnel?.speed),
          fmt.ratio(row.vsDirect?.speed),
          fmt.num(row.cpuSecondsPerGiB, 2),
          `${fmt.num(row.sourceQemuCores, 2)}/${fmt.num(row.destinationQemuCores, 2)}`,
        ]),
        style,
      ),
    );
    const rel = r.qemu.reliability;
    if (rel) out.push(`multifd 4 through ${rel.path}: ${rel.completed}/${rel.runs} migrations completed`);
  }
  if (r.handshake.rows.length > 0) {
    out.push(title(`Opening ${r.handshake.rows[0]?.channels ?? 8} channels at once on a fresh path (medians)`));
    out.push(
      table(
        ['path', 'ms', 'x faster than stunnel', 'x direct'],
        r.handshake.rows.map((row) => [row.path, fmt.num(row.ms, 1), fmt.ratio(row.vsStunnel?.speed), fmt.ratio(row.vsDirect?.speed)]),
        style,
      ),
    );
  }
  if (r.memory.rows.length > 0) {
    out.push(title('Memory (largest gateway, worst run)'));
    out.push(
      table(
        ['path', 'RSS with idle channels MiB', 'idle channels', 'RSS growth over one transfer MiB', 'transfer GiB'],
        r.memory.rows.map((row) => [
          row.path,
          fmt.mib(row.idleRssBytes),
          fmt.num(row.idleChannels),
          row.growthBytes === undefined ? '-' : (row.growthBytes / 2 ** 20).toFixed(1),
          row.growthTransferBytes === undefined ? '-' : (row.growthTransferBytes / 2 ** 30).toFixed(2),
        ]),
        style,
      ),
    );
  }
  out.push(title('Targets (issue 6)'));
  out.push(targetTable(r.targets, style));
  return out;
}

function targetTable(targets: BenchResults['targets'], style: 'text' | 'markdown'): string {
  return table(['target', 'measured', 'result', 'note'], targets.map((t) => [t.target, t.measured, t.status, t.note ?? '']), style);
}

/** The evacuation figure (issue 15) and its targets; nothing when the section did not run. */
export function evacuationTables(r: BenchResults, style: 'text' | 'markdown'): string[] {
  const e = r.evacuation;
  if (e.rows.length === 0) return [];
  const title = (t: string): string => (style === 'markdown' ? `#### ${t}` : `== ${t}`);
  return [
    title(`Evacuation: ${e.migrations} precopy migrations at once through one pair (paused guests, ${e.guestMiB} MiB random RAM each, medians of rounds with every guest intact)`),
    table(
      ['path', 'intact', 'rounds with all intact', 'seconds until last done', 'aggregate MB/s', 'x stunnel', 'x direct', 'CPU s/GiB (A+B)', 'CPU x stunnel'],
      e.rows.map((row) => [
        row.path,
        `${row.intact}/${row.migrations}`,
        `${row.roundsIntact}/${row.rounds}`,
        fmt.num(row.seconds, 2),
        fmt.num(row.mbPerSec),
        fmt.ratio(row.vsStunnel?.speed),
        fmt.ratio(row.vsDirect?.speed),
        fmt.num(row.cpuSecondsPerGiB, 2),
        fmt.ratio(row.vsStunnel?.cpu),
      ]),
      style,
    ),
    title('Targets (issue 15)'),
    targetTable(e.targets, style),
  ];
}
