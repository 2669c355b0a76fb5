/**
 * A small QMP client (QEMU's JSON control protocol) for the demo and the
 * end-to-end tests: one unix socket, one command in flight at a time (QMP
 * answers in order), asynchronous events collected.
 *
 *   const qmp = await QmpClient.connect('/tmp/x/qmp.sock');   // greeting + qmp_capabilities
 *   await qmp.execute('migrate-set-capabilities', { capabilities: [...] });
 *   const info = await qmp.waitForMigration(['completed'], 30_000);
 *   qmp.close();
 *
 * `execute` resolves with QMP's `return` value or rejects with a `QmpError`
 * carrying QMP's error class and description.
 */
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { QmpError } from '../errors.js';

export interface QmpEvent {
  readonly event: string;
  readonly data: Record<string, unknown>;
  readonly timestamp: { readonly seconds: number; readonly microseconds: number };
}

/** What `query-migrate` returns (the fields vmgate reads; QEMU adds more). */
export interface MigrationInfo {
  readonly status?: string;
  readonly 'error-desc'?: string;
  readonly 'total-time'?: number;
  readonly 'setup-time'?: number;
  readonly downtime?: number;
  readonly 'expected-downtime'?: number;
  readonly ram?: {
    readonly transferred: number;
    readonly total: number;
    readonly remaining: number;
    readonly duplicate: number;
    readonly normal: number;
    readonly mbps: number;
    readonly 'dirty-sync-count': number;
    readonly 'postcopy-requests': number;
    readonly [key: string]: unknown;
  };
  readonly [key: string]: unknown;
}

/** Final migration states: reaching one of these that was not asked for is an error. */
export const MIGRATION_FINAL_STATES: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled']);

/** A QMP line longer than this (no newline yet) ends the connection: QEMU never sends one. */
const QMP_MAX_LINE = 16 * 1024 * 1024;
/** Events kept in `QmpClient.events`; older ones are dropped first. */
const QMP_MAX_EVENTS = 10_000;

interface Pending {
  readonly command: string;
  resolve(value: unknown): void;
  reject(e: Error): void;
}

export interface QmpConnectOptions {
  /** How long to keep retrying while the socket does not exist yet / refuses. Default 10 s. */
  readonly timeoutMs?: number;
}

