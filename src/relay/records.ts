/**
 * The data phase of protocol version 2 (docs/protocol.md §5): QEMU's bytes
 * travel in DATA records, and the receiver acknowledges what it has read
 * (ACK), so that the sender can keep exactly what a broken hop may have lost
 * and resend it on the next connection. A direction's normal end is a record
 * (END), because with healing a TCP close is no longer proof of one; an end
 * the gateway chose travels with its cause (ABORT).
 *
 *   DATA  0x01 | length u32 BE | payload            1 <= length <= MAX_DATA_LENGTH
 *   ACK   0x02 | received u64 BE | ended u8 (0|1)   cumulative payload bytes read; ended: END read too
 *   END   0x03
 *   ABORT 0x04 | length u16 BE | UTF-8 JSON {code, message}
 *
 * Pure: bytes in, events out; it never touches a socket.
 */
import { type ErrorCode, isErrorCode, VmgateError } from '../errors.js';

const RecordType = { DATA: 1, ACK: 2, END: 3, ABORT: 4 } as const;

/** Bytes before a DATA record's payload: the sender reserves them in front of each read (ReusedBufferReader headroom). */
export const DATA_HEADER_BYTES = 5;
const ACK_BYTES = 10;
const ABORT_HEADER_BYTES = 3;
/** A DATA record never carries more than one read buffer; 16 MiB leaves room. */
export const MAX_DATA_LENGTH = 16 << 20;
const MAX_ABORT_LENGTH = 1024;
const MAX_ABORT_MESSAGE = 512;

/** Writes a DATA header for `length` payload bytes at the start of `buf`. */
export function writeDataHeader(buf: Buffer, length: number): void {
  buf[0] = RecordType.DATA;
  buf.writeUInt32BE(length, 1);
}

export function dataHeader(length: number): Buffer {
  const b = Buffer.allocUnsafe(DATA_HEADER_BYTES);
  writeDataHeader(b, length);
  return b;
}

export function ackRecord(received: number, ended: boolean): Buffer {
  const b = Buffer.allocUnsafe(ACK_BYTES);
  b[0] = RecordType.ACK;
  b.writeUInt32BE(Math.floor(received / 2 ** 32), 1);
  b.writeUInt32BE(received >>> 0, 5);
  b[9] = ended ? 1 : 0;
  return b;
}

export const END_RECORD: Buffer = Buffer.from([RecordType.END]);

export function abortRecord(code: ErrorCode, message: string): Buffer {
  const text = message.length > MAX_ABORT_MESSAGE ? `${message.slice(0, MAX_ABORT_MESSAGE - 1)}…` : message;
  let body = Buffer.from(JSON.stringify({ code, message: text }), 'utf8');
  if (body.length > MAX_ABORT_LENGTH) body = Buffer.from(JSON.stringify({ code, message: '(message too long)' }), 'utf8');
  const b = Buffer.allocUnsafe(ABORT_HEADER_BYTES + body.length);
  b[0] = RecordType.ABORT;
  b.writeUInt16BE(body.length, 1);
  body.copy(b, ABORT_HEADER_BYTES);
  return b;
}

/** What the parser found; `data` gets views of the pushed chunk, valid while the chunk is. */
export interface RecordSink {
  data(payload: Buffer): void;
  ack(received: number, ended: boolean): void;
  end(): void;
  abort(code: ErrorCode, message: string): void;
}

/**
 * Incremental parser. A record may be split anywhere across chunks; a DATA
 * payload is handed on in pieces as it arrives (never copied), headers are
 * collected in a small scratch buffer. Throws `frame-malformed` or
 * `protocol-violation` on bytes no honest peer sends.
 */
export class RecordParser {
  private readonly scratch = Buffer.allocUnsafe(ABORT_HEADER_BYTES + MAX_ABORT_LENGTH);
  /** Header bytes collected so far (0: between records). */
  private have = 0;
  /** Header bytes the current record needs (known once its type byte is in). */
  private need = 0;
  /** Payload bytes of the current DATA record still to come. */
  private payloadLeft = 0;

  constructor(private readonly sink: RecordSink) {}

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, chunk.length - at);
        this.payloadLeft -= n;
        this.sink.data(at === 0 && n === chunk.length ? chunk : chunk.subarray(at, at + n));
        at += n;
        continue;
      }
      if (this.have === 0) this.need = headerLength(chunk[at] ?? 0);
      const n = Math.min(this.need - this.have, chunk.length - at);
      chunk.copy(this.scratch, this.have, at, at + n);
      this.have += n;
      at += n;
      if (this.have === ABORT_HEADER_BYTES && this.scratch[0] === RecordType.ABORT) {
        const length = this.scratch.readUInt16BE(1);
        if (length === 0 || length > MAX_ABORT_LENGTH) throw new VmgateError('frame-malformed', `ABORT record of ${length} bytes (1..${MAX_ABORT_LENGTH})`);
        this.need = ABORT_HEADER_BYTES + length;
      }
      if (this.have < this.need) continue;
      this.have = 0;
      this.complete();
    }
  }

  /** True between records: a hop that ends here ended on a record boundary. */
  get idle(): boolean {
    return this.have === 0 && this.payloadLeft === 0;
  }

  private complete(): void {
    const s = this.scratch;
    switch (s[0]) {
      case RecordType.DATA: {
        const length = s.readUInt32BE(1);
        if (length === 0 || length > MAX_DATA_LENGTH) throw new VmgateError('frame-malformed', `DATA record of ${length} bytes (1..${MAX_DATA_LENGTH})`);
        this.payloadLeft = length;
        return;
      }
      case RecordType.ACK: {
        const received = s.readUInt32BE(1) * 2 ** 32 + s.readUInt32BE(5);
        const ended = s[9];
        if (received > Number.MAX_SAFE_INTEGER || (ended !== 0 && ended !== 1)) throw new VmgateError('frame-malformed', 'ACK record out of range');
        this.sink.ack(received, ended === 1);
        return;
      }
      case RecordType.END:
        this.sink.end();
        return;
      default: {
        const { code, message } = parseAbort(s.subarray(ABORT_HEADER_BYTES, this.need));
        this.sink.abort(code, message);
      }
    }
  }
}

function headerLength(type: number): number {
  switch (type) {
    case RecordType.DATA:
      return DATA_HEADER_BYTES;
    case RecordType.ACK:
      return ACK_BYTES;
    case RecordType.END:
      return 1;
    case RecordType.ABORT:
      return ABORT_HEADER_BYTES;
    default:
      throw new VmgateError('protocol-violation', `unknown data-phase record type ${type}`);
  }
}

function parseAbort(body: Buffer): { code: ErrorCode; message: string } {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (e: unknown) {
    throw new VmgateError('frame-malformed', 'ABORT record body is not JSON', { cause: e });
  }
  if (typeof value !== 'object' || value === null) throw new VmgateError('frame-malformed', 'ABORT record body is not a JSON object');
  const { code, message } = value as { code?: unknown; message?: unknown };
  if (typeof code !== 'string' || typeof message !== 'string' || message.length > MAX_ABORT_MESSAGE) {
    throw new VmgateError('frame-malformed', 'ABORT record needs a string code and a message of at most 512 characters');
  }
  return isErrorCode(code) ? { code, message } : { code: 'internal', message: `peer error code "${code.slice(0, 64)}": ${message}` };
}
