/**
 * The client end of a version 2 channel's data phase, spoken by hand
 * (src/relay/records.ts): a test that plays the source gateway holds the
 * channel's byte counts itself, so it can claim counts an honest gateway
 * never would, and check what the server resends after a CONTINUE.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ErrorCode } from '../../src/errors.js';
import { RecordParser, ackRecord, dataHeader } from '../../src/relay/records.js';
import { waitFor } from './wait-for.js';

/** ACKs as keepalive, well inside the server's channel.linkTimeoutMs. */
const KEEPALIVE_MS = 1_000;

export class RecordPeer {
  /** Payload bytes taken from the server on this hop, in order. */
  readonly received: Buffer[] = [];
  /** Payload bytes taken from the server on this hop. */
  receivedBytes = 0;
  /** The highest count the server acknowledged of our DATA on this hop. */
  acked = 0;
  /** The server's ABORT record, if it sent one. */
  aborted: { code: ErrorCode; message: string } | undefined;
  private frozen = false;
  private readonly keepalive: NodeJS.Timeout;

  /** `base`: payload bytes of the server's that came before this hop, so ACKs stay cumulative. */
  constructor(
    readonly tls: TLSSocket,
    readonly raw: Socket,
    initial: Buffer,
    private readonly base = 0,
  ) {
    const parser = new RecordParser({
      data: (payload) => {
        this.received.push(Buffer.from(payload));
        this.receivedBytes += payload.length;
      },
      ack: (received) => {
        this.acked = received;
      },
      end: () => undefined,
      abort: (code, message) => {
        this.aborted = { code, message };
      },
    });
    const take = (chunk: Buffer): void => {
      if (!this.frozen) parser.push(chunk);
    };
    tls.on('data', take);
    tls.on('error', () => undefined);
    raw.on('error', () => undefined);
    take(initial);
    // The control phase left the socket paused.
    tls.resume();
    this.keepalive = setInterval(() => this.ack(), KEEPALIVE_MS);
    this.keepalive.unref();
    // Our first record tells the server we have the channel: only then does it heal a lost hop.
    this.ack();
  }

  /** One DATA record. */
  send(payload: Buffer): void {
    this.tls.write(Buffer.concat([dataHeader(payload.length), payload]));
  }

  /** ACK of everything taken so far (cumulative over the channel's hops). */
  ack(): void {
    if (!this.frozen && this.tls.writable) this.tls.write(ackRecord(this.base + this.receivedBytes, false));
  }

  /** Takes nothing more from this hop: what the server sends from now on is lost with it. */
  freeze(): void {
    this.frozen = true;
    clearInterval(this.keepalive);
  }

  /** What was taken, as one buffer. */
  bytes(): Buffer {
    return Buffer.concat(this.received);
  }

  waitReceived(n: number, what: string): Promise<true> {
    return waitFor(() => this.receivedBytes >= n, { what: `${n} bytes from the server (${what}); have ${this.receivedBytes}` });
  }

  waitAcked(n: number, what: string): Promise<true> {
    return waitFor(() => this.acked >= n, { what: `the server to acknowledge ${n} bytes (${what}); it did ${this.acked}` });
  }

  /** Loses the hop the way a NAT that forgets it does: a TCP reset, no END. */
  reset(): void {
    this.freeze();
    this.raw.resetAndDestroy();
    this.tls.destroy();
  }

  /** Loses the hop with a clean TCP close but no END record: what we wrote before it is read first. */
  close(): void {
    this.freeze();
    this.tls.end();
  }
}
