import { VmgateError, messageOf, type ErrorCode } from '../errors.js';
import type { Logger } from '../log/logger.js';

/**
 * Checks a route's peer ahead of any migration, every `intervalMs`: TLS with
 * both certificates, SASL, and whether the peer would open the route's
 * target (PROBE, docs/protocol.md). Two reasons:
 *
 * - The operator learns that a route is broken (peer down, certificate
 *   refused, wrong password, target not allowed) when it breaks, with the
 *   cause, in the log, `vmgate status` and `vmgate_peer_up`; not at the start
 *   of an evacuation.
 * - The path stays warm: the peer's login cache and this gateway's TLS
 *   session ticket are fresh, so a migration's first channel resumes TLS and
 *   skips the scrypt run (about 60 ms here, docs/performance.md).
 *   Neither skips a check (SECURITY.md).
 *
 * A peer with several addresses (paths) has each probed at every round, on
 * its own connection: each path has its own verdict, so a broken second
 * network is known before the first one fails, and `firstPathUp` tells
 * which path a channel would take now.
 *
 * The log says when a path's state changes (first result, down, back up,
 * another cause), not at every probe.
 */

export type PeerState = 'unknown' | 'up' | 'down';

/** The last verdict on one path (one address of the peer). */
export interface PathProbeStatus {
  /** The path's address, HOST:PORT as configured. */
  address: string;
  state: PeerState;
  /** When the state last changed (ISO time). */
  since: string | undefined;
  /** When a probe of this path last succeeded (ISO time). */
  lastOk: string | undefined;
  /** When this path was last checked, whatever the result (ISO time). */
  lastChecked: string | undefined;
  /** Why the path is down. */
  cause: ErrorCode | undefined;
  message: string | undefined;
}

/**
 * The route's verdict: up when some path is up (a migration would get
 * through), down when every path is down, unknown until then; with the
 * cause of the most preferred path that is down. `paths`: each path's own,
 * in the configured order.
 */
export interface PeerProbeStatus {
  state: PeerState;
  /** When the route's state last changed (ISO time). */
  since: string | undefined;
  /** When a probe of any path last succeeded (ISO time). */
  lastOk: string | undefined;
  cause: ErrorCode | undefined;
  message: string | undefined;
  paths: PathProbeStatus[];
}

export interface PeerProbeOptions {
  /** 0: never probe. */
  intervalMs: number;
  /** The paths' addresses (HOST:PORT), in order of preference. */
  paths: readonly string[];
  /** One probe of one path: resolves when the peer accepted, throws why not; `signal` fires when the gateway stops. */
  check: (path: number, signal: AbortSignal) => Promise<void>;
  /** Called after every probe of a path. */
  onResult: (path: number, up: boolean) => void;
  /** Who is probed over a path, for the log: "host-b (10.0.0.2:7443) target incoming". */
  describe: (path: number) => string;
  log: Logger;
}

/** What one path's probes found, kept between rounds. */
class PathState {
  state: PeerState = 'unknown';
  since: Date | undefined;
  lastOk: Date | undefined;
  lastChecked: Date | undefined;
  cause: VmgateError | undefined;

  constructor(readonly address: string) {}

  status(): PathProbeStatus {
    return {
      address: this.address,
      state: this.state,
      since: this.since?.toISOString(),
      lastOk: this.lastOk?.toISOString(),
      lastChecked: this.lastChecked?.toISOString(),
      cause: this.cause?.code,
      message: this.cause?.message,
    };
  }
}

export class PeerProbe {
  private readonly paths: PathState[];
  private routeState: PeerState = 'unknown';
  private routeSince: Date | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Aborts the probes in flight when the gateway stops, so that a dead peer cannot hold the process up. */
  private readonly stopping = new AbortController();
  private stopped = false;

  constructor(private readonly o: PeerProbeOptions) {
    this.paths = o.paths.map((a) => new PathState(a));
  }

  /** Probes now, then every interval. */
  start(): void {
    if (this.o.intervalMs > 0) this.schedule(0);
  }

  /** Probes again at once (after a reload changed certificates or passwords), unless a probe is running. */
  now(): void {
    if (this.o.intervalMs > 0 && !this.stopped && this.running === undefined) this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.stopping.abort(new VmgateError('shutdown', 'the gateway is stopping'));
  }

