import { VmgateError } from '../errors.js';
import type { AllowRule, TargetConfig } from '../config/config.js';
import type { PeerIdentity } from './peer-identity.js';

/**
 * May this peer (certificate names) and SASL user reach the target? Both the
 * certificate and the user must match one rule; an empty allow-list admits
 * no one. `*` in a rule means "any verified certificate" or "any
 * authenticated user" — never "unauthenticated".
 */
export function isAllowed(target: TargetConfig, peer: PeerIdentity, user: string): boolean {
  return target.allow.some((rule) => matchesPeer(rule, peer) && (rule.user === '*' || rule.user === user));
}

function matchesPeer(rule: AllowRule, peer: PeerIdentity): boolean {
  if (rule.peer === '*') return true;
  const wanted = rule.peer.toLowerCase();
  return peer.names.some((n) => n.toLowerCase() === wanted);
}

/** Resolves an OPEN request to a target this peer and user may reach, or throws the coded refusal. */
export function authorizeOpen(targets: Map<string, TargetConfig>, name: string, peer: PeerIdentity, user: string): TargetConfig {
  const target = targets.get(name);
  if (!target) throw new VmgateError('target-unknown', `no target named ${JSON.stringify(name)} on this gateway`);
  if (!isAllowed(target, peer, user)) {
    throw new VmgateError('target-forbidden', `certificate ${peer.commonName} with user ${JSON.stringify(user)} may not reach target ${JSON.stringify(name)}`);
  }
  return target;
}
