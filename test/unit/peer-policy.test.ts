/**
 * The peer policy's one name rule, used by both sides: a route's `peerName`
 * and an allow rule's `peer` match a certificate's DNS SANs, IP SANs or
 * subject CN, without regard to case, and never through a wildcard.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PeerCertificate } from 'node:tls';
import type { TargetConfig } from '../../src/config/config.js';
import { authorizeOpen, carriesName, identityOf } from '../../src/policy/peer-policy.js';
import { code } from '../helpers/assert-code.js';

function cert(cn: string, san: string | undefined): PeerCertificate {
  return { subject: { CN: cn }, subjectaltname: san, serialNumber: '0A', fingerprint256: 'AA:BB' } as unknown as PeerCertificate;
}

test('names are the DNS SANs, the IP SANs and the CN', () => {
  const id = identityOf(cert('host-b', 'DNS:host-b.example, IP Address:10.0.0.2, IP Address:FD00:0:0:0:0:0:0:1'));
  assert.deepEqual(id?.names, ['host-b.example', '10.0.0.2', 'FD00:0:0:0:0:0:0:1', 'host-b']);
  assert.equal(id?.commonName, 'host-b');
});

test('a name matches any of them, whatever its case; an IPv6 literal in any of its forms', () => {
  const id = identityOf(cert('host-b', 'DNS:host-b.example, IP Address:FD00:0:0:0:0:0:0:1'));
  assert.ok(id);
  for (const n of ['host-b.example', 'HOST-B.example', 'host-b', 'Host-B', 'fd00::1']) assert.ok(carriesName(id, n), n);
  for (const n of ['host-c', 'host-b.example.org', 'example', '10.0.0.2', 'fd00::2']) assert.ok(!carriesName(id, n), n);
});

test('a wildcard SAN matches only itself, never a host under it', () => {
  const id = identityOf(cert('gateways', 'DNS:*.example'));
  assert.ok(id);
  assert.ok(!carriesName(id, 'host-b.example'));
});

test('no certificate is no identity', () => {
  assert.equal(identityOf(undefined), undefined);
  assert.equal(identityOf({} as PeerCertificate), undefined);
});

test('the allow-list uses the same rule, and needs both the name and the user', () => {
  const id = identityOf(cert('host-a', 'DNS:host-a.example'));
  assert.ok(id);
  const targets = new Map<string, TargetConfig>([
    ['incoming', { name: 'incoming', connect: { kind: 'tcp', host: '127.0.0.1', port: 49152 }, allow: [{ peer: 'HOST-A.example', user: 'migrate' }] }],
    ['any', { name: 'any', connect: { kind: 'tcp', host: '127.0.0.1', port: 49153 }, allow: [{ peer: '*', user: '*' }] }],
    ['none', { name: 'none', connect: { kind: 'tcp', host: '127.0.0.1', port: 49154 }, allow: [] } as unknown as TargetConfig],
  ]);
  assert.equal(authorizeOpen(targets, 'incoming', id, 'migrate').name, 'incoming');
  assert.throws(() => authorizeOpen(targets, 'incoming', id, 'other'), code('target-forbidden'));
  assert.equal(authorizeOpen(targets, 'any', id, 'anyone').name, 'any');
  assert.throws(() => authorizeOpen(targets, 'none', id, 'migrate'), code('target-forbidden'));
  assert.throws(() => authorizeOpen(targets, 'missing', id, 'migrate'), code('target-unknown'));
});
