import { fork, type ChildProcess } from 'node:child_process';
import { INSTANCE_ENV } from '../server/gateway-instance.js';
import { fileURLToPath } from 'node:url';
import { VmgateError, isErrorCode } from '../errors.js';
import { IpcLink, type NoticeHandler, type OpHandlers } from './ipc-link.js';
import type { PrimaryNotice, PrimaryOps, WorkerNotice, WorkerOps } from './messages.js';

const WORKER_MAIN = fileURLToPath(new URL('./worker-main.js', import.meta.url));

export type WorkerLink = IpcLink<PrimaryOps, WorkerOps, PrimaryNotice, WorkerNotice>;

export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

let nextId = 1;

/**
 * One forked worker process as the primary sees it: its IPC link, whether
 * it has started, and its exit. Route channels handed to it and not yet
 * released are kept here, so that they can be accounted for if it dies.
 */
export class WorkerHandle {
  readonly id = nextId++;
  readonly pid: number;
  readonly link: WorkerLink;
  readonly startedAt = Date.now();
  /** Settles once the worker said ready; rejects with its coded start error, or if it exits first. */
  readonly ready: Promise<void>;
  readonly exited: Promise<WorkerExit>;
  /** Route channels handed over and not yet released: `route/session/channel`. */
  readonly routeChannels = new Set<string>();
  isReady = false;
  /** Set when the primary asked it to stop: its exit is then expected. */
  stopping = false;
  private readonly child: ChildProcess;

  /** `instance`: the gateway's (server/gateway-instance.ts), which the worker's WELCOME must name. */
  constructor(configFile: string, instance: string, handlers: (w: WorkerHandle) => OpHandlers<PrimaryOps>, onNotice: (w: WorkerHandle, n: PrimaryNotice) => void) {
    // No inherited execArgv: the primary may run under a test runner or inspector.
    this.child = fork(WORKER_MAIN, [configFile], { env: { ...process.env, [INSTANCE_ENV]: instance }, execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' });
    this.pid = this.child.pid ?? -1;
    let settleReady: { resolve: () => void; reject: (e: unknown) => void } | undefined;
    this.ready = new Promise((resolve, reject) => (settleReady = { resolve, reject }));
    this.ready.catch(() => undefined);
    const notice: NoticeHandler<PrimaryNotice> = (n) => {
      if (n.kind === 'ready') {
        this.isReady = true;
        settleReady?.resolve();
      } else if (n.kind === 'start-failed') {
        settleReady?.reject(new VmgateError(isErrorCode(n.code) ? n.code : 'internal', n.message));
      } else {
        onNotice(this, n);
      }
    };
    this.link = new IpcLink(this.child, handlers(this), notice, `worker process ${this.pid}`);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.link.close();
        settleReady?.reject(new VmgateError('worker-exited', `worker process ${this.pid} exited (${describeExit({ code, signal })}) before it was ready`));
        resolve({ code, signal });
      });
    });
  }

  /** Ready, and not stopping: may be given new connections. */
  get usable(): boolean {
    return this.isReady && !this.stopping && this.link.connected;
  }

  stop(graceMs: number): void {
    this.stopping = true;
    this.link.notify({ kind: 'stop', graceMs });
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

export function describeExit(e: WorkerExit): string {
  return e.signal ? `killed by ${e.signal}` : `exit code ${e.code}`;
}
