import { isIP, Socket, connect as netConnect } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, type ConnectionOptions, type PeerCertificate, type TLSSocket } from 'node:tls';
import type { HostPort } from '../config/endpoint.js';
import { formatHostPort } from '../config/endpoint.js';
import { VmgateError } from '../errors.js';
import { encodeMessage, MessageType } from '../control/messages.js';
import { RELAY_HIGH_WATER_MARK } from '../relay/buffer-sizes.js';
import { ALPN_PROTOCOL, type Identity } from './identity.js';
import { checkResumedPeer } from '../policy/resumed-peer.js';
import type { ServerTicket } from './session-tickets.js';
import { classifyAuthorizationError, classifyPeerError } from './tls-errors.js';

/** A TLS connection to a peer gateway and the TCP socket under it. */
export interface PeerSocket {
  tls: TLSSocket;
  /** Reset this one to abort: the peer then sees ECONNRESET, not a clean end. */
  raw: Socket;
  /** The server certificate we verified (on a resumed session: the one of the full handshake it resumes). */
  serverCert: PeerCertificate;
  /** TLS resumed an earlier session instead of a full handshake. */
  resumed: boolean;
}

export interface DialOptions {
  peer: HostPort;
  /** Name the peer's certificate must carry (DNS or IP SAN). */
  peerName: string;
  /** Our identity: its client context for the handshake, its CRL for the checks on resumption. */
  identity: Identity;
  /** A ticket of an earlier verified session with this peer, offered for resumption. */
  ticket?: ServerTicket | undefined;
  /** Called with each session ticket the server sends once it is verified. */
  onTicket?: (t: ServerTicket) => void;
  timeoutMs: number;
  /** Aborts the dial (the local QEMU went away). */
  signal?: AbortSignal;
}

/**
 * Dials a peer gateway and completes TLS 1.3 with our client certificate,
 * then verifies the peer: chain (against our CA and CRL), name, ALPN.
 *
 * Verification runs after the handshake rather than inside it so that a
 * rejected peer is told why: we send it an ERROR frame with the code before
 * closing (Node would otherwise just hang up, and the peer's operator would
 * see nothing but a reset). Nothing else is ever sent to an unverified peer.
 *
 * With `ticket`, TLS 1.3 may resume that session: the server then sends no
 * certificate, so the name and time checks run on the certificate the
 * ticket's full handshake verified (src/tls/resumed-peer.ts says why that holds).
 */
export function dialPeer(o: DialOptions): Promise<PeerSocket> {
  return new Promise((resolve, reject) => {
    const where = formatHostPort(o.peer);
    const raw = netConnect({ host: o.peer.host, port: o.peer.port, allowHalfOpen: true });
    let tls: TLSSocket | undefined;
    let verified: PeerCertificate | undefined;
    let resumed = false;
    let settled = false;
    const finish = (e: VmgateError | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      raw.off('error', onError);
      tls?.off('error', onError);
      if (e === undefined && tls && verified) {
        resolve({ tls, raw, serverCert: verified, resumed });
        return;
      }
      tls?.destroy();
      raw.destroy();
      reject(e);
    };
    const onError = (e: unknown): void => {
      const err = classifyPeerError(e);
      finish(new VmgateError(err.code, `${where}: ${err.message}`, { cause: e }));
    };
    const onAbort = (): void => finish(new VmgateError('cancelled', `dial to ${where} abandoned: the local connection closed`));
    const timer = setTimeout(
      () => finish(new VmgateError(tls ? 'tls-failed' : 'peer-unreachable', `${where}: no ${tls ? 'TLS handshake' : 'TCP connection'} within ${o.timeoutMs} ms`)),
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
        rejectUnauthorized: false, // checked below, so the peer can be told why
        highWaterMark: RELAY_HIGH_WATER_MARK,
        // half-close: inherited from raw (allowHalfOpen), so a FIN is relayed as a FIN
        ...(isIP(o.peerName) === 0 ? { servername: o.peerName } : {}),
      };
      tls = tlsConnect(options);
      tls.on('error', onError);
      // TLS 1.3 tickets arrive after the handshake; keep only those of a verified server.
      tls.on('session', (session: Buffer) => {
        if (verified) o.onTicket?.({ session, cert: verified });
      });
      tls.once('secureConnect', () => {
        const s = tls as TLSSocket;
        resumed = s.isSessionReused();
        const cert = resumed && o.ticket ? o.ticket.cert : s.getPeerCertificate();
        const problem = verifyServer(s, o.peerName, cert) ?? (resumed ? checkResumedPeer(cert, o.identity) : undefined);
        if (problem === undefined) {
          verified = cert;
          finish(undefined);
          return;
        }
        // Tell the server why, then give up on it.
        s.end(encodeMessage({ type: MessageType.ERROR, code: problem.code, message: `the client gateway rejected the server: ${problem.message}` }));
        finish(new VmgateError(problem.code, `${where}: ${problem.message}`));
      });
    });
  });
}

function verifyServer(s: TLSSocket, peerName: string, cert: PeerCertificate): VmgateError | undefined {
  // Node checks the name too (as ERR_TLS_CERT_ALTNAME_INVALID) when given a
  // servername; an IP peerName is only checked here. Either way, say which
  // names the certificate does carry.
  const verifyError = s.authorized ? undefined : String(s.authorizationError ?? 'unknown');
  if (verifyError !== undefined && verifyError !== 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return classifyAuthorizationError(verifyError);
  }
  if (verifyError !== undefined || checkServerIdentity(peerName, cert)) {
    return new VmgateError('tls-name-mismatch', `the peer certificate is for ${cert.subjectaltname ?? cert.subject?.CN ?? '(no names)'}, not ${peerName}`);
  }
  if (s.alpnProtocol !== ALPN_PROTOCOL) {
    return new VmgateError('tls-protocol', `the peer did not agree on ALPN ${ALPN_PROTOCOL} (is it a vmgate gateway?)`);
  }
  return undefined;
}