export class QmpClient {
  /** The asynchronous events QEMU sent since connect (the last `QMP_MAX_EVENTS`), in arrival order. */
  readonly events: QmpEvent[] = [];
  readonly path: string;
  private readonly socket: Socket;
  private buffer = '';
  private readonly pending: Pending[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private closedError: Error | undefined;
  private readonly eventWaiters = new Set<() => void>();

  private constructor(path: string, socket: Socket) {
    this.path = path;
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error(`QMP socket ${path} closed`)));
  }

  /**
   * Connects to a QMP unix socket (retrying until it appears, QEMU creates it a
   * moment after start), reads the greeting and negotiates capabilities.
   */
  static async connect(path: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const deadline = Date.now() + (options.timeoutMs ?? 10_000);
    for (;;) {
      try {
        const socket = await openSocket(path);
        const client = new QmpClient(path, socket);
        try {
          // The greeting is the first line; it is awaited like a command's answer.
          await client.enqueue('(greeting)', () => undefined);
          await client.execute('qmp_capabilities');
        } catch (e: unknown) {
          client.close();
          throw e;
        }
        return client;
      } catch (e: unknown) {
        if (Date.now() > deadline) throw new Error(`QMP connect ${path} timed out`, { cause: e });
        await sleep(25);
      }
    }
  }

  /** Runs one QMP command; resolves with its `return`, rejects with `QmpError`. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    const message = args === undefined ? { execute: command } : { execute: command, arguments: args };
    return this.enqueue(command, () => this.socket.write(`${JSON.stringify(message)}\n`)) as Promise<T>;
  }

  /** `query-migrate` once. */
  queryMigrate(): Promise<MigrationInfo> {
    return this.execute<MigrationInfo>('query-migrate');
  }

  /** `query-status` once: the VM run state ("prelaunch", "paused", "inmigrate", "postmigrate", ...). */
  async runState(): Promise<string> {
    const r = await this.execute<{ status: string }>('query-status');
    return r.status;
  }

  /**
   * Polls `query-migrate` until its status is one of `statuses`, then returns
   * that info. When the awaited status is "completed" on a migration source
   * (the info has `ram`), it keeps polling until `total-time` is non-zero —
   * QEMU 7.2 reports "completed" a moment before the statistics, with
   * total-time and downtime 0 and the last iteration's mbps.
   * Reaching a final state that was not asked for ("failed", "cancelled",
   * "completed") throws at once with QEMU's error-desc.
   */
  async waitForMigration(statuses: Iterable<string>, timeoutMs: number, pollMs = 50): Promise<MigrationInfo> {
    const wanted = new Set(statuses);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const last = await this.queryMigrate();
      const status = last.status ?? 'none';
      if (wanted.has(status)) {
        // 7.2 shows total-time 0 (and a stale mbps/downtime) until the statistics are final.
        const statsPending = status === 'completed' && last.ram !== undefined && !((last['total-time'] ?? 0) > 0);
        if (!statsPending) return last;
      } else if (MIGRATION_FINAL_STATES.has(status)) {
        const desc = last['error-desc'] === undefined ? '' : `: ${last['error-desc']}`;
        throw new Error(`migration ended "${status}" while waiting for ${[...wanted].join('|')}${desc}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`migration still "${status}" after ${timeoutMs} ms, waiting for ${[...wanted].join('|')}`);
      }
      await sleep(pollMs);
    }
  }

  /** Polls `query-status` until the run state is one of `states`; returns it. */
  async waitForRunState(states: Iterable<string>, timeoutMs: number, pollMs = 50): Promise<string> {
    const wanted = new Set(states);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const state = await this.runState();
      if (wanted.has(state)) return state;
      if (Date.now() > deadline) {
        throw new Error(`run state still "${state}" after ${timeoutMs} ms, waiting for ${[...wanted].join('|')}`);
      }
      await sleep(pollMs);
    }
  }

  /**
   * Resolves with the first event (already received or still to come) named
   * `name` that satisfies `predicate`.
   */
  waitForEvent(name: string, timeoutMs: number, predicate: (e: QmpEvent) => boolean = () => true): Promise<QmpEvent> {
    const find = (): QmpEvent | undefined => this.events.find((e) => e.event === name && predicate(e));
    const found = find();
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<QmpEvent>((resolve, reject) => {
      const check = (): void => {
        const e = find();
        if (e !== undefined) {
          done();
          resolve(e);
        } else if (this.closedError !== undefined) {
          done();
          reject(this.closedError);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`QMP event ${name} not seen within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.eventWaiters.delete(check);
      };
      this.eventWaiters.add(check);
    });
  }

  /** Closes the socket; pending commands reject. Idempotent. */
  close(): void {
    this.fail(new Error('QMP client closed'));
    this.socket.destroy();
  }

  private enqueue(command: string, send: () => void): Promise<unknown> {
    const run = (): Promise<unknown> =>
      new Promise<unknown>((resolve, reject) => {
        if (this.closedError !== undefined) {
          reject(this.closedError);
          return;
        }
        this.pending.push({ command, resolve, reject });
        send();
      });
    const result = this.chain.then(run, run);
    this.chain = result.catch(() => undefined);
    return result;
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line !== '') this.onMessage(line);
    }
    if (this.buffer.length > QMP_MAX_LINE) {
      this.fail(new Error(`QMP sent more than ${QMP_MAX_LINE} bytes without a newline`));
      this.socket.destroy();
    }
  }

  private onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.fail(new Error(`QMP sent a line that is not JSON: ${line.slice(0, 200)}`));
      return;
    }
    if (typeof msg['event'] === 'string') {
      this.events.push({
        event: msg['event'],
        data: (msg['data'] ?? {}) as Record<string, unknown>,
        timestamp: (msg['timestamp'] ?? { seconds: 0, microseconds: 0 }) as QmpEvent['timestamp'],
      });
      if (this.events.length > QMP_MAX_EVENTS) this.events.shift();
      for (const check of [...this.eventWaiters]) check();
      return;
    }
    const waiter = this.pending.shift();
    if (waiter === undefined) return;
    if ('QMP' in msg || 'return' in msg) {
      waiter.resolve(msg['return']);
    } else if (typeof msg['error'] === 'object' && msg['error'] !== null) {
      const err = msg['error'] as { class?: unknown; desc?: unknown };
      waiter.reject(new QmpError(waiter.command, String(err.class), String(err.desc)));
    } else {
      waiter.reject(new Error(`QMP ${waiter.command}: unexpected answer ${line.slice(0, 200)}`));
    }
  }

  private fail(e: Error): void {
    if (this.closedError !== undefined) return;
    this.closedError = e;
    for (const p of this.pending.splice(0)) p.reject(e);
    for (const check of [...this.eventWaiters]) check();
  }
}

function openSocket(path: string): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const socket = connect(path);
    const onError = (e: Error): void => {
      socket.destroy();
      reject(e);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
