/**
 * The sender and receiver processes of the synthetic test, driven from the
 * bench: `transfer` pushes bytes through a path and returns what the
 * receiver counted and timed.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { onProcessExit } from '../../src/util/process-exit.js';
import type { ReceiverReport, SenderReport } from './messages.js';

export interface TransferResult {
  bytes: number;
  seconds: number;
  /** The receiver's connections' remote ports (the last hop's local ports). */
  receiverRemotePorts: number[];
  /** The sender's local ports. */
  senderLocalPorts: number[];
}

export interface TransferOptions {
  port: number;
  streams: number;
  bytes: number;
  /** Called once every stream is connected end to end, while data flows. */
  whileConnected?: (ports: { receiverRemotePorts: number[]; senderLocalPorts: number[] }) => Promise<void>;
  timeoutMs: number;
}

export class Traffic {
  private constructor(
    private readonly receiver: ChildProcess,
    private readonly sender: ChildProcess,
    /** The receiver's port: the target every path connects to. */
    readonly targetPort: number,
  ) {}

  static async start(): Promise<Traffic> {
    const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));
    const receiver = fork(here('./receiver-process.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const sender = fork(here('./sender-process.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    for (const c of [receiver, sender]) {
      const forget = onProcessExit(() => c.kill('SIGKILL'));
      c.once('exit', forget);
    }
    const listening = await nextMessage<ReceiverReport>(receiver, 'receiver', 10_000);
    if (listening.type !== 'listening') throw new Error(`receiver: unexpected ${JSON.stringify(listening)}`);
    return new Traffic(receiver, sender, listening.port);
  }

  async transfer(o: TransferOptions): Promise<TransferResult> {
    this.receiver.send({ type: 'expect', connections: o.streams });
    const receiverReports = collect<ReceiverReport>(this.receiver, 'receiver');
    const senderReports = collect<SenderReport>(this.sender, 'sender');
    try {
      this.sender.send({ type: 'send', port: o.port, streams: o.streams, bytes: o.bytes });
      const deadline = Date.now() + o.timeoutMs;
      const sent = await senderReports.next(deadline);
      if (sent.type !== 'connected') throw new Error(`sender: ${JSON.stringify(sent)}`);
      const connected = await receiverReports.next(deadline);
      if (connected.type !== 'connected') throw new Error(`receiver: ${JSON.stringify(connected)}`);
      const ports = { receiverRemotePorts: connected.remotePorts, senderLocalPorts: sent.localPorts };
      await o.whileConnected?.(ports);
      const received = await receiverReports.next(deadline);
      if (received.type !== 'received') throw new Error(`receiver: ${JSON.stringify(received)}`);
      if (received.bytes !== o.bytes) throw new Error(`receiver got ${received.bytes} bytes of ${o.bytes}`);
      // The sender's own report can come after the receiver's; left unread it
      // would be taken as the answer of the next transfer.
      const done = await senderReports.next(deadline);
      if (done.type !== 'sent') throw new Error(`sender: ${JSON.stringify(done)}`);
      return { bytes: received.bytes, seconds: received.seconds, ...ports };
    } finally {
      receiverReports.stop();
      senderReports.stop();
    }
  }

  stop(): void {
    this.receiver.disconnect();
    this.sender.disconnect();
  }
}

/** Messages of a child in order; `next` waits for the next one until a deadline. */
function collect<T>(child: ChildProcess, label: string): { next(deadline: number): Promise<T>; stop(): void } {
  const queue: T[] = [];
  let waiter: ((m: T) => void) | undefined;
  const onMessage = (m: T): void => {
    if (waiter) {
      const w = waiter;
      waiter = undefined;
      w(m);
    } else queue.push(m);
  };
  child.on('message', onMessage);
  return {
    next(deadline: number): Promise<T> {
      const queued = queue.shift();
      if (queued !== undefined) return Promise.resolve(queued);
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiter = undefined;
          reject(new Error(`no report from the ${label} process within the deadline`));
        }, Math.max(0, deadline - Date.now()));
        waiter = (m: T) => {
          clearTimeout(timer);
          resolve(m);
        };
      });
    },
    stop() {
      child.off('message', onMessage);
    },
  };
}

function nextMessage<T>(child: ChildProcess, label: string, timeoutMs: number): Promise<T> {
  const c = collect<T>(child, label);
  return c.next(Date.now() + timeoutMs).finally(() => c.stop());
}
