/**
 * What a gateway costs, read from /proc: CPU time (utime + stime, plus the
 * children it has reaped) and peak resident memory (VmHWM) of a process and
 * of every process below it (a gateway with workers is a process tree).
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ); 100 on every Linux we run on. */
const TICKS_PER_SECOND = 100;
const KiB = 1024;

export interface Usage {
  /** CPU seconds, user + system, of the tree (including reaped children). */
  cpuSeconds: number;
  /** Sum of the tree's peak RSS (VmHWM) in bytes: an upper bound of the tree's peak. */
  peakRssBytes: number;
  /** Sum of the tree's current RSS (VmRSS) in bytes. */
  rssBytes: number;
  /** Every pid of the tree that was read. */
  pids: number[];
}

/** The pid and all its descendants (from /proc/<pid>/task/<tid>/children). */
export async function processTree(pid: number): Promise<number[]> {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    out.push(p);
    let tasks: string[];
    try {
      tasks = await readdir(`/proc/${p}/task`);
    } catch {
      continue; // exited meanwhile
    }
    for (const tid of tasks) {
      const text = await readFile(`/proc/${p}/task/${tid}/children`, 'utf8').catch(() => '');
      for (const child of text.trim().split(/\s+/)) if (child !== '') queue.push(Number(child));
    }
  }
  return out;
}

/** CPU and memory of one process; undefined once it has exited. */
async function processUsage(pid: number): Promise<Omit<Usage, 'pids'> | undefined> {
  let stat: string;
  let status: string;
  try {
    [stat, status] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8'), readFile(`/proc/${pid}/status`, 'utf8')]);
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14..17.
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0);
  return { cpuSeconds: ticks / TICKS_PER_SECOND, peakRssBytes: statusKiB(status, 'VmHWM') * KiB, rssBytes: statusKiB(status, 'VmRSS') * KiB };
}

/** Usage summed over the process tree under `pid`. */
export async function treeUsage(pid: number): Promise<Usage> {
  const pids = await processTree(pid);
  const total: Usage = { cpuSeconds: 0, peakRssBytes: 0, rssBytes: 0, pids: [] };
  for (const p of pids) {
    const u = await processUsage(p);
    if (u === undefined) continue;
    total.cpuSeconds += u.cpuSeconds;
    total.peakRssBytes += u.peakRssBytes;
    total.rssBytes += u.rssBytes;
    total.pids.push(p);
  }
  return total;
}

/**
 * Resets the peak RSS (VmHWM) of the tree to its current RSS (writing 5 to
 * /proc/<pid>/clear_refs, Linux >= 4.0), so that a later VmHWM is the peak of
 * what happened in between.
 */
export async function resetPeakRss(pid: number): Promise<void> {
  for (const p of await processTree(pid)) await writeFile(`/proc/${p}/clear_refs`, '5').catch(() => undefined);
}

function statusKiB(status: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) : 0;
}
