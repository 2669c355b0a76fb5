import type { Duplex } from 'node:stream';
import { PeerError, VmgateError, messageOf } from '../errors.js';
import { FrameDecoder, MAX_FRAME_LENGTH } from './frame-codec.js';
import { MESSAGE_NAMES, MessageType, decodeMessage, encodeMessage, type Message } from './messages.js';

type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;

/**
 * The control phase on one socket: sends messages, awaits the next one in
 * order, and at the end hands the socket back with whatever raw data bytes
 * arrived behind the last frame. Holds no timers: the handshake deadline
 * belongs to whoever runs the handshake.
 */
export class ControlChannel {
  private readonly decoder: FrameDecoder;
  private readonly inbox: Message[] = [];
  private waiter: { resolve: (m: Message) => void; reject: (e: VmgateError) => void } | undefined;
  private failure: VmgateError | undefined;
  private readonly onData = (chunk: Buffer): void => {
    try {
      for (const frame of this.decoder.push(chunk)) this.deliver(decodeMessage(frame));
    } catch (e: unknown) {
      this.fail(e instanceof VmgateError ? e : new VmgateError('frame-malformed', messageOf(e)));
    }
  };
  private readonly onEnd = (): void => this.fail(new VmgateError('peer-closed', 'the peer closed the connection during the control phase'));
  private readonly onError = (e: Error): void => this.fail(this.classify(e));

  /**
   * `lastTypes`: message types after which the control phase is over. Bytes
   * behind such a frame are migration data and must never be parsed as a
   * frame (QEMU's "QEVM" magic would read as a huge length).
   */
  constructor(
    private readonly socket: Duplex,
    private readonly classify: (e: unknown) => VmgateError,
    lastTypes: readonly MessageType[] = [],
  ) {
    this.decoder = new FrameDecoder(MAX_FRAME_LENGTH, { stopAfter: (f) => f.type === MessageType.ERROR || (lastTypes as readonly number[]).includes(f.type) });
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  send(m: Message): void {
    this.socket.write(encodeMessage(m));
  }

  /** Sends ERROR and ends the stream once it is flushed. */
  refuse(e: VmgateError): void {
    if (this.socket.writable) this.socket.end(encodeMessage({ type: MessageType.ERROR, code: e.code, message: e.message }));
  }

  /**
   * The next message, which must be of `type`. An ERROR from the peer becomes
   * a VmgateError carrying the peer's code, marked `fromPeer`.
   */
  async expect<T extends MessageType>(type: T): Promise<MessageOf<T>> {
    const m = await this.next();
    if (m.type === type) return m as MessageOf<T>;
    if (m.type === MessageType.ERROR) throw new PeerError(m.code, m.message);
    throw new VmgateError('protocol-violation', `expected ${MESSAGE_NAMES[type]}, got ${MESSAGE_NAMES[m.type]}`);
  }

  /** The next message, which must be one of `types` (ERROR from the peer throws as in expect). */
  async expectOneOf<T extends MessageType>(types: readonly T[]): Promise<MessageOf<T>> {
    const m = await this.next();
    if ((types as readonly MessageType[]).includes(m.type)) return m as MessageOf<T>;
    if (m.type === MessageType.ERROR) throw new PeerError(m.code, m.message);
    throw new VmgateError('protocol-violation', `expected ${types.map((t) => MESSAGE_NAMES[t]).join(' or ')}, got ${MESSAGE_NAMES[m.type]}`);
  }

  /** Stops reading and returns the bytes that followed the last frame. */
  detach(): Buffer {
    this.socket.pause();
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    return this.decoder.takeRemainder();
  }

  private next(): Promise<Message> {
    const queued = this.inbox.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  private deliver(m: Message): void {
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w.resolve(m);
    } else {
      // Bounded: the peer may only be one message ahead in a strict exchange;
      // more than a few queued means it is not following the protocol.
      if (this.inbox.length >= 4) throw new VmgateError('protocol-violation', 'too many control messages without an answer');
      this.inbox.push(m);
    }
  }

  private fail(e: VmgateError): void {
    if (this.failure) return;
    this.failure = e;
    this.socket.pause();
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(e);
  }
}
