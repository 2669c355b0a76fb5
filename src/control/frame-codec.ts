/**
 * Control-phase framing (docs/protocol.md §2). Pure: bytes in, frames out; it
 * never touches a socket.
 *
 *   | length u32 BE | type u8 | body: UTF-8 JSON object |
 *   length = 1 + body length, 1 <= length <= MAX_FRAME_LENGTH
 */
import { VmgateError } from '../errors.js';

/** Largest allowed value of the length field (type byte + body). */
export const MAX_FRAME_LENGTH = 8192;
/** Size of the length prefix. */
const FRAME_HEADER_LENGTH = 4;

export interface Frame {
  type: number;
  body: Record<string, unknown>;
}

export interface FrameDecoderOptions {
  /**
   * Called on every decoded frame; returning true ends the control phase at
   * that frame. Decoding stops there, and every byte after it is kept
   * untouched for takeRemainder() (raw data-phase bytes must never be parsed
   * as a frame header). Bytes pushed after that point are appended to the
   * remainder unparsed and unbounded: the owner should pause its source.
   */
  stopAfter?: (frame: Frame) => boolean;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function encodeFrame(type: number, body: Record<string, unknown>, maxLength = MAX_FRAME_LENGTH): Buffer {
  if (!Number.isInteger(type) || type < 0 || type > 255) {
    throw new VmgateError('internal', `frame type ${type} is not a byte`);
  }
  const json = Buffer.from(JSON.stringify(body), 'utf8');
  const length = 1 + json.length;
  if (length > maxLength) {
    throw new VmgateError('frame-oversize', `control frame of type ${type} would be ${length} bytes, limit ${maxLength}`);
  }
  const out = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + length);
  out.writeUInt32BE(length, 0);
  out.writeUInt8(type, FRAME_HEADER_LENGTH);
  json.copy(out, FRAME_HEADER_LENGTH + 1);
  return out;
}

/** Decodes a frame body (everything after the type byte). */
function decodeBody(type: number, bytes: Buffer): Frame {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch (e: unknown) {
    throw new VmgateError('frame-malformed', `control frame of type ${type}: body is not valid UTF-8`, { cause: e });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e: unknown) {
    throw new VmgateError('frame-malformed', `control frame of type ${type}: body is not JSON`, { cause: e });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
    throw new VmgateError('frame-malformed', `control frame of type ${type}: body is ${kind}, not a JSON object`);
  }
  return { type, body: value as Record<string, unknown> };
}

/**
 * Incremental decoder. Input chunks are kept in a list and joined once, when
 * a frame is complete, so byte-at-a-time input costs linear time; at most one
 * partial frame (header + MAX_FRAME_LENGTH bytes) is ever held.
 */
export class FrameDecoder {
  readonly #maxLength: number;
  readonly #stopAfter: ((frame: Frame) => boolean) | undefined;
  #chunks: Buffer[] = [];
  #held = 0;
  /** Length field of the frame being assembled, once its header is complete. */
  #frameLength = -1;
  #failure: VmgateError | undefined;
  #state: 'decoding' | 'stopped' | 'taken' = 'decoding';

  constructor(maxLength: number = MAX_FRAME_LENGTH, options: FrameDecoderOptions = {}) {
    if (!Number.isInteger(maxLength) || maxLength < 1 || maxLength > 0xffffffff) {
      throw new VmgateError('internal', `frame decoder limit ${maxLength} is not a valid length`);
    }
    this.#maxLength = maxLength;
    this.#stopAfter = options.stopAfter;
  }

  /** Bytes currently held: at most one partial frame, or (once stopped) the raw remainder. */
  get buffered(): number {
    return this.#held;
  }

  /** True once a frame accepted by `stopAfter` has been decoded. */
  get stopped(): boolean {
    return this.#state === 'stopped';
  }

  /**
   * Feeds bytes; returns every frame completed by them, in order. Throws
   * frame-oversize / frame-malformed on bad input, after which the decoder is
   * dead and every further push throws the same error.
   */
  push(chunk: Buffer): Frame[] {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#state === 'taken') throw new VmgateError('internal', 'frame decoder used after takeRemainder()');
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#held += chunk.length;
    }
    if (this.#state === 'stopped') return [];
    const frames: Frame[] = [];
    try {
      for (;;) {
        if (this.#frameLength < 0) {
          if (this.#held < FRAME_HEADER_LENGTH) break;
          this.#frameLength = this.#readHeader();
        }
        if (this.#held < FRAME_HEADER_LENGTH + this.#frameLength) break;
        const bytes = this.#take(FRAME_HEADER_LENGTH + this.#frameLength);
        this.#frameLength = -1;
        const frame = decodeBody(bytes[FRAME_HEADER_LENGTH]!, bytes.subarray(FRAME_HEADER_LENGTH + 1));
        frames.push(frame);
        if (this.#stopAfter?.(frame) === true) {
          this.#state = 'stopped';
          break;
        }
      }
    } catch (e: unknown) {
      this.#fail(e);
    }
    return frames;
  }

  /**
   * Bytes after the last complete frame: the start of the data phase. The
   * decoder must not be used afterwards.
   */
  takeRemainder(): Buffer {
    const rest = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#held);
    this.#chunks = [];
    this.#held = 0;
    this.#frameLength = -1;
    this.#state = 'taken';
    return rest;
  }

  #fail(e: unknown): never {
    this.#failure = e instanceof VmgateError ? e : new VmgateError('internal', 'frame decoder failed', { cause: e });
    this.#chunks = [];
    this.#held = 0;
    throw this.#failure;
  }

  /** Reads and checks the length field; the bytes stay held. */
  #readHeader(): number {
    let length = 0;
    let need = FRAME_HEADER_LENGTH;
    for (const chunk of this.#chunks) {
      for (let i = 0; i < chunk.length && need > 0; i++, need--) {
        length = length * 256 + chunk[i]!;
      }
      if (need === 0) break;
    }
    if (length === 0) {
      throw new VmgateError('frame-malformed', 'control frame with length 0 (no type byte)');
    }
    if (length > this.#maxLength) {
      throw new VmgateError('frame-oversize', `control frame announces ${length} bytes, limit ${this.#maxLength}`);
    }
    return length;
  }

  /** Removes and returns the first n held bytes (n <= held). */
  #take(n: number): Buffer {
    const first = this.#chunks[0]!;
    let out: Buffer;
    let used: number;
    if (first.length >= n) {
      out = first.subarray(0, n);
      used = first.length === n ? 1 : 0;
      if (used === 0) this.#chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      used = 0;
      while (off < n) {
        const chunk = this.#chunks[used]!;
        const want = n - off;
        if (chunk.length <= want) {
          chunk.copy(out, off);
          off += chunk.length;
          used++;
        } else {
          chunk.copy(out, off, 0, want);
          this.#chunks[used] = chunk.subarray(want);
          off += want;
        }
      }
    }
    if (used > 0) this.#chunks = this.#chunks.slice(used);
    this.#held -= n;
    return out;
  }
}
