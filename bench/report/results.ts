/** Everything one bench run produced: saved as JSON, printed as tables, written into docs/performance.md. */
import type { HandshakeSample } from '../handshake.js';
import type { Machine } from '../machine.js';
import type { EvacuationSample } from '../evacuation.js';
import type { EvacuationRow } from '../evacuation-summary.js';
import type { GrowthSample, IdleSample } from '../memory.js';
import type { QemuSample } from '../qemu-migration.js';
import type { HandshakeRow, MemoryRow, QemuRow, SyntheticRow } from '../summary.js';
import type { SyntheticSample } from '../synthetic.js';
import type { TargetResult } from '../targets.js';

export interface BenchResults {
  /** ISO time the run started. */
  date: string;
  durationSeconds: number;
  machine: Machine;
  options: Record<string, unknown>;
  /** Lines about what was left out and why (tool missing, setting not available). */
  notes: string[];
  workers: { available: boolean; keyPaths: string[]; compared: number };
  synthetic: { rows: SyntheticRow[]; samples: SyntheticSample[] };
  qemu: { rows: QemuRow[]; samples: QemuSample[]; reliability: { path: string; runs: number; completed: number; samples: QemuSample[] } | undefined };
  handshake: { rows: HandshakeRow[]; samples: HandshakeSample[] };
  memory: { rows: MemoryRow[]; idle: IdleSample[]; growth: GrowthSample[] };
  targets: TargetResult[];
  /** Several precopy migrations at once through one pair (issue 15); empty rows when the section did not run. */
  evacuation: { migrations: number; guestMiB: number; rows: EvacuationRow[]; samples: EvacuationSample[]; targets: TargetResult[] };
}
