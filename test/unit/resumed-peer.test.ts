import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { after, before, test } from 'node:test';
import { createCa, issueCertificate, revokeCertificate } from '../../src/pki/index.js';
import type { Identity } from '../../src/tls/identity.js';
import { checkResumedPeer } from '../../src/policy/peer-policy.js';
import { isRevoked, parseRevocation, type Revocation } from '../../src/tls/revocation.js';
import { TICKET_LIFETIME_MS, TicketCache } from '../../src/tls/session-tickets.js';
import { code } from '../helpers/assert-code.js';

const weak = { keyBits: 2048, allowWeakKeyForTests: true } as const;
const DAY = 86_400_000;
const NOW = Date.parse('2026-06-01T00:00:00Z');
let root = '';

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'vmgate-resumed-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** The fields of a peer certificate the resumption checks read (Node's PeerCertificate has many more). */
function peerCert(serialNumber: string, validFrom: number, validTo: number): PeerCertificate {
  const fields = { subject: { CN: 'host-a' }, serialNumber, valid_from: new Date(validFrom).toUTCString(), valid_to: new Date(validTo).toUTCString() };
  return fields as unknown as PeerCertificate;
}

function withCrl(revocation: Revocation | undefined): Pick<Identity, 'revocation' | 'files'> {
  return { revocation, files: { crl: '/etc/vmgate/pki/ca-crl.pem' } as Identity['files'] };
}

test('revocation-parsed-from-real-crl: revoked serials (any hex form) and nextUpdate', async () => {
  const caDir = join(root, 'ca');
  await createCa({ dir: caDir, commonName: 'resume CA', ...weak });
  const issued = await issueCertificate({ caDir, outDir: join(root, 'host'), commonName: 'host-a', ...weak });
  const kept = await issueCertificate({ caDir, outDir: join(root, 'kept'), commonName: 'host-b', ...weak });
  const r = await revokeCertificate({ caDir, serial: issued.serial });
  const rev = parseRevocation(await readFile(r.crlPath), r.crlPath);
  assert.equal(isRevoked(rev, issued.serial), true);
  assert.equal(isRevoked(rev, issued.serial.toUpperCase().replace(/(..)(?!$)/g, '$1:')), true, 'the colon form Node prints');
  assert.equal(isRevoked(rev, kept.serial), false);
  assert.equal(Math.floor((rev.nextUpdate?.getTime() ?? 0) / 1000), Math.floor(r.nextUpdate.getTime() / 1000), 'CRL times have whole seconds');
});

test('revocation-garbage-identity-invalid: a CRL file without a PEM CRL is refused naming the file', () => {
  assert.throws(() => parseRevocation(Buffer.from('not a crl'), '/x/ca-crl.pem'), code('identity-invalid', '/x/ca-crl.pem'));
  const broken = Buffer.from('-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n');
  assert.throws(() => parseRevocation(broken, '/x/ca-crl.pem'), code('identity-invalid', '/x/ca-crl.pem'));
});

test('resumed-peer-valid: an in-date, unrevoked certificate passes', () => {
  const rev: Revocation = { serials: new Set(['0abc']), nextUpdate: new Date(NOW + DAY) };
  assert.equal(checkResumedPeer(peerCert('1234', NOW - DAY, NOW + DAY), withCrl(rev), NOW), undefined);
  assert.equal(checkResumedPeer(peerCert('1234', NOW - DAY, NOW + DAY), withCrl(undefined), NOW), undefined);
});

test('resumed-peer-expired: a certificate that expired since the full handshake is refused', () => {
  const e = checkResumedPeer(peerCert('1234', NOW - 2 * DAY, NOW - 1), withCrl(undefined), NOW);
  assert.equal(e?.code, 'tls-cert-expired');
  assert.equal(checkResumedPeer(peerCert('1234', NOW + 1000, NOW + DAY), withCrl(undefined), NOW)?.code, 'tls-cert-expired');
});

