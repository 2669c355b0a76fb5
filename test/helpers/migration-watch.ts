/**
 * Every migration status some QEMUs go through while a test runs: a poller
 * of query-migrate (QEMU has no event for every state on every version) plus
 * the MIGRATION events QMP delivered, so that a brief "postcopy-paused" or
 * "failed" between two polls is still seen, in the order they happened.
 *
 *   const watch = watchMigration([src, dst]);
 *   ...
 *   const [srcStatuses, dstStatuses] = await watch.stop();
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { QemuVm } from './qemu.js';

const POLL_MS = 50;

export interface MigrationWatch {
  /** Statuses seen so far, per QEMU (consecutive repeats folded). */
  readonly seen: readonly string[][];
  /** Stops polling; resolves with the statuses seen, the MIGRATION events' statuses merged in by time. */
  stop(): Promise<string[][]>;
}

export function watchMigration(vms: readonly QemuVm[]): MigrationWatch {
  const seen: string[][] = vms.map(() => []);
  const polled: Array<Array<{ at: number; status: string }>> = vms.map(() => []);
  const fromEvent = vms.map((vm) => vm.qmp.events.length);
  let running = true;
  const loops = vms.map(async (vm, i) => {
    while (running) {
      let status: string;
      try {
        status = (await vm.qmp.queryMigrate()).status ?? 'none';
      } catch {
        return; // the QEMU is gone: its events still count
      }
      polled[i]?.push({ at: Date.now(), status });
      fold(seen[i] as string[], status);
      await sleep(POLL_MS);
    }
  });
  return {
    seen,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      // Polls (stamped on arrival) and events (stamped by QEMU) by time, repeats folded: two statuses
      // within a poll of each other may show in either order; the tests only ask whether one was seen.
      return vms.map((vm, i) => {
        const events = vm.qmp.events.slice(fromEvent[i]).filter((e) => e.event === 'MIGRATION')
          .map((e) => ({ at: e.timestamp.seconds * 1000 + e.timestamp.microseconds / 1000, status: String(e.data['status']) }));
        const out: string[] = [];
        for (const s of [...(polled[i] ?? []), ...events].sort((x, y) => x.at - y.at)) fold(out, s.status);
        return out;
      });
    },
  };
}

function fold(list: string[], status: string): void {
  if (list[list.length - 1] !== status) list.push(status);
}
