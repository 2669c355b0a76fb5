/**
 * The targets of issue 6, judged from one run's summary. A target whose
 * figure is missing (section skipped, path unavailable, too few runs) is
 * "not measured", never passed.
 */
import type { HandshakeRow, MemoryRow, QemuRow, Ratios, SyntheticRow } from './summary.js';

export interface TargetResult {
  target: string;
  /** The measured figure, as printed. */
  measured: string;
  status: 'pass' | 'FAIL' | 'not measured';
  note?: string;
}

export interface TargetInput {
  synthetic: SyntheticRow[];
  qemu: QemuRow[];
  reliability: { path: string; runs: number; completed: number } | undefined;
  /** The run count the reliability target asks for. */
  reliabilityRequired: number;
  handshake: HandshakeRow[];
  memory: MemoryRow[];
  workers: { available: boolean; count: number };
}

const MiB = 2 ** 20;
const x = (v: number | undefined): string => (v === undefined ? '-' : `${v.toFixed(2)}x`);

function judge(target: string, value: number | undefined, ok: (v: number) => boolean, shown: string, note?: string): TargetResult {
  const status = value === undefined ? 'not measured' : ok(value) ? 'pass' : 'FAIL';
  return { target, measured: value === undefined ? '-' : shown, status, ...(note !== undefined ? { note } : {}) };
}

/** How the figure moved round by round: "rounds 1.21-1.40x, 3 of 5 meet it". */
function spread(values: readonly number[] | undefined, ok: (v: number) => boolean): string | undefined {
  if (values === undefined || values.length < 2) return undefined;
  const met = values.filter(ok).length;
  return `rounds ${x(Math.min(...values))}-${x(Math.max(...values))}, ${met} of ${values.length} meet it`;
}

/** A ratio target judged on the median, with the per-round spread as its note. */
export function judgeRatio(target: string, r: Ratios | undefined, key: 'speed' | 'cpu', ok: (v: number) => boolean, note?: string): TargetResult {
  return judge(target, r?.[key], ok, x(r?.[key]), note ?? spread(r?.rounds?.[key], ok));
}

export function judgeTargets(i: TargetInput): TargetResult[] {
  const out: TargetResult[] = [];
  const syn = (streams: number, path: string): SyntheticRow | undefined => i.synthetic.find((r) => r.streams === streams && r.path === path);
  const one = syn(1, 'vmgate');
  out.push(judgeRatio('1 stream: throughput >= 1.3x stunnel', one?.vsStunnel, 'speed', (v) => v >= 1.3));
  out.push(judgeRatio('1 stream: CPU/GiB <= 0.8x stunnel', one?.vsStunnel, 'cpu', (v) => v <= 0.8));
  for (const path of ['vmgate', `vmgate-w${i.workers.count}`]) {
    const four = syn(4, path);
    if (four === undefined && path !== 'vmgate') continue;
    out.push(judgeRatio(`4 streams (${path}): throughput >= 1.15x stunnel`, four?.vsStunnel, 'speed', (v) => v >= 1.15));
    out.push(judgeRatio(`4 streams (${path}): CPU/GiB <= 0.85x stunnel`, four?.vsStunnel, 'cpu', (v) => v <= 0.85));
  }
  const w1 = syn(4, 'vmgate');
  const wn = syn(4, `vmgate-w${i.workers.count}`);
  if (!i.workers.available) {
    out.push({ target: `4 streams: workers ${i.workers.count} no slower than workers 1, channels in different processes`, measured: '-', status: 'not measured', note: 'the workers setting is not in the config schema yet' });
  } else {
    const speed = wn?.mbPerSec !== undefined && w1?.mbPerSec !== undefined ? wn.mbPerSec / w1.mbPerSec : undefined;
    out.push(judge(`4 streams: workers ${i.workers.count} throughput >= workers 1`, speed, (v) => v >= 1, x(speed)));
    const procs = wn?.channelProcesses;
    const spread = procs === undefined ? undefined : Math.min(procs.A, procs.B);
    out.push(judge(`4 streams, workers ${i.workers.count}: channels in more than one process on each gateway`, spread, (v) => v > 1, procs === undefined ? '-' : `${procs.A} (A) / ${procs.B} (B) processes`));
  }
  const qemuCases = [['single', 'vmgate'], ['multifd4', 'vmgate'], ['multifd4', `vmgate-w${i.workers.count}`]] as const;
  for (const [mode, path] of qemuCases) {
    const r = i.qemu.find((q) => q.mode === mode && q.path === path);
    if (r === undefined && path !== 'vmgate') continue;
    const st = i.qemu.find((q) => q.mode === mode && q.path === 'stunnel');
    const note = st !== undefined && st.completed === 0 ? `stunnel completed 0/${st.runs}: nothing to compare with` : undefined;
    const label = path === 'vmgate' ? mode : `${mode} (${path})`;
    out.push(judgeRatio(`QEMU ${label}: migration >= 1.3x faster than through stunnel`, r?.vsStunnel, 'speed', (v) => v >= 1.3, note));
  }
  const rel = i.reliability;
  if (rel === undefined || rel.runs < i.reliabilityRequired) {
    out.push({
      target: `QEMU multifd 4 through vmgate completes ${i.reliabilityRequired}/${i.reliabilityRequired}`,
      measured: rel === undefined ? '-' : `${rel.completed}/${rel.runs}`,
      status: rel !== undefined && rel.completed < rel.runs ? 'FAIL' : 'not measured',
      note: `needs --multifd-reliability ${i.reliabilityRequired}`,
    });
  } else {
    out.push(judge(`QEMU multifd 4 through vmgate completes ${i.reliabilityRequired}/${i.reliabilityRequired}`, rel.completed, (v) => v === rel.runs, `${rel.completed}/${rel.runs}`));
  }
  const mem = i.memory.find((m) => m.path === 'vmgate');
  out.push(judge(`${mem?.idleChannels ?? 64} idle channels: gateway RSS < 150 MiB`, mem?.idleRssBytes, (v) => v < 150 * MiB, `${((mem?.idleRssBytes ?? 0) / MiB).toFixed(0)} MiB`));
  out.push(judge('1 GiB on one channel: RSS growth <= 64 MiB', mem?.growthBytes, (v) => v <= 64 * MiB, `${((mem?.growthBytes ?? 0) / MiB).toFixed(1)} MiB`));
  const hs = i.handshake.find((h) => h.path === 'vmgate');
  out.push(judge(`open ${hs?.channels ?? 8} channels < 300 ms`, hs?.ms, (v) => v < 300, `${(hs?.ms ?? 0).toFixed(0)} ms`));
  return out;
}
