import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import 'reflect-metadata';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { createCa, issueCertificate, listIssued, inspectCertificate } from '../../src/pki/index.js';
import { checkKeySpec, generateKey } from '../../src/pki/keys.js';
import { code } from '../helpers/assert-code.js';

const weak = { keyBits: 2048, allowWeakKeyForTests: true } as const;
let root = '';
let caDir = '';
let n = 0;
const fresh = (name: string): string => join(root, `${name}-${n++}`);


before(async () => {
  root = await mkdtemp(join(tmpdir(), 'vmgate-pki-ca-'));
  caDir = join(root, 'ca');
  await createCa({ dir: caDir, commonName: 'unit CA', ...weak });
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

test('ca-extensions: CA:TRUE critical, keyCertSign+cRLSign critical, SKI, SHA-256, self-signed', async () => {
  const pem = await readFile(join(caDir, 'ca-cert.pem'), 'utf8');
  const cert = new x509.X509Certificate(pem);
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  assert.ok(bc !== null);
  assert.equal(bc.ca, true);
  assert.equal(bc.critical, true);
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  assert.ok(ku !== null);
  assert.equal(ku.critical, true);
  assert.equal(ku.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  assert.ok(ski !== null && ski.keyId.length === 40);
  const sig = cert.signatureAlgorithm as { name?: string; hash?: { name: string } };
  assert.equal(sig.name, 'RSASSA-PKCS1-v1_5');
  assert.equal(sig.hash?.name, 'SHA-256');
  const node = new X509Certificate(pem);
  assert.ok(node.verify(node.publicKey), 'the CA certificate is self-signed');
  assert.equal(node.subject, 'CN=unit CA');
});

test('leaf-extensions: CA:FALSE, digitalSignature+keyEncipherment, EKU, SANs, AKI = CA SKI, positive 16-byte serial', async () => {
  const r = await issueCertificate({ caDir, outDir: fresh('leaf'), commonName: 'host-x', dns: ['host-x', 'host-x.example'], ips: ['127.0.0.1', '2001:db8::1'], ...weak });
  const cert = new x509.X509Certificate(await readFile(r.certPath, 'utf8'));
  const ca = new x509.X509Certificate(await readFile(join(caDir, 'ca-cert.pem'), 'utf8'));
  assert.equal(cert.getExtension(x509.BasicConstraintsExtension)?.ca, false);
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  assert.equal(ku?.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
  assert.deepEqual([...(cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? [])], ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON();
  assert.deepEqual(san, [
    { type: 'dns', value: 'host-x' }, { type: 'dns', value: 'host-x.example' },
    { type: 'ip', value: '127.0.0.1' }, { type: 'ip', value: '2001:db8::1' },
  ]);
  assert.equal(cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, ca.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
  assert.match(r.serial, /^[0-7][0-9a-f]{31}$/);
  assert.equal(cert.serialNumber.toLowerCase(), r.serial);
  const node = new X509Certificate(await readFile(r.certPath, 'utf8'));
  assert.ok(node.checkHost('host-x.example') !== undefined && node.checkIP('2001:db8::1') !== undefined);
});

test('issue-host-layout: a host dir has identical server-* and client-* plus ca-cert.pem and the CA CRL', async () => {
  const out = fresh('layout');
  await issueCertificate({ caDir, outDir: out, commonName: 'host-l', ...weak });
  const read = (f: string): Promise<string> => readFile(join(out, f), 'utf8');
  assert.equal(await read('server-cert.pem'), await read('client-cert.pem'));
  assert.equal(await read('server-key.pem'), await read('client-key.pem'));
  assert.equal(await read('ca-cert.pem'), await readFile(join(caDir, 'ca-cert.pem'), 'utf8'));
  assert.equal(await read('ca-crl.pem'), await readFile(join(caDir, 'ca-crl.pem'), 'utf8'));
  assert.deepEqual(inspectCertificate(join(out, 'server-cert.pem')).dns, ['host-l'], 'a host CN that is a DNS name becomes the SAN');
});

test('issue-client-only: writes client-* only, EKU clientAuth', async () => {
  const out = fresh('client');
  await issueCertificate({ caDir, outDir: out, commonName: 'operator 1', kind: 'client', ...weak });
  await assert.rejects(stat(join(out, 'server-cert.pem')));
  await assert.rejects(stat(join(out, 'server-key.pem')));
  assert.deepEqual(inspectCertificate(join(out, 'client-cert.pem')).extKeyUsage, ['clientAuth']);
});

test('keys-0600: CA key and host keys are 0600, new directories 0700, certificates 0644', async () => {
  const out = fresh('modes');
  await issueCertificate({ caDir, outDir: out, commonName: 'host-m', ...weak });
  const mode = async (p: string): Promise<number> => (await stat(p)).mode & 0o777;
  assert.equal(await mode(join(caDir, 'ca-key.pem')), 0o600);
  assert.equal(await mode(join(out, 'server-key.pem')), 0o600);
  assert.equal(await mode(join(out, 'client-key.pem')), 0o600);
  assert.equal(await mode(out), 0o700);
  assert.equal(await mode(join(out, 'server-cert.pem')), 0o644);
});

test('no-overwrite: issue into an occupied dir fails naming the file and changes nothing', async () => {
  const out = fresh('clobber');
  await issueCertificate({ caDir, outDir: out, commonName: 'host-c', ...weak });
  const before = await readFile(join(out, 'server-key.pem'), 'utf8');
  const issuedBefore = listIssued(caDir).length;
  await assert.rejects(issueCertificate({ caDir, outDir: out, commonName: 'host-c', ...weak }), code('pki-exists', join(out, 'server-cert.pem')));
  assert.equal(await readFile(join(out, 'server-key.pem'), 'utf8'), before);
  assert.equal(listIssued(caDir).length, issuedBefore, 'nothing was signed');
});

test('force-overwrite: issue with force replaces the key and certificate', async () => {
  const out = fresh('force');
  const first = await issueCertificate({ caDir, outDir: out, commonName: 'host-f', ...weak });
  const before = await readFile(join(out, 'server-key.pem'), 'utf8');
  const second = await issueCertificate({ caDir, outDir: out, commonName: 'host-f', force: true, ...weak });
  assert.notEqual(second.serial, first.serial);
  assert.notEqual(await readFile(join(out, 'server-key.pem'), 'utf8'), before);
});

test('no-overwrite-ca: init-ca over an existing CA fails with pki-exists', async () => {
  await assert.rejects(createCa({ dir: caDir, commonName: 'again', ...weak }), code('pki-exists', 'ca-cert.pem'));
});

test('no-overwrite-other-ca: a dir whose ca-cert.pem is another CA is refused', async () => {
  const other = fresh('other-ca');
  await createCa({ dir: other, commonName: 'other', ...weak });
  const out = fresh('mixed');
  await mkdir(out);
  await copyFile(join(other, 'ca-cert.pem'), join(out, 'ca-cert.pem'));
  await assert.rejects(issueCertificate({ caDir, outDir: out, commonName: 'host-o', ...weak }), code('pki-exists', 'ca-cert.pem'));
});

test('passphrase: the CA key is encrypted PKCS#8 and issuing needs the right passphrase', async () => {
  const dir = fresh('enc-ca');
  await createCa({ dir, commonName: 'enc CA', passphrase: 'correct horse', ...weak });
  const keyPem = await readFile(join(dir, 'ca-key.pem'), 'utf8');
  assert.match(keyPem, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  assert.throws(() => createPrivateKey(keyPem));
  assert.equal(createPrivateKey({ key: keyPem, passphrase: 'correct horse' }).asymmetricKeyType, 'rsa');
  await assert.rejects(issueCertificate({ caDir: dir, caPassphrase: 'wrong', outDir: fresh('p'), commonName: 'h', ...weak }), code('pki-bad-passphrase'));
  await assert.rejects(issueCertificate({ caDir: dir, outDir: fresh('p'), commonName: 'h', ...weak }), code('pki-bad-passphrase', 'encrypted'));
  await issueCertificate({ caDir: dir, caPassphrase: 'correct horse', outDir: fresh('p'), commonName: 'h', ...weak });
});

test('ca-expired: an expired CA issues nothing', async () => {
  const dir = fresh('old-ca');
  const day = 86_400_000;
  await createCa({ dir, commonName: 'old CA', notBefore: new Date(Date.now() - 10 * day), notAfter: new Date(Date.now() - day), ...weak });
  await assert.rejects(issueCertificate({ caDir: dir, outDir: fresh('x'), commonName: 'h', ...weak }), code('pki-ca-expired', 'expired'));
});

test('ca-missing: issuing from a directory without a CA is pki-ca-missing', async () => {
  await assert.rejects(issueCertificate({ caDir: fresh('nothing'), outDir: fresh('x'), commonName: 'h', ...weak }), code('pki-ca-missing', 'ca-cert.pem'));
});

test('leaf-within-ca: a certificate never outlives its CA', async () => {
  const dir = fresh('short-ca');
  await createCa({ dir, commonName: 'short CA', days: 10, ...weak });
  const r = await issueCertificate({ caDir: dir, outDir: fresh('x'), commonName: 'h', days: 365, ...weak });
  const ca = inspectCertificate(join(dir, 'ca-cert.pem'));
  assert.ok(r.notAfter.getTime() <= ca.notAfter.getTime() + 1000);
});

test('weak-key-refused: keys under 3072 bits need the explicit test option', async () => {
  await assert.rejects(createCa({ dir: fresh('weak'), commonName: 'w', keyBits: 2048 }), code('pki-bad-input', '3072'));
  await assert.rejects(issueCertificate({ caDir, outDir: fresh('weak'), commonName: 'h', keyBits: 1024, allowWeakKeyForTests: true }), code('pki-bad-input'));
});

test('unwritable-out: an output directory that cannot be created is pki-unwritable', async () => {
  const blocker = fresh('file');
  await writeFile(blocker, 'not a directory');
  const issued = listIssued(caDir).length;
  await assert.rejects(issueCertificate({ caDir, outDir: join(blocker, 'out'), commonName: 'host-w', ...weak }), code('pki-unwritable', blocker));
  assert.equal(listIssued(caDir).length, issued, 'nothing was signed');
});

test('index-records: the CA index lists every issue with names, kind and validity', async () => {
  const out = fresh('idx');
  const r = await issueCertificate({ caDir, outDir: out, commonName: 'host-i', dns: ['host-i.example'], ips: ['10.0.0.1'], ...weak });
  const rec = listIssued(caDir).find((e) => e.serial === r.serial);
  assert.ok(rec !== undefined);
  assert.deepEqual({ cn: rec.commonName, dns: rec.dns, ips: rec.ips, kind: rec.kind, revoked: rec.revoked, outDir: rec.outDir },
    { cn: 'host-i', dns: ['host-i.example'], ips: ['10.0.0.1'], kind: 'host', revoked: false, outDir: out });
  assert.equal(await readFile(join(caDir, 'issued', `${r.serial}.pem`), 'utf8'), await readFile(r.certPath, 'utf8'));
});

test('index-corrupt: a malformed index.json is pki-unreadable', async () => {
  const dir = fresh('bad-index');
  await createCa({ dir, commonName: 'bi', ...weak });
  await writeFile(join(dir, 'index.json'), '{"version":1,"issued":"x"}');
  assert.throws(() => listIssued(dir), code('pki-unreadable', 'index.json'));
});

test('parallel-issue: concurrent issues from one CA all land in the index', async () => {
  const dir = fresh('par-ca');
  await createCa({ dir, commonName: 'par', ...weak });
  const rs = await Promise.all([0, 1, 2, 3].map((i) => issueCertificate({ caDir: dir, outDir: fresh(`par${i}`), commonName: `h${i}`, ...weak })));
  assert.deepEqual(listIssued(dir).map((e) => e.serial).sort(), rs.map((r) => r.serial).sort());
});

test('key-types: ec (the default) is ECDSA P-256, rsa has the size asked, ed25519 is Ed25519; a size with a non-RSA type is refused', async () => {
  const ec = await generateKey(checkKeySpec(undefined, undefined, false));
  assert.equal(ec.privateKey.asymmetricKeyType, 'ec');
  assert.equal(ec.privateKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  const rsa = await generateKey(checkKeySpec('rsa', 3072, false));
  assert.equal(rsa.privateKey.asymmetricKeyDetails?.modulusLength, 3072);
  assert.deepEqual(checkKeySpec(undefined, 4096, false), { type: 'rsa', bits: 4096 });
  const ed = await generateKey(checkKeySpec('ed25519', undefined, false));
  assert.equal(ed.privateKey.asymmetricKeyType, 'ed25519');
  assert.throws(() => checkKeySpec('ec', 3072, false), code('pki-bad-input', '--key-type rsa'));
  assert.throws(() => checkKeySpec('dsa', undefined, false), code('pki-bad-input'));
});