test('resumed-peer-revoked: a serial in the current CRL is refused', () => {
  const rev: Revocation = { serials: new Set(['0abc']), nextUpdate: new Date(NOW + DAY) };
  assert.equal(checkResumedPeer(peerCert('0ABC', NOW - DAY, NOW + DAY), withCrl(rev), NOW)?.code, 'tls-cert-revoked');
});

test('resumed-peer-stale-crl: a CRL past its nextUpdate refuses resumption as a full handshake would', () => {
  const rev: Revocation = { serials: new Set(), nextUpdate: new Date(NOW - 1) };
  const e = checkResumedPeer(peerCert('1234', NOW - DAY, NOW + DAY), withCrl(rev), NOW);
  assert.equal(e?.code, 'tls-verify-failed');
  // The message tells the operator what to run; that advice is the product.
  assert.match(e?.message ?? '', /publish-crl/);
});

test('ticket-cache: a ticket is offered only under the identity it was verified with, and only within its lifetime', () => {
  let now = NOW;
  const cache = new TicketCache(() => now);
  const idA = {} as Identity;
  const idB = {} as Identity;
  const ticket = { session: Buffer.from('ticket'), cert: peerCert('1234', NOW - DAY, NOW + DAY) };
  assert.equal(cache.get(idA), undefined);
  cache.put(idA, ticket);
  assert.equal(cache.get(idA)?.session, ticket.session);
  assert.equal(cache.get(idB), undefined, 'a reloaded identity (new CA or CRL) gets a full handshake');
  assert.equal(cache.get(idA), undefined, 'and the old ticket is gone');
  cache.put(idA, ticket);
  now += TICKET_LIFETIME_MS - 1;
  assert.equal(cache.get(idA)?.session, ticket.session);
  now += 1;
  assert.equal(cache.get(idA), undefined);
  cache.put(idA, ticket);
  cache.drop();
  assert.equal(cache.get(idA), undefined);
});

test('ticket-gate-pioneer: dials that start during the first full handshake wait for its ticket', { timeout: 2_000 }, async () => {
  const cache = new TicketCache(() => NOW, 10_000);
  const id = {} as Identity;
  const ticket = { session: Buffer.from('t'), cert: peerCert('1234', NOW - DAY, NOW + DAY) };
  const pioneer = await cache.forDial(id);
  assert.equal(pioneer.ticket, undefined, 'the first dial does the full handshake');
  const waiting = cache.forDial(id);
  cache.put(id, ticket);
  assert.equal((await waiting).ticket?.session, ticket.session);
  pioneer.release();
  assert.equal((await cache.forDial(id)).ticket?.session, ticket.session, 'later dials take the kept ticket at once');
});

test('ticket-gate-pioneer-failed: when the first dial brings no ticket, the waiting dials go ahead without one', { timeout: 2_000 }, async () => {
  const cache = new TicketCache(() => NOW, 10_000);
  const id = {} as Identity;
  const pioneer = await cache.forDial(id);
  const waiting = cache.forDial(id);
  pioneer.release();
  assert.equal((await waiting).ticket, undefined);
  assert.equal((await cache.forDial(id)).ticket, undefined, 'and the next dial is a new pioneer, not a waiter');
});

test('ticket-gate-bounded: a dial waits for a slow first handshake only so long', { timeout: 5_000 }, async () => {
  const cache = new TicketCache(() => NOW, 20);
  const id = {} as Identity;
  await cache.forDial(id);
  assert.equal((await cache.forDial(id)).ticket, undefined);
});

test('ticket-gate-other-identity: a dial under a reloaded identity does not wait for the old one', { timeout: 2_000 }, async () => {
  const cache = new TicketCache(() => NOW, 10_000);
  await cache.forDial({} as Identity);
  const other = await cache.forDial({} as Identity);
  assert.equal(other.ticket, undefined);
});
