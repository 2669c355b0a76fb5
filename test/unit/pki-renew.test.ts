import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isVmgateError } from '../../src/errors.js';
import { createCa, inspectCertificate, issueCertificate, listIssued, renewCertificate } from '../../src/pki/index.js';

const weak = { keyBits: 2048, allowWeakKeyForTests: true } as const;
let root = '';
let caDir = '';
let n = 0;
const fresh = (name: string): string => join(root, `${name}-${n++}`);

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'vmgate-pki-renew-'));
  caDir = join(root, 'ca');
  await createCa({ dir: caDir, commonName: 'renew CA', ...weak });
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

test('renew-keeps-names: same CN, SANs and usages; new key and serial; both roles replaced', async () => {
  const out = fresh('host');
  const first = await issueCertificate({ caDir, outDir: out, commonName: 'host-n', dns: ['host-n', 'host-n.example'], ips: ['10.1.2.3', 'fd00::7'], days: 30, ...weak });
  const oldKey = await readFile(join(out, 'server-key.pem'), 'utf8');
  const old = inspectCertificate(first.certPath);
  const r = await renewCertificate({ caDir, outDir: out, days: 90, ...weak });
  const now = inspectCertificate(join(out, 'server-cert.pem'));
  assert.equal(r.previousSerial, first.serial);
  assert.notEqual(r.serial, first.serial);
  assert.equal(now.serial, r.serial);
  assert.notEqual(await readFile(join(out, 'server-key.pem'), 'utf8'), oldKey);
  assert.equal(await readFile(join(out, 'client-key.pem'), 'utf8'), await readFile(join(out, 'server-key.pem'), 'utf8'));
  assert.deepEqual({ cn: now.commonName, dns: now.dns, ips: now.ips, eku: now.extKeyUsage }, { cn: old.commonName, dns: old.dns, ips: old.ips, eku: old.extKeyUsage });
  assert.ok(now.daysLeft >= 89 && now.daysLeft <= 90, `${now.daysLeft} days left`);
  assert.equal(listIssued(caDir).find((e) => e.serial === r.serial)?.renewedFrom, first.serial);
  assert.equal(listIssued(caDir).find((e) => e.serial === first.serial)?.revoked, false, 'the old certificate is not revoked by renew');
});

test('renew-client-only: a client dir stays client-only with clientAuth', async () => {
  const out = fresh('client');
  await issueCertificate({ caDir, outDir: out, commonName: 'operator', kind: 'client', ...weak });
  const r = await renewCertificate({ caDir, outDir: out, ...weak });
  assert.equal(r.kind, 'client');
  assert.deepEqual(inspectCertificate(join(out, 'client-cert.pem')).extKeyUsage, ['clientAuth']);
});

test('renew-server-only-usage: a renewed serverAuth-only certificate stays serverAuth-only', async () => {
  const out = fresh('srv');
  await issueCertificate({ caDir, outDir: out, commonName: 'host-s', extKeyUsage: ['serverAuth'], ...weak });
  await renewCertificate({ caDir, outDir: out, ...weak });
  assert.deepEqual(inspectCertificate(join(out, 'server-cert.pem')).extKeyUsage, ['serverAuth']);
});

test('renew-other-ca: a certificate from another CA needs force', async () => {
  const other = fresh('other');
  await createCa({ dir: other, commonName: 'other CA', ...weak });
  const out = fresh('o');
  await issueCertificate({ caDir: other, outDir: out, commonName: 'host-o', ...weak });
  await assert.rejects(renewCertificate({ caDir, outDir: out, ...weak }), (e: unknown) => isVmgateError(e) && e.code === 'pki-ca-mismatch');
  const r = await renewCertificate({ caDir, outDir: out, force: true, ...weak });
  assert.equal(inspectCertificate(join(out, 'server-cert.pem')).issuer, 'CN=renew CA');
  assert.equal(inspectCertificate(join(out, 'ca-cert.pem')).subject, 'CN=renew CA');
  assert.equal(r.commonName, 'host-o');
});

test('renew-empty-dir: nothing to renew is pki-bad-input', async () => {
  await assert.rejects(renewCertificate({ caDir, outDir: fresh('empty'), ...weak }), (e: unknown) => isVmgateError(e) && e.code === 'pki-bad-input');
});
