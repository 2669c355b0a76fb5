/**
 * Clients that misbehave against a gateway's TLS port, for the security
 * tests. Each returns what the gateway answered, so a test can check that
 * the refusal carries a stable code wherever the protocol lets it travel.
 *
 *   const r = await rawProbe(port, (s) => s.write('GET / HTTP/1.1\r\n\r\n'));
 *   const e = await controlProbe({ port, dir: pki.hostA }, async (c) => { c.tls.write(junk); });
 *   assert.equal(e.code, 'frame-malformed'); assert.ok(e.fromPeer);
 */
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { buildPlainResponse } from '../../src/auth/sasl-plain.js';
import { ControlChannel } from '../../src/control/control-channel.js';
import { MessageType } from '../../src/control/messages.js';
import { PeerError, VmgateError } from '../../src/errors.js';
import { ALPN_PROTOCOL } from '../../src/tls/identity.js';
import { classifyPeerError } from '../../src/tls/tls-errors.js';

/** What a raw TCP client saw: every byte the server sent, and whether it closed the connection. */
export interface RawOutcome {
  received: Buffer;
  closedByServer: boolean;
}

/** Connects plain TCP, lets `act` write, and collects the answer until the server closes (or `timeoutMs`). */
export function rawProbe(port: number, act: (s: Socket) => void | Promise<void>, timeoutMs = 15_000): Promise<RawOutcome> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    const s = netConnect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ received: Buffer.concat(parts), closedByServer: false });
    }, timeoutMs);
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('error', () => undefined); // a reset is a close too
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ received: Buffer.concat(parts), closedByServer: true });
    });
    s.once('connect', () => {
      Promise.resolve(act(s)).catch(reject);
    });
  });
}

export interface TlsProbeOptions {
  port: number;
  /** A host directory (QEMU layout) whose client-cert.pem / client-key.pem to present; none when absent. */
  dir?: string;
  /** Extra TLS options (maxVersion, ...). */
  tls?: ConnectionOptions;
}

/** A TLS connection as a hostile peer gateway would open it (it does not check the server). */
export function tlsDial(o: TlsProbeOptions): Promise<TLSSocket> {
  const identity = o.dir === undefined ? {} : { cert: readFileSync(join(o.dir, 'client-cert.pem')), key: readFileSync(join(o.dir, 'client-key.pem')) };
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: o.port, servername: 'host-b', ALPNProtocols: [ALPN_PROTOCOL], rejectUnauthorized: false, ...identity, ...o.tls }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

export interface Conversation {
  tls: TLSSocket;
  ctrl: ControlChannel;
}

/**
 * Runs `act` on a TLS connection with a control channel on it, then waits for
 * the server's verdict: the returned error is a PeerError (`fromPeer`) carrying
 * the server's ERROR code, or a local one if the server closed without a word.
 * Rejects if the server instead answers with a success (OPENED).
 */
export async function controlProbe(o: TlsProbeOptions, act: (c: Conversation) => void | Promise<void>): Promise<VmgateError> {
  const tls = await tlsDial(o);
  const ctrl = new ControlChannel(tls, classifyPeerError, [MessageType.OPENED]);
  try {
    await act({ tls, ctrl });
    await ctrl.expect(MessageType.OPENED);
  } catch (e: unknown) {
    return e instanceof VmgateError ? e : new VmgateError('internal', String(e));
  } finally {
    tls.destroy();
  }
  throw new Error('the server opened a channel for a hostile client');
}

/** HELLO and a PLAIN login, as an honest client gateway would do it. */
export async function logIn(c: Conversation, user: string, password: string): Promise<void> {
  c.ctrl.send({ type: MessageType.HELLO, versions: [1] });
  await c.ctrl.expect(MessageType.WELCOME);
  c.ctrl.send({ type: MessageType.AUTH, mechanism: 'PLAIN', response: buildPlainResponse(user, password) });
  await c.ctrl.expect(MessageType.AUTH_OK);
}

export { PeerError };

/** Writes `bytes` one byte per `intervalMs` until done or the socket closes (slowloris). */
export async function dribble(s: Socket, bytes: Buffer, intervalMs = 1_000): Promise<void> {
  for (const b of bytes) {
    if (s.destroyed || !s.writable) return;
    s.write(Buffer.from([b]));
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
