import { isIP } from 'node:net';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { AllowRule, TargetConfig } from '../config/config.js';
import { VmgateError } from '../errors.js';
import { ALPN_PROTOCOL, type Identity } from '../tls/identity.js';
import { isRevoked } from '../tls/revocation.js';
import { classifyAuthorizationError } from '../tls/tls-errors.js';

/**
 * The x509 peer policy, for both ends of a gateway-to-gateway connection:
 * who may connect (a certificate our CA signed, in date, not revoked, on the
 * vmgate ALPN), which name it carries, and what it may reach (a target's
 * allow-list). OpenSSL verifies the chain and the CRL during the handshake;
 * its verdict is read here *after* the handshake, so the refused side can be
 * told why (the handshake layer sends the ERROR frame).
 *
 * One name rule for both sides: a certificate carries a name when one of its
 * DNS SANs, its IP SANs or its subject CN equals that name, compared without
 * regard to case and without wildcards. A route's `peerName` and an allow
 * rule's `peer` are both matched this way.
 */

/** Who is on the other end, as far as its verified certificate says. */
export interface PeerIdentity {
  /** Subject CN, for log lines. */
  commonName: string;
  /** What the name rule matches against: DNS SANs, IP SANs and the CN. */
  names: string[];
  serial: string;
  fingerprint256: string;
}

export function identityOf(cert: PeerCertificate | undefined): PeerIdentity | undefined {
  if (!cert || Object.keys(cert).length === 0) return undefined;
  const cn = typeof cert.subject?.CN === 'string' ? cert.subject.CN : '';
  const sans = (cert.subjectaltname ?? '').split(', ');
  const dns = sans.filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4));
  const ips = sans.filter((s) => s.startsWith('IP Address:')).map((s) => s.slice('IP Address:'.length));
  const names = [...new Set([...dns, ...ips, ...(cn ? [cn] : [])])];
  return { commonName: cn || dns[0] || ips[0] || '(no name)', names, serial: cert.serialNumber, fingerprint256: cert.fingerprint256 };
}

/** The name rule (see the top of this file). */
export function carriesName(peer: PeerIdentity, name: string): boolean {
  const wanted = canonicalName(name);
  return peer.names.some((n) => canonicalName(n) === wanted);
}

/**
 * Client side: is the server we dialled the peer we meant? `cert` is the
 * certificate of this handshake, or on a resumed session the one the
 * ticket's full handshake verified (TLS 1.3 resumption sends none).
 */
export function checkServer(s: TLSSocket, cert: PeerCertificate, peerName: string, id: Identity): VmgateError | undefined {
  // Node reports a name mismatch of its own when given a servername; the name rule below decides instead.
  const verifyError = s.authorized ? undefined : String(s.authorizationError ?? 'unknown');
  if (verifyError !== undefined && verifyError !== 'ERR_TLS_CERT_ALTNAME_INVALID') return classifyAuthorizationError(verifyError);
  const peer = identityOf(cert);
  if (!peer || !carriesName(peer, peerName)) {
    return new VmgateError('tls-name-mismatch', `the peer certificate is for ${peer?.names.join(', ') || '(no names)'}, not ${peerName}`);
  }
  return checkAlpn(s, 'the peer') ?? (s.isSessionReused() ? checkResumedPeer(cert, id) : undefined);
}

/** Server side: the verified client certificate, or the coded refusal. */
export function checkClient(s: TLSSocket, id: Identity): PeerIdentity {
  const peer = identityOf(s.getPeerCertificate());
  // First, and never after `authorized`: a client that sent no certificate
  // and resumes its session is reported authorized by Node 20 / OpenSSL.
  if (!peer) throw new VmgateError('tls-no-client-cert', 'the client presented no certificate');
  if (!s.authorized) {
    const e = classifyAuthorizationError(String(s.authorizationError ?? 'unknown'));
    throw new VmgateError(e.code, `client certificate ${peer.commonName}: ${e.message}`);
  }
  // On a resumed session OpenSSL hands back the client certificate of the full handshake.
  const problem = (s.isSessionReused() ? checkResumedPeer(s.getPeerCertificate(), id) : undefined) ?? checkAlpn(s, 'the client');
  if (problem) throw problem;
  return peer;
}