  status(): PeerProbeStatus {
    const paths = this.paths.map((p) => p.status());
    const down = paths.find((p) => p.state === 'down');
    const lastOk = paths.map((p) => p.lastOk).filter((t): t is string => t !== undefined).sort().pop();
    return {
      state: this.routeState,
      since: this.routeSince?.toISOString(),
      lastOk,
      cause: this.routeState === 'down' ? down?.cause : undefined,
      message: this.routeState === 'down' ? down?.message : undefined,
      paths,
    };
  }

  /** The index of the most preferred path the last probe of each found up; undefined when none is (or none was probed yet). */
  firstPathUp(): number | undefined {
    const i = this.paths.findIndex((p) => p.state === 'up');
    return i < 0 ? undefined : i;
  }

  private schedule(ms: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.round().finally(() => {
        this.running = undefined;
        if (!this.stopped) this.schedule(this.o.intervalMs);
      });
    }, ms);
    // A probe never keeps the process alive.
    this.timer.unref();
  }

  /** Every path at once, each on its own connection; the log follows when all have answered, so a line can say which path is left. */
  private async round(): Promise<void> {
    const results = await Promise.all(this.paths.map((_, i) => this.checkPath(i)));
    if (this.stopped) return;
    const at = new Date();
    results.forEach((r, i) => {
      const p = this.paths[i] as PathState;
      p.lastChecked = at;
      if (r === undefined) p.lastOk = at;
    });
    // Ups first, so that a path's down line can name the path channels take instead.
    results.forEach((r, i) => (r === undefined ? this.up(i, at) : undefined));
    results.forEach((r, i) => (r === undefined ? undefined : this.down(i, r, at)));
    const route: PeerState = this.paths.some((p) => p.state === 'up') ? 'up' : this.paths.every((p) => p.state === 'down') ? 'down' : 'unknown';
    if (route !== this.routeState) {
      this.routeState = route;
      this.routeSince = at;
    }
    // Last: whoever hears of a result finds status() and firstPathUp() already telling it.
    results.forEach((r, i) => this.o.onResult(i, r === undefined));
  }

  /** One path's probe: undefined when it passed, else why not. */
  private async checkPath(i: number): Promise<VmgateError | undefined> {
    try {
      await this.o.check(i, this.stopping.signal);
      return undefined;
    } catch (e: unknown) {
      return e instanceof VmgateError ? e : new VmgateError('internal', messageOf(e), { cause: e });
    }
  }

  private up(i: number, at: Date): void {
    const p = this.paths[i] as PathState;
    if (p.state === 'up') return;
    const was = p.state;
    this.change(p, 'up', undefined, at);
    this.o.log.info({ event: 'peer-up', was, ...this.fields(i) }, `peer ${this.o.describe(i)}: reachable, authenticated and allowed${was === 'down' ? ' again' : ''}`);
  }

  private down(i: number, e: VmgateError, at: Date): void {
    const p = this.paths[i] as PathState;
    if (p.state === 'down' && p.cause?.code === e.code) {
      this.o.log.debug({ event: 'peer-down', cause: e.code, ...this.fields(i) }, `peer ${this.o.describe(i)} still refuses (${e.code}): ${e.message}`);
      return;
    }
    this.change(p, 'down', e, at);
    const other = this.paths.findIndex((q) => q.state === 'up');
    const verdict = other < 0
      ? `a migration on this route would fail now (${e.code}): ${e.message}`
      : `unusable (${e.code}): ${e.message}; channels take path ${other + 1} (${this.paths[other]?.address ?? '?'}) instead`;
    this.o.log.warn(
      { event: 'peer-down', cause: e.code, ...this.fields(i) },
      `peer ${this.o.describe(i)}: ${verdict}; checking again every ${Math.round(this.o.intervalMs / 1000)} s`,
    );
  }

  /** Log fields of path `i`: only for a route with several paths, so a one-path route logs as it always did. */
  private fields(i: number): { path?: number; address?: string } {
    return this.paths.length > 1 ? { path: i, address: this.paths[i]?.address ?? '' } : {};
  }

  private change(p: PathState, state: PeerState, cause: VmgateError | undefined, at: Date): void {
    p.state = state;
    p.since = at;
    p.cause = cause;
  }
}
