/**
 * Every migration status some QEMUs go through while a test runs: a poller
 * of query-migrate (QEMU has no event for every state on every version) plus
 * the MIGRATION events QMP delivered, so that a brief "postcopy-paused" or
 * "failed" between two polls is still seen.
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
  /** Stops polling; resolves with the statuses seen, the MIGRATION events' statuses merged in. */
  stop(): Promise<string[][]>;
}

export function watchMigration(vms: readonly QemuVm[]): MigrationWatch {
  const seen: string[][] = vms.map(() => []);
  const fromEvent = vms.map((vm) => vm.qmp.events.length);
  let running = true;
  const note = (i: number, status: string): void => {
    const list = seen[i] as string[];
    if (list[list.length - 1] !== status) list.push(status);
  };
  const loops = vms.map(async (vm, i) => {
    while (running) {
      try {
        note(i, (await vm.qmp.queryMigrate()).status ?? 'none');
      } catch {
        return; // the QEMU is gone: its events still count
      }
      await sleep(POLL_MS);
    }
  });
  return {
    seen,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return vms.map((vm, i) => {
        const events = vm.qmp.events.slice(fromEvent[i]).filter((e) => e.event === 'MIGRATION').map((e) => String(e.data['status']));
        return [...new Set([...(seen[i] as string[]), ...events])];
      });
    },
  };
}
