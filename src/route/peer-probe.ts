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
 * The log says when the state changes (first result, down, back up, another
 * cause), not at every probe.
 */

export type PeerState = 'unknown' | 'up' | 'down';

export interface PeerProbeStatus {
  state: PeerState;
  /** When the state last changed (ISO time). */
  since: string | undefined;
  /** When a probe last succeeded (ISO time). */
  lastOk: string | undefined;
  /** Why the peer is down. */
  cause: ErrorCode | undefined;
  message: string | undefined;
}

export interface PeerProbeOptions {
  /** 0: never probe. */
  intervalMs: number;
  /** One probe: resolves when the peer accepted, throws why not; `signal` fires when the gateway stops. */
  check: (signal: AbortSignal) => Promise<void>;
  /** Called after every probe. */
  onResult: (up: boolean) => void;
  /** Who is probed, for the log: "host-b (10.0.0.2:7443) target incoming". */
  describe: string;
  log: Logger;
}

export class PeerProbe {
  private state: PeerState = 'unknown';
  private since: Date | undefined;
  private lastOk: Date | undefined;
  private cause: VmgateError | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Aborts the probe in flight when the gateway stops, so that a dead peer cannot hold the process up. */
  private readonly stopping = new AbortController();
  private stopped = false;

  constructor(private readonly o: PeerProbeOptions) {}

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
    return {
      state: this.state,
      since: this.since?.toISOString(),
      lastOk: this.lastOk?.toISOString(),
      cause: this.cause?.code,
      message: this.cause?.message,
    };
  }

  private schedule(ms: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.probe().finally(() => {
        this.running = undefined;
        if (!this.stopped) this.schedule(this.o.intervalMs);
      });
    }, ms);
    // A probe never keeps the process alive.
    this.timer.unref();
  }

  private async probe(): Promise<void> {
    try {
      await this.o.check(this.stopping.signal);
      if (!this.stopped) this.up();
    } catch (e: unknown) {
      if (!this.stopped) this.down(e instanceof VmgateError ? e : new VmgateError('internal', messageOf(e), { cause: e }));
    }
  }

  private up(): void {
    this.lastOk = new Date();
    this.o.onResult(true);
    if (this.state === 'up') return;
    const was = this.state;
    this.change('up', undefined);
    this.o.log.info({ event: 'peer-up', was }, `peer ${this.o.describe}: reachable, authenticated and allowed${was === 'down' ? ' again' : ''}`);
  }

  private down(e: VmgateError): void {
    this.o.onResult(false);
    if (this.state === 'down' && this.cause?.code === e.code) {
      this.o.log.debug({ event: 'peer-down', cause: e.code }, `peer ${this.o.describe} still refuses (${e.code}): ${e.message}`);
      return;
    }
    this.change('down', e);
    this.o.log.warn(
      { event: 'peer-down', cause: e.code },
      `peer ${this.o.describe}: a migration on this route would fail now (${e.code}): ${e.message}; checking again every ${Math.round(this.o.intervalMs / 1000)} s`,
    );
  }

  private change(state: PeerState, cause: VmgateError | undefined): void {
    this.state = state;
    this.since = new Date();
    this.cause = cause;
  }
}
