import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import 'reflect-metadata';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { createCa, generateCrl, issueCertificate, listIssued, parseCrlPem, publishCrl, revokeCertificate, summarizeCrl } from '../../src/pki/index.js';
import { code } from '../helpers/assert-code.js';

const weak = { keyBits: 2048, allowWeakKeyForTests: true } as const;
const DAY = 86_400_000;
let root = '';
let caDir = '';
let n = 0;
const fresh = (name: string): string => join(root, `${name}-${n++}`);

async function caCrl(dir = caDir): Promise<x509.X509Crl> {
  return parseCrlPem(await readFile(join(dir, 'ca-crl.pem'), 'utf8'), 'ca-crl.pem');
}
const host = (cn: string): ReturnType<typeof issueCertificate> => issueCertificate({ caDir, outDir: fresh(cn), commonName: cn, ...weak });

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'vmgate-pki-crl-'));
  caDir = join(root, 'ca');
  await createCa({ dir: caDir, commonName: 'crl CA', ...weak });
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

test('crl-initial: a new CA has an empty, signed, SHA-256 CRL with number, AKI and 30-day nextUpdate', async () => {
  const dir = fresh('ca');
  await createCa({ dir, commonName: 'fresh CA', ...weak });
  const crlPem = await readFile(join(dir, 'ca-crl.pem'), 'utf8');
  assert.match(crlPem, /^-----BEGIN X509 CRL-----\n/, 'the PEM label OpenSSL and GnuTLS read');
  const crl = parseCrlPem(crlPem, 'ca-crl.pem');
  const ca = new x509.X509Certificate(await readFile(join(dir, 'ca-cert.pem'), 'utf8'));
  assert.ok(await crl.verify({ publicKey: ca }));
  assert.equal(crl.entries.length, 0);
  const sig = crl.signatureAlgorithm as { name?: string; hash?: { name: string } };
  assert.equal(sig.name, 'RSASSA-PKCS1-v1_5');
  assert.equal(sig.hash?.name, 'SHA-256');
  assert.deepEqual(Buffer.from(crl.issuerName.toArrayBuffer()), Buffer.from(ca.subjectName.toArrayBuffer()), 'issuer DN bytes equal the CA subject');
  assert.equal(crl.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, ca.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
  const s = summarizeCrl(crl);
  assert.equal(s.crlNumber, 1);
  const now = Date.now();
  assert.ok(s.thisUpdate.getTime() <= now);
  assert.ok(Math.abs((s.nextUpdate?.getTime() ?? 0) - (now + 30 * DAY)) < 60_000);
});

test('revoke-lists-serial: the revoked serial is in the CRL with its reason; CRL number goes up', async () => {
  const r = await host('host-r');
  const before = summarizeCrl(await caCrl()).crlNumber ?? 0;
  const out = await revokeCertificate({ caDir, serial: r.serial, reason: 'keyCompromise' });
  assert.equal(out.crlPath, join(caDir, 'ca-crl.pem'));
  const s = summarizeCrl(await caCrl());
  const entry = s.revoked.find((e) => e.serial === r.serial);
  assert.ok(entry !== undefined, `${r.serial} not in ${JSON.stringify(s.revoked)}`);
  assert.equal(entry.reason, 'keyCompromise');
  assert.equal(s.crlNumber, before + 1);
  assert.equal(listIssued(caDir).find((e) => e.serial === r.serial)?.revoked, true);
});

test('revoke-by-cert: revoking by certificate file finds its serial', async () => {
  const r = await host('host-file');
  const out = await revokeCertificate({ caDir, certPath: r.certPath, reason: 'superseded' });
  assert.equal(out.serial, r.serial);
  assert.ok(summarizeCrl(await caCrl()).revoked.some((e) => e.serial === r.serial && e.reason === 'superseded'));
});

test('revoke-serial-spellings: an upper-case, colon-separated serial revokes the same certificate', async () => {
  const r = await host('host-colon');
  const spelled = r.serial.toUpperCase().match(/../g)?.join(':') ?? '';
  assert.equal((await revokeCertificate({ caDir, serial: spelled })).serial, r.serial);
});

test('revoke-twice: revoking again keeps one entry and the first date', async () => {
  const r = await host('host-twice');
  await revokeCertificate({ caDir, serial: r.serial });
  const first = summarizeCrl(await caCrl()).revoked.filter((e) => e.serial === r.serial);
  const again = await revokeCertificate({ caDir, serial: r.serial, reason: 'keyCompromise' });
  assert.equal(again.alreadyRevoked, true);
  const second = summarizeCrl(await caCrl()).revoked.filter((e) => e.serial === r.serial);
  assert.equal(second.length, 1);
  assert.deepEqual(second[0]?.date, first[0]?.date);
});

test('revoke-unknown-serial: pki-unknown-serial, CRL untouched', async () => {
  const before = await readFile(join(caDir, 'ca-crl.pem'), 'utf8');
  await assert.rejects(revokeCertificate({ caDir, serial: '0123456789abcdef' }), code('pki-unknown-serial', '0123456789abcdef'));
  assert.equal(await readFile(join(caDir, 'ca-crl.pem'), 'utf8'), before);
});

test('revoke-other-ca-cert: a certificate from another CA is pki-ca-mismatch', async () => {
  const other = fresh('other');
  await createCa({ dir: other, commonName: 'other CA', ...weak });
  const r = await issueCertificate({ caDir: other, outDir: fresh('o'), commonName: 'host-o', ...weak });
  await assert.rejects(revokeCertificate({ caDir, certPath: r.certPath }), code('pki-ca-mismatch'));
});

test('revoke-bad-input: unknown reason, or neither/both of serial and cert, is pki-bad-input', async () => {
  const r = await host('host-bad');
  await assert.rejects(revokeCertificate({ caDir, serial: r.serial, reason: 'because' }), code('pki-bad-input', 'keyCompromise'));
  await assert.rejects(revokeCertificate({ caDir }), code('pki-bad-input'));
  await assert.rejects(revokeCertificate({ caDir, serial: r.serial, certPath: r.certPath }), code('pki-bad-input'));
  assert.equal(listIssued(caDir).find((e) => e.serial === r.serial)?.revoked, false);
});

test('revoke-bad-passphrase: nothing is revoked without the CA key', async () => {
  const dir = fresh('enc');
  await createCa({ dir, commonName: 'enc CA', passphrase: 'pw', ...weak });
  const r = await issueCertificate({ caDir: dir, caPassphrase: 'pw', outDir: fresh('e'), commonName: 'host-e', ...weak });
  await assert.rejects(revokeCertificate({ caDir: dir, caPassphrase: 'nope', serial: r.serial }), code('pki-bad-passphrase'));
  assert.equal(listIssued(dir)[0]?.revoked, false);
  assert.equal((await caCrl(dir)).entries.length, 0);
});

test('gen-crl: re-signing bumps the CRL number and sets nextUpdate from days', async () => {
  const before = summarizeCrl(await caCrl()).crlNumber ?? 0;
  const r = await generateCrl({ caDir, days: 7 });
  assert.equal(r.crlNumber, before + 1);
  const s = summarizeCrl(await caCrl());
  assert.equal(s.crlNumber, before + 1);
  assert.ok(Math.abs((s.nextUpdate?.getTime() ?? 0) - (Date.now() + 7 * DAY)) < 60_000);
});

test('issue-copies-crl: a directory issued after a revocation carries the CRL that lists it', async () => {
  const r = await host('host-gone');
  await revokeCertificate({ caDir, serial: r.serial });
  const later = await host('host-later');
  const copy = parseCrlPem(await readFile(join(later.outDir, 'ca-crl.pem'), 'utf8'), 'copy');
  assert.ok(summarizeCrl(copy).revoked.some((e) => e.serial === r.serial));
});

test('publish-crl: copies the CA CRL into host dirs of this CA', async () => {
  const a = await host('host-pub');
  const r = await host('host-pub-revoked');
  await revokeCertificate({ caDir, serial: r.serial });
  const out = await publishCrl({ caDir, to: [a.outDir] });
  assert.deepEqual(out.published, [join(a.outDir, 'ca-crl.pem')]);
  assert.equal(await readFile(join(a.outDir, 'ca-crl.pem'), 'utf8'), await readFile(join(caDir, 'ca-crl.pem'), 'utf8'));
});

test('publish-crl-other-ca: a dir of another CA is refused and no dir is touched', async () => {
  const a = await host('host-ok');
  const other = fresh('other2');
  await createCa({ dir: other, commonName: 'other CA 2', ...weak });
  const o = await issueCertificate({ caDir: other, outDir: fresh('o2'), commonName: 'host-o2', ...weak });
  await generateCrl({ caDir });
  const before = await readFile(join(a.outDir, 'ca-crl.pem'), 'utf8');
  await assert.rejects(publishCrl({ caDir, to: [a.outDir, o.outDir] }), code('pki-ca-mismatch'));
  assert.equal(await readFile(join(a.outDir, 'ca-crl.pem'), 'utf8'), before);
});
