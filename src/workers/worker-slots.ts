import { VmgateError, messageOf } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { WorkerHandle } from './worker-handle.js';

/** A dead worker is replaced after this, doubled while replacements keep dying young. */
const RESPAWN_DELAY_MS = 200;
const RESPAWN_DELAY_MAX_MS = 30_000;
/** A worker that lived this long resets the respawn back-off. */
const HEALTHY_LIFETIME_MS = 10_000;

/**
 * The primary's `workers` slots: which worker process runs in each, which
 * takes the next connection (round robin over the usable ones), and the
 * replacement of one that died, with a back-off while replacements keep
 * dying young (a config that no longer loads, say).
 */
export class WorkerSlots {
  private readonly slots: Array<WorkerHandle | undefined>;
  private readonly respawnDelay: number[];
  private turn = 0;

  constructor(
    size: number,
    private readonly spawn: (slot: number) => WorkerHandle,
    private readonly stopping: () => boolean,
    private readonly log: Logger,
  ) {
    this.slots = new Array<WorkerHandle | undefined>(size).fill(undefined);
    this.respawnDelay = new Array<number>(size).fill(RESPAWN_DELAY_MS);
  }

  /** Starts a worker in every slot; resolves when all are ready, rejects with the first one's start error. */
  async startAll(): Promise<void> {
    for (let i = 0; i < this.slots.length; i += 1) this.slots[i] = this.spawn(i);
    await Promise.all(this.slots.filter((w) => w !== undefined).map((w) => w.ready));
  }

  /** Every worker process that has not been seen to exit. */
  all(): WorkerHandle[] {
    return this.slots.filter((w): w is WorkerHandle => w !== undefined);
  }

  /** Workers that take connections; with `includeStopping`, also those draining whose IPC is still up. */
  live(includeStopping = false): WorkerHandle[] {
    return this.all().filter((w) => (includeStopping ? w.link.connected : w.usable));
  }

  /** The next usable worker, round robin. */
  pick(): WorkerHandle | undefined {
    for (let i = 0; i < this.slots.length; i += 1) {
      const w = this.slots[(this.turn + i) % this.slots.length];
      if (w?.usable) {
        this.turn = (this.turn + i + 1) % this.slots.length;
        return w;
      }
    }
    return undefined;
  }

  /** Worker pids of the usable workers, slot by slot. */
  pids(): number[] {
    return this.live().map((w) => w.pid);
  }

  /** The worker in `slot` exited. */
  vacate(slot: number, w: WorkerHandle): void {
    if (this.slots[slot] === w) this.slots[slot] = undefined;
  }

  /** Starts a replacement in `slot` after the back-off; `livedMs` is how long the one before lived. */
  replace(slot: number, livedMs: number): void {
    const delay = livedMs >= HEALTHY_LIFETIME_MS ? RESPAWN_DELAY_MS : Math.min(RESPAWN_DELAY_MAX_MS, (this.respawnDelay[slot] ?? RESPAWN_DELAY_MS) * 2);
    this.respawnDelay[slot] = delay;
    setTimeout(() => {
      if (this.stopping()) return;
      const w = this.spawn(slot);
      this.slots[slot] = w;
      w.ready.then(
        () => this.log.info({ event: 'worker-started', workerPid: w.pid, workers: this.pids() }, `started worker process ${w.pid} in place of the one that exited`),
        (e: unknown) => {
          const code = e instanceof VmgateError ? e.code : 'internal';
          this.log.error({ event: 'worker-start-failed', cause: code, workerPid: w.pid }, `a replacement worker could not start (${code}): ${messageOf(e)}; trying again in ${Math.min(RESPAWN_DELAY_MAX_MS, delay * 2)} ms`);
          w.kill();
          this.vacate(slot, w);
          if (!this.stopping()) this.replace(slot, 0);
        },
      );
    }, delay).unref();
  }
}
