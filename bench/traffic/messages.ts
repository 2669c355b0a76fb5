/** What the bench and its sender and receiver processes tell each other (over the fork IPC channel). */

/** bench -> receiver: the next measurement has this many connections. */
export interface ExpectMessage {
  type: 'expect';
  connections: number;
}

/** bench -> sender: push `bytes` in total, split evenly over `streams` connections to 127.0.0.1:`port`, then half-close. */
export interface SendMessage {
  type: 'send';
  port: number;
  streams: number;
  bytes: number;
}

export type ReceiverReport =
  | { type: 'listening'; port: number }
  /** All expected connections are in: their remote ports (the last hop's local ports). */
  | { type: 'connected'; remotePorts: number[] }
  /** Every expected connection has ended: bytes, and the receiver's clock from first byte to last end. */
  | { type: 'received'; bytes: number; perConnection: number[]; seconds: number }
  | { type: 'failed'; message: string };

export type SenderReport =
  /** All streams are connected: their local ports. */
  | { type: 'connected'; localPorts: number[] }
  | { type: 'sent'; bytes: number }
  | { type: 'failed'; message: string };
