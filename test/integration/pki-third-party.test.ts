import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issueCertificate } from '../../src/pki/index.js';
import { requireTool } from '../helpers/require-tool.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';

// Third parties judge the PKI: OpenSSL's and GnuTLS's own command-line
// verifiers (Debian packages openssl and gnutls-bin).

function run(cmd: string, args: string[]): { status: number | null; output: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error !== undefined) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

let pki: TestPki;
before(async () => {
  requireTool('openssl', 'openssl');
  requireTool('certtool', 'gnutls-bin');
  pki = await makeTestPki(await mkdtemp(join(tmpdir(), 'vmgate-pki-3p-')));
});
after(async () => {
  await rm(pki.root, { recursive: true, force: true });
});

function opensslVerify(dir: string, extra: string[] = []): { status: number | null; output: string } {
  return run('openssl', ['verify', '-CAfile', join(dir, 'ca-cert.pem'), '-crl_check', '-CRLfile', join(dir, 'ca-crl.pem'), ...extra, join(dir, 'server-cert.pem')]);
}

test('openssl-verify-accepts-fresh: a fresh host certificate verifies with -crl_check', () => {
  const r = opensslVerify(pki.hostA);
  assert.equal(r.status, 0, r.output);
  assert.match(r.output, /server-cert\.pem: OK/);
});

test('openssl-verify-rejects-revoked: the revoked certificate fails with "certificate revoked"', () => {
  const r = opensslVerify(pki.revoked);
  assert.notEqual(r.status, 0, r.output);
  assert.match(r.output, /certificate revoked/);
});

test('openssl-verify-purpose: host certificates pass sslserver and sslclient; server-only fails sslclient', () => {
  assert.equal(opensslVerify(pki.hostA, ['-purpose', 'sslserver']).status, 0);
  assert.equal(opensslVerify(pki.hostA, ['-purpose', 'sslclient']).status, 0);
  assert.equal(opensslVerify(pki.serverOnly, ['-purpose', 'sslserver']).status, 0);
  const r = opensslVerify(pki.serverOnly, ['-purpose', 'sslclient']);
  assert.notEqual(r.status, 0);
  assert.match(r.output, /unsuitable certificate purpose/);
});

test('openssl-crl-fields: the CRL carries number, authority key id and the revocation reason', () => {
  const r = run('openssl', ['crl', '-in', join(pki.hostA, 'ca-crl.pem'), '-noout', '-text']);
  assert.equal(r.status, 0, r.output);
  for (const want of [/Version 2/, /sha256WithRSAEncryption/, /X509v3 CRL Number:\s*\n\s*2\b/, /X509v3 Authority Key Identifier/, /Next Update:/, /Key Compromise/]) assert.match(r.output, want);
});

test('openssl-reads-encrypted-ca-key: an encrypted CA key opens with its passphrase, not without', async () => {
  const dir = join(pki.root, 'enc-ca');
  await createCa({ dir, commonName: 'enc CA', passphrase: 'pass phrase', keyBits: 2048, allowWeakKeyForTests: true });
  const passFile = join(pki.root, 'pass.txt');
  await writeFile(passFile, 'pass phrase', { mode: 0o600 });
  assert.equal(run('openssl', ['pkey', '-in', join(dir, 'ca-key.pem'), '-passin', `file:${passFile}`, '-noout']).status, 0);
  assert.notEqual(run('openssl', ['pkey', '-in', join(dir, 'ca-key.pem'), '-passin', 'pass:wrong', '-noout']).status, 0);
});

test('certtool-verify-chain-accepts: GnuTLS accepts the leaf + CA chain', async () => {
  const chain = join(pki.root, 'chain.pem');
  await writeFile(chain, (await readFile(join(pki.hostA, 'server-cert.pem'), 'utf8')) + (await readFile(join(pki.hostA, 'ca-cert.pem'), 'utf8')));
  const r = run('certtool', ['--verify-chain', '--infile', chain]);
  assert.equal(r.status, 0, r.output);
  assert.match(r.output, /Chain verification output: Verified/);
});

test('certtool-verify-rejects-revoked: GnuTLS with the CRL rejects the revoked certificate', () => {
  const args = (dir: string): string[] => ['--verify', '--load-ca-certificate', join(dir, 'ca-cert.pem'), '--load-crl', join(dir, 'ca-crl.pem'), '--infile', join(dir, 'server-cert.pem')];
  const good = run('certtool', args(pki.hostA));
  assert.equal(good.status, 0, good.output);
  const bad = run('certtool', args(pki.revoked));
  assert.notEqual(bad.status, 0, bad.output);
  assert.match(bad.output, /revoked/);
});

test('certtool-ipv6-san: GnuTLS reads DNS and IPv6 SANs as written', async () => {
  const out = join(pki.root, 'v6');
  await issueCertificate({ caDir: pki.caDir, outDir: out, commonName: 'host-6', dns: ['host-6.example'], ips: ['2001:db8::6'], keyBits: 2048, allowWeakKeyForTests: true });
  const r = run('certtool', ['--certificate-info', '--infile', join(out, 'server-cert.pem')]);
  assert.equal(r.status, 0, r.output);
  assert.match(r.output, /DNSname: host-6\.example/);
  assert.match(r.output, /IPAddress: 2001:db8::6/);
});

for (const keyType of ['ec', 'ed25519'] as const) {
  test(`third-party-key-type-${keyType}: OpenSSL and GnuTLS verify a ${keyType} chain and read the ${keyType} CRL; the key is what the certificate says`, async () => {
    const root = join(pki.root, `kt-${keyType}`);
    await createCa({ dir: join(root, 'ca'), commonName: `vmgate ${keyType} CA`, keyType });
    await issueCertificate({ caDir: join(root, 'ca'), outDir: join(root, 'host'), commonName: 'host-a', dns: ['host-a'], ips: ['127.0.0.1'], keyType });
    const v = opensslVerify(join(root, 'host'), ['-purpose', 'sslserver']);
    assert.equal(v.status, 0, v.output);
    const text = run('openssl', ['x509', '-noout', '-text', '-in', join(root, 'host', 'server-cert.pem')]);
    assert.match(text.output, keyType === 'ec' ? /Signature Algorithm: ecdsa-with-SHA256[\s\S]*ASN1 OID: prime256v1/ : /Signature Algorithm: ED25519/);
    // RFC 5480: no keyEncipherment for a key that cannot encipher.
    assert.match(text.output, /X509v3 Key Usage: critical\s+Digital Signature\n/);
    const g = run('certtool', ['--verify', '--load-ca-certificate', join(root, 'host', 'ca-cert.pem'), '--load-crl', join(root, 'host', 'ca-crl.pem'), '--infile', join(root, 'host', 'server-cert.pem')]);
    assert.equal(g.status, 0, g.output);
    assert.match(g.output, /Chain verification output: Verified/);
    const k = run('openssl', ['pkey', '-in', join(root, 'host', 'server-key.pem'), '-noout', '-text']);
    assert.match(k.output, keyType === 'ec' ? /NIST CURVE: P-256/ : /ED25519 Private-Key/);
  });
}
