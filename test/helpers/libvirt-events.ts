/**
 * libvirt's lifecycle events of one daemon, as `virsh event --loop` prints
 * them, for facts only events tell (e.g. that a migration really switched to
 * postcopy: "Suspended Post-copy" on the source).
 *
 *   const events = await LifecycleEvents.watch(hostA);
 *   await createPayloadDomain(hostA, ...);                 // ...
 *   await events.waitFor('vm1', 'Started', 10_000);       // the watch is live from here on
 *   ...
 *   await events.waitFor('vm1', 'Suspended Post-copy', 10_000);
 *   events.stop();
 */
import type { LibvirtDaemon, VirshRun } from './libvirt-daemon.js';

/** One line of `virsh event`: event 'lifecycle' for domain 'NAME': EVENT DETAIL */
const LINE = /^event 'lifecycle' for domain '([^']+)': (.+)$/;

export interface LifecycleEvent {
  readonly domain: string;
  /** Event and detail, e.g. "Started Booted", "Suspended Post-copy", "Stopped Migrated". */
  readonly what: string;
}

export class LifecycleEvents {
  readonly events: LifecycleEvent[] = [];
  private readonly run: VirshRun;
  private partial = '';
  private readonly waiters = new Set<() => void>();
  private ended = false;

  private constructor(daemon: LibvirtDaemon) {
    this.run = daemon.spawnVirsh(['event', '--event', 'lifecycle', '--loop'], (chunk) => this.onChunk(chunk));
    void this.run.done.then(() => {
      this.ended = true;
      for (const w of [...this.waiters]) w();
    });
  }

  /**
   * Starts watching every domain of `daemon`. virsh registers within
   * milliseconds, long before a domain it should see has started (seconds);
   * a first `waitFor(NAME, 'Started')` proves the watch saw it.
   */
  static watch(daemon: LibvirtDaemon): LifecycleEvents {
    return new LifecycleEvents(daemon);
  }

  /** Events of `domain` whose text starts with `what`. */
  of(domain: string, what: string): LifecycleEvent[] {
    return this.events.filter((e) => e.domain === domain && e.what.startsWith(what));
  }

  /** Resolves with the first event of `domain` starting with `what`; rejects on timeout or when virsh ends. */
  waitFor(domain: string, what: string, timeoutMs: number): Promise<LifecycleEvent> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const [hit] = this.of(domain, what);
        if (hit !== undefined) {
          done();
          resolve(hit);
        } else if (this.ended) {
          done();
          void this.run.done.then((r) => reject(new Error(`virsh event ended (exit ${r.code}) before "${what}" of ${domain}: ${r.stderr.trim()}`)));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no lifecycle event "${what}" of ${domain} within ${timeoutMs} ms; seen: ${JSON.stringify(this.events)}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  stop(): void {
    this.run.kill();
  }

  private onChunk(chunk: string): void {
    this.partial += chunk;
    let nl: number;
    while ((nl = this.partial.indexOf('\n')) >= 0) {
      const m = LINE.exec(this.partial.slice(0, nl).trim());
      this.partial = this.partial.slice(nl + 1);
      if (m !== null) this.events.push({ domain: m[1] ?? '', what: m[2] ?? '' });
    }
    for (const w of [...this.waiters]) w();
  }
}
