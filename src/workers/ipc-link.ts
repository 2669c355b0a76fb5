import type { ChildProcess } from 'node:child_process';
import type { Server, Socket } from 'node:net';
import { VmgateError, isErrorCode, messageOf } from '../errors.js';

/** Request operations one side serves: op name -> argument and answer. */
export type OpMap = Record<string, { args: unknown; answer: unknown }>;

export type OpHandlers<Ops extends OpMap> = { [K in keyof Ops]: (args: Ops[K]['args']) => Promise<Ops[K]['answer']> | Ops[K]['answer'] };

/** A message with a socket attached (a connection handed to a worker). */
export type NoticeHandler<N> = (notice: N, handle: Socket | undefined) => void;

type Wire =
  | { t: 'n'; body: unknown }
  | { t: 'q'; id: number; op: string; args: unknown }
  | { t: 'r'; id: number; ok: true; answer: unknown }
  | { t: 'r'; id: number; ok: false; code: string; message: string };

type Endpoint = ChildProcess | NodeJS.Process;

/**
 * Typed messages between the primary and one worker over the IPC channel of
 * child_process.fork: one-way notices (which may carry a socket) and
 * requests answered by the other side's handlers. Errors cross as coded
 * VmgateErrors. When the channel closes, every pending request fails with
 * `worker-exited`, so nobody waits for an answer that cannot come.
 *
 * `Mine` are the requests this side serves, `Theirs` the ones it may send.
 */
export class IpcLink<Mine extends OpMap, Theirs extends OpMap, NoticeIn, NoticeOut> {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  private closed = false;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly handlers: OpHandlers<Mine>,
    private readonly onNotice: NoticeHandler<NoticeIn>,
    private readonly peerName: string,
  ) {
    endpoint.on('message', (m: Wire, handle: unknown) => this.receive(m, handle as Socket | undefined));
    endpoint.on('disconnect', () => this.close());
  }

  get connected(): boolean {
    return !this.closed && this.endpoint.connected === true;
  }

  /** Sends a notice, optionally handing over a socket; `sent` learns whether the socket was handed over. */
  notify(body: NoticeOut, handle?: Socket | Server, sent?: (error: Error | null) => void): void {
    this.write({ t: 'n', body }, handle, sent);
  }

  request<K extends keyof Theirs & string>(op: K, args: Theirs[K]['args']): Promise<Theirs[K]['answer']> {
    if (!this.connected) return Promise.reject(this.gone());
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve, reject });
      this.write({ t: 'q', id, op, args });
    });
  }

  /** Fails every pending request (with `reason`, else "gone"); later sends are dropped. */
  close(reason?: VmgateError): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) p.reject(reason ?? this.gone());
    this.pending.clear();
  }

  private gone(): VmgateError {
    return new VmgateError('worker-exited', `${this.peerName} is gone (its process exited or closed the IPC channel)`);
  }

  private write(m: Wire, handle?: Socket | Server, sent?: (error: Error | null) => void): void {
    const done = (e: Error | null): void => {
      if (e) this.close();
      sent?.(e);
    };
    if (!this.connected) {
      done(this.gone());
      return;
    }
    try {
      if (handle) (this.endpoint.send as (m: unknown, h: unknown, cb: (e: Error | null) => void) => boolean)(m, handle, done);
      else (this.endpoint.send as (m: unknown, cb: (e: Error | null) => void) => boolean)(m, done);
    } catch (e: unknown) {
      // The channel closed between the check and the send.
      done(e instanceof Error ? e : new Error(messageOf(e)));
    }
  }

  private receive(m: Wire, handle: Socket | undefined): void {
    if (m.t === 'n') {
      this.onNotice(m.body as NoticeIn, handle);
      return;
    }
    if (m.t === 'r') {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.answer);
      else p.reject(new VmgateError(isErrorCode(m.code) ? m.code : 'internal', m.message));
      return;
    }
    void this.serve(m.id, m.op, m.args);
  }

  private async serve(id: number, op: string, args: unknown): Promise<void> {
    const handler = (this.handlers as Record<string, ((a: unknown) => unknown) | undefined>)[op];
    try {
      if (!handler) throw new VmgateError('protocol-violation', `unknown IPC request ${op}`);
      const answer = await handler(args);
      this.write({ t: 'r', id, ok: true, answer: answer ?? null });
    } catch (e: unknown) {
      const code = e instanceof VmgateError ? e.code : 'internal';
      this.write({ t: 'r', id, ok: false, code, message: messageOf(e) });
    }
  }
}
