import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, copyFile, cp, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspectCertificate, parseCrlPem, summarizeCrl, verifyHostDir, type VerifyReport } from '../../src/pki/index.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';

const DAY = 86_400_000;
let pki: TestPki;
let fixtureMs = 0;
let n = 0;

before(async () => {
  const root = await mkdtemp(join(tmpdir(), 'vmgate-pki-verify-'));
  const t0 = performance.now();
  pki = await makeTestPki(root);
  fixtureMs = performance.now() - t0;
});
after(async () => {
  await rm(pki.root, { recursive: true, force: true });
});

/** A scratch copy of a fixture dir, to break on purpose. */
async function copyOf(dir: string): Promise<string> {
  const to = join(pki.root, `scratch-${n++}`);
  await cp(dir, to, { recursive: true });
  return to;
}

function failed(r: VerifyReport): string[] {
  return r.findings.filter((f) => f.level === 'error').map((f) => f.check);
}

test('fixtures: makeTestPki builds every dir', async (t) => {
  // Native key generation is proven in pki-ca.test.ts (keygen-native); the time is only reported.
  t.diagnostic(`makeTestPki took ${Math.round(fixtureMs)} ms`);
  for (const dir of [pki.hostA, pki.hostB, pki.revoked, pki.otherCaHost, pki.expired, pki.serverOnly, pki.selfSigned]) {
    for (const f of ['ca-cert.pem', 'server-cert.pem', 'server-key.pem', 'client-cert.pem', 'client-key.pem']) await stat(join(dir, f));
  }
  await stat(join(pki.clientOnly, 'client-cert.pem'));
  assert.equal(inspectCertificate(join(pki.otherCaHost, 'server-cert.pem')).commonName, 'host-a');
  assert.notEqual(inspectCertificate(join(pki.otherCaHost, 'ca-cert.pem')).fingerprintSha256, inspectCertificate(join(pki.hostA, 'ca-cert.pem')).fingerprintSha256);
});

test('fixtures-crl-everywhere: every main-CA dir holds the CRL that revokes host-revoked', async () => {
  const revokedSerial = inspectCertificate(join(pki.revoked, 'server-cert.pem')).serial;
  for (const dir of [pki.hostA, pki.hostB, pki.revoked, pki.expired, pki.serverOnly, pki.clientOnly]) {
    const crl = summarizeCrl(parseCrlPem(await readFile(join(dir, 'ca-crl.pem'), 'utf8'), dir));
    assert.deepEqual(crl.revoked.map((e) => e.serial), [revokedSerial], dir);
  }
});

test('verify-good: a fresh host dir passes with its DNS name and its IP', async () => {
  for (const name of ['host-a', '127.0.0.1']) {
    const r = await verifyHostDir({ dir: pki.hostA, expectName: name });
    assert.ok(r.ok, JSON.stringify(r.findings.filter((f) => !f.ok)));
    assert.equal(r.errors, 0);
    assert.ok(r.findings.some((f) => f.check === 'revocation' && f.ok));
  }
  assert.ok((await verifyHostDir({ dir: pki.clientOnly })).ok);
});

test('verify-key-mismatch: a key from another issue is caught', async () => {
  const dir = await copyOf(pki.hostA);
  await copyFile(join(pki.hostB, 'server-key.pem'), join(dir, 'server-key.pem'));
  const r = await verifyHostDir({ dir });
  assert.equal(r.ok, false);
  assert.deepEqual(failed(r), ['key']);
  assert.equal(r.findings.find((f) => f.check === 'key' && !f.ok)?.file, 'server-key.pem');
});

test('verify-expired: an expired certificate is an error', async () => {
  const r = await verifyHostDir({ dir: pki.expired });
  assert.deepEqual(failed(r), ['expiry']);
});

test('verify-expiring-soon: under 30 days left is a warning, not an error', async () => {
  const r = await verifyHostDir({ dir: pki.hostA, now: new Date(Date.now() + 350 * DAY), warnCrlDays: 0 });
  assert.ok(r.findings.some((f) => f.check === 'expiry' && f.level === 'warning'));
  assert.ok(!r.findings.some((f) => f.check === 'expiry' && f.level === 'error'));
});

