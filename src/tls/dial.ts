import { isIP, Socket, connect as netConnect } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type PeerCertificate, type TLSSocket } from 'node:tls';
import type { HostPort } from '../config/endpoint.js';
import { formatHostPort } from '../config/endpoint.js';
import { VmgateError } from '../errors.js';
import { RELAY_HIGH_WATER_MARK } from '../relay/buffer-sizes.js';
import { ALPN_PROTOCOL, type Identity } from './identity.js';
import type { ServerTicket } from './session-tickets.js';
import { classifyPeerError } from './tls-errors.js';

/** A TLS connection to a peer gateway and the TCP socket under it. */
export interface PeerSocket {
  tls: TLSSocket;
  /** Reset this one to abort: the peer then sees ECONNRESET, not a clean end. */
  raw: Socket;
  /** The server certificate of the handshake (on a resumed session: the one of the full handshake it resumes). */
  serverCert: PeerCertificate;
  /** TLS resumed an earlier session instead of a full handshake. */
  resumed: boolean;
  /** Why `verify` refused the server; the caller tells the server and closes. */
  refusal: VmgateError | undefined;
}

export interface DialOptions {
  peer: HostPort;
  /** Sent as SNI when it is a DNS name. */
  peerName: string;
  /** Our identity: its client context for the handshake. */
  identity: Identity;
  /** A ticket of an earlier verified session with this peer, offered for resumption. */
  ticket?: ServerTicket | undefined;
  /**
   * The peer policy, run as soon as the handshake completes and before any
   * session ticket is accepted: undefined when the server may be used.
   */
  verify: (s: TLSSocket, cert: PeerCertificate) => VmgateError | undefined;
  /** Called with each session ticket the server sends, once `verify` accepted it. */
  onTicket?: (t: ServerTicket) => void;
  timeoutMs: number;
  /** Aborts the dial (the local QEMU went away). */
  signal?: AbortSignal;
}

/**
 * Dials a peer gateway and completes TLS 1.3 with our client certificate.
 * OpenSSL verifies the chain against our CA and CRL but does not refuse:
 * `verify` reads its verdict after the handshake, so that a refused server
 * can be told why (by the handshake layer, src/handshake/client.ts) before
 * the connection closes; Node would otherwise just hang up. A refused
 * connection resolves with `refusal` set; only network and TLS failures
 * reject.
 *
 * With `ticket`, TLS 1.3 may resume that session: the server then sends no
 * certificate, so `verify` gets the certificate the ticket's full handshake
 * verified.
 */
export function dialPeer(o: DialOptions): Promise<PeerSocket> {
  return new Promise((resolve, reject) => {
    const where = formatHostPort(o.peer);
    const raw = netConnect({ host: o.peer.host, port: o.peer.port, allowHalfOpen: true });
    let tls: TLSSocket | undefined;
    let settled = false;
    const finish = (result: PeerSocket | VmgateError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      raw.off('error', onError);
      tls?.off('error', onError);
      if (!(result instanceof VmgateError)) {
        resolve(result);
        return;
      }
      tls?.destroy();
      raw.destroy();
      reject(result);
    };
    const onError = (e: unknown): void => {
      const err = classifyPeerError(e);
      finish(new VmgateError(err.code, `${where}: ${err.message}`, { cause: e }));
    };
    // The signal's reason says why (local-closed from a route, shutdown from a probe).
    const onAbort = (): void => {
      const why: unknown = o.signal?.reason;
      finish(why instanceof VmgateError ? new VmgateError(why.code, `dial to ${where} abandoned: ${why.message}`) : new VmgateError('local-closed', `dial to ${where} abandoned: the local connection closed`));
    };
    const timer = setTimeout(
      () => finish(new VmgateError(tls ? 'tls-timeout' : 'peer-unreachable', `${where}: no ${tls ? 'TLS handshake' : 'TCP connection'} within ${o.timeoutMs} ms`)),
      o.timeoutMs,
    );
    o.signal?.addEventListener('abort', onAbort);
    raw.on('error', onError);
    raw.once('connect', () => {
      // highWaterMark is a documented tls.connect option that @types/node 20 lacks.
      const options: ConnectionOptions & { highWaterMark: number } = {
        socket: raw,
        secureContext: o.identity.clientContext,
        ...(o.ticket ? { session: o.ticket.session } : {}),
        ALPNProtocols: [ALPN_PROTOCOL],
        rejectUnauthorized: false, // `verify` decides, so the peer can be told why
        highWaterMark: RELAY_HIGH_WATER_MARK,
        // half-close: inherited from raw (allowHalfOpen), so a FIN is relayed as a FIN
        ...(isIP(o.peerName) === 0 ? { servername: o.peerName } : {}),
      };
      const s = tlsConnect(options);
      tls = s;
      s.on('error', onError);
      let verified: PeerCertificate | undefined;
      // TLS 1.3 tickets arrive after the handshake; keep only those of a verified server.
      s.on('session', (session: Buffer) => {
        if (verified) o.onTicket?.({ session, cert: verified });
      });
      s.once('secureConnect', () => {
        const resumed = s.isSessionReused();
        const cert = resumed && o.ticket ? o.ticket.cert : s.getPeerCertificate();
        const refusal = o.verify(s, cert);
        if (refusal === undefined) verified = cert;
        finish({ tls: s, raw, serverCert: cert, resumed, refusal });
      });
    });
  });
}