/**
 * What a target's allow-list admits: both the certificate and the SASL user
 * must match one rule; an empty allow-list admits no one. `*` in a rule
 * means "any verified certificate" or "any authenticated user", never
 * "unauthenticated".
 */
function isAllowed(target: TargetConfig, peer: PeerIdentity, user: string): boolean {
  return target.allow.some((rule) => matchesRule(rule, peer) && (rule.user === '*' || rule.user === user));
}

/** Resolves an OPEN (or PROBE) to a target this peer and user may reach, or throws the coded refusal. */
export function authorizeOpen(targets: Map<string, TargetConfig>, name: string, peer: PeerIdentity, user: string): TargetConfig {
  const target = targets.get(name);
  if (!target) throw new VmgateError('target-unknown', `no target named ${JSON.stringify(name)} on this gateway`);
  if (!isAllowed(target, peer, user)) {
    throw new VmgateError('target-forbidden', `certificate ${peer.commonName} with user ${JSON.stringify(user)} may not reach target ${JSON.stringify(name)}`);
  }
  return target;
}

/**
 * On a resumed TLS 1.3 session no certificate is sent and OpenSSL verifies
 * nothing again: the peer proves it holds the secret of an earlier full
 * handshake, and the verdict of that handshake (chain, CA, CRL, usage) is
 * carried over. That verdict is still right because a reload drops every
 * ticket on both sides (the server draws new ticket keys, the client forgets
 * its tickets), so CA and CRL cannot have changed since. What can change is
 * the time: this checks the certificate of the earlier handshake against the
 * clock and, as a second line, against the CRL currently loaded.
 */
export function checkResumedPeer(cert: PeerCertificate, id: Pick<Identity, 'revocation' | 'files'>, now = Date.now()): VmgateError | undefined {
  // Node gives an array when the subject repeats CN; the text is as a template literal would print it.
  const cn = cert.subject?.CN;
  const who = (Array.isArray(cn) ? cn.join(',') : cn) ?? cert.serialNumber;
  if (Date.parse(cert.valid_to) <= now) {
    return new VmgateError('tls-cert-expired', `the peer certificate ${who} of this resumed TLS session expired on ${cert.valid_to}`);
  }
  if (Date.parse(cert.valid_from) > now) {
    return new VmgateError('tls-cert-expired', `the peer certificate ${who} of this resumed TLS session is not valid before ${cert.valid_from} (check both clocks)`);
  }
  if (id.revocation !== undefined) {
    if (isRevoked(id.revocation, cert.serialNumber)) {
      return new VmgateError('tls-cert-revoked', `the peer certificate ${who} of this resumed TLS session is revoked by our CRL`);
    }
    const next = id.revocation.nextUpdate;
    if (next !== undefined && next.getTime() <= now) {
      return new VmgateError('tls-verify-failed', `our CRL ${id.files.crl ?? ''} has expired (${next.toISOString()}); publish a fresh one (certs/vmgate-pki publish-crl)`);
    }
  }
  return undefined;
}

function checkAlpn(s: TLSSocket, who: string): VmgateError | undefined {
  if (s.alpnProtocol === ALPN_PROTOCOL) return undefined;
  return new VmgateError('tls-protocol', `${who} did not negotiate ALPN ${ALPN_PROTOCOL} (is it a vmgate gateway?)`);
}

function matchesRule(rule: AllowRule, peer: PeerIdentity): boolean {
  return rule.peer === '*' || carriesName(peer, rule.peer);
}

/** Lower case; an IPv6 literal in its one canonical text form, so "::1" and "0:0::1" are one name. */
function canonicalName(name: string): string {
  if (isIP(name) === 6) return new URL(`http://[${name}]/`).hostname.slice(1, -1);
  return name.toLowerCase();
}