test('verify-revoked: a certificate in ca-crl.pem is an error naming the reason', async () => {
  const r = await verifyHostDir({ dir: pki.revoked });
  assert.deepEqual(failed(r), ['revocation']);
  const finding = r.findings.find((f) => f.check === 'revocation' && !f.ok);
  assert.equal(finding?.file, 'server-cert.pem');
  // The revocation reason is only in the sentence the operator reads (no field carries it).
  assert.match(finding?.message ?? '', /revoked since .*keyCompromise/);
});

test('verify-wrong-name: a name the certificate does not carry is an error', async () => {
  assert.deepEqual(failed(await verifyHostDir({ dir: pki.hostA, expectName: 'host-b' })), ['name']);
  assert.deepEqual(failed(await verifyHostDir({ dir: pki.hostA, expectName: '10.9.9.9' })), ['name']);
});

test('verify-other-ca: a certificate not signed by the dir\'s ca-cert.pem fails the chain check', async () => {
  assert.ok((await verifyHostDir({ dir: pki.otherCaHost })).ok, 'consistent on its own');
  const dir = await copyOf(pki.hostA);
  await copyFile(join(pki.otherCaHost, 'server-cert.pem'), join(dir, 'server-cert.pem'));
  await copyFile(join(pki.otherCaHost, 'server-key.pem'), join(dir, 'server-key.pem'));
  assert.ok(failed(await verifyHostDir({ dir })).includes('chain'));
});

test('verify-server-only: a serverAuth-only certificate used as client-cert.pem is a usage error', async () => {
  const r = await verifyHostDir({ dir: pki.serverOnly });
  assert.deepEqual(failed(r), ['usage']);
  const finding = r.findings.find((f) => !f.ok);
  // client-cert.pem is the same certificate as server-cert.pem: checked once, under the server file's name.
  assert.equal(finding?.file, 'server-cert.pem');
  // Which role lacks which usage is only in the sentence the operator reads.
  assert.match(finding?.message ?? '', /client.*clientAuth/);
});

test('verify-insecure-key: a key readable by others is an error', async () => {
  const dir = await copyOf(pki.hostA);
  await chmod(join(dir, 'server-key.pem'), 0o644);
  assert.deepEqual(failed(await verifyHostDir({ dir })), ['permissions']);
});

test('verify-crl-expired: a CRL past nextUpdate is an error (peers would refuse every handshake)', async () => {
  const r = await verifyHostDir({ dir: pki.hostA, now: new Date(Date.now() + 40 * DAY) });
  assert.deepEqual(failed(r), ['crl']);
});

test('verify-crl-other-ca: a CRL signed by another CA is an error', async () => {
  const dir = await copyOf(pki.hostA);
  await copyFile(join(pki.otherCaHost, 'ca-crl.pem'), join(dir, 'ca-crl.pem'));
  assert.deepEqual(failed(await verifyHostDir({ dir })), ['crl']);
});

test('verify-no-crl: a dir without ca-crl.pem passes with a warning', async () => {
  const r = await verifyHostDir({ dir: pki.selfSigned });
  assert.ok(r.ok);
  assert.ok(r.findings.some((f) => f.check === 'crl' && f.level === 'warning'));
});

test('verify-missing-key: a certificate without its key is a files error', async () => {
  const dir = await copyOf(pki.clientOnly);
  await rm(join(dir, 'client-key.pem'));
  assert.deepEqual(failed(await verifyHostDir({ dir })), ['files']);
});

test('verify-missing-dir: a dir that does not exist is a files error', async () => {
  assert.deepEqual(failed(await verifyHostDir({ dir: join(pki.root, 'nope') })), ['files']);
});

test('inspect: summary of a host certificate and of its CA', () => {
  const s = inspectCertificate(join(pki.hostA, 'server-cert.pem'));
  const node = new X509Certificate(readFileSync(join(pki.hostA, 'server-cert.pem')));
  assert.equal(s.fingerprintSha256, node.fingerprint256);
  assert.deepEqual({ cn: s.commonName, dns: s.dns, ips: s.ips, ca: s.isCa, self: s.selfSigned, key: s.publicKey }, { cn: 'host-a', dns: ['host-a'], ips: ['127.0.0.1'], ca: false, self: false, key: 'RSA 2048' });
  assert.ok(s.daysLeft >= 364 && s.daysLeft <= 365);
  const ca = inspectCertificate(join(pki.hostA, 'ca-cert.pem'));
  assert.deepEqual({ ca: ca.isCa, self: ca.selfSigned, ku: ca.keyUsage }, { ca: true, self: true, ku: ['keyCertSign', 'cRLSign'] });
});
