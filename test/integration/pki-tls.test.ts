import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { createCa, inspectCertificate, issueCertificate } from '../../src/pki/index.js';
import { QEMU_TLS_LAYOUT } from '../../src/config/load.js';
import type { TlsFiles } from '../../src/config/config.js';
import { loadIdentity } from '../../src/tls/identity.js';

let pki: TestPki;
before(async () => {
  pki = await makeTestPki(await mkdtemp(join(tmpdir(), 'vmgate-pki-tls-')));
});
after(async () => {
  await rm(pki.root, { recursive: true, force: true });
});

const file = (dir: string, name: string): Buffer => readFileSync(join(dir, name));

interface Outcome {
  /** The server accepted the client and saw this CN. */
  serverSawCn?: string;
  serverAuthorizationError?: string;
  clientError?: string;
  protocol?: string | null;
  /** Bytes the client received from the server after the handshake. */
  received: string;
}

/**
 * One mutual TLS 1.3 exchange on 127.0.0.1, port 0: server from `serverDir`,
 * client from `clientDir`, client expecting the name `expectName`.
 */
function exchange(serverDir: string, clientDir: string, o: { serverCrl: boolean; clientCrl?: boolean; rejectUnauthorized?: boolean; expectName?: string }): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const out: Outcome = { received: '' };
    const server = tls.createServer({
      key: file(serverDir, 'server-key.pem'),
      cert: file(serverDir, 'server-cert.pem'),
      ca: file(serverDir, 'ca-cert.pem'),
      ...(o.serverCrl ? { crl: file(serverDir, 'ca-crl.pem') } : {}),
      requestCert: true,
      rejectUnauthorized: o.rejectUnauthorized ?? true,
      minVersion: 'TLSv1.3',
    }, (socket) => {
      out.serverSawCn = String(socket.getPeerCertificate().subject.CN);
      if (!socket.authorized) out.serverAuthorizationError = String(socket.authorizationError);
      socket.end('hello');
    });
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      const client = tls.connect({
        host: '127.0.0.1',
        port,
        servername: o.expectName ?? 'host-a',
        key: file(clientDir, 'client-key.pem'),
        cert: file(clientDir, 'client-cert.pem'),
        ca: file(clientDir, 'ca-cert.pem'),
        ...(o.clientCrl === true ? { crl: file(clientDir, 'ca-crl.pem') } : {}),
        minVersion: 'TLSv1.3',
      }, () => { out.protocol = client.getProtocol(); });
      client.setEncoding('utf8');
      client.on('data', (d: string) => { out.received += d; });
      client.on('error', (e: Error & { code?: string }) => { out.clientError = e.code ?? e.message; });
      client.on('close', () => { server.close(); resolve(out); });
    });
  });
}

test('tls-mutual-ok: host-a serves, host-b connects, TLS 1.3, both sides verified with the CRL loaded', async () => {
  const r = await exchange(pki.hostA, pki.hostB, { serverCrl: true, clientCrl: true });
  assert.equal(r.clientError, undefined);
  assert.equal(r.protocol, 'TLSv1.3');
  assert.equal(r.serverSawCn, 'host-b');
  assert.equal(r.received, 'hello');
});

test('tls-revoked-client-refused: with the CRL the server never accepts the revoked client', async () => {
  const r = await exchange(pki.hostA, pki.revoked, { serverCrl: true });
  assert.equal(r.serverSawCn, undefined);
  assert.equal(r.received, '');
});

test('tls-revoked-client-reason: the server\'s verdict on the revoked client is CERT_REVOKED', async () => {
  const r = await exchange(pki.hostA, pki.revoked, { serverCrl: true, rejectUnauthorized: false });
  assert.equal(r.serverSawCn, 'host-revoked');
  assert.equal(r.serverAuthorizationError, 'CERT_REVOKED');
});

test('tls-revoked-needs-crl: without the CRL the same revoked client gets in (the CRL is what refuses it)', async () => {
  const r = await exchange(pki.hostA, pki.revoked, { serverCrl: false });
  assert.equal(r.serverSawCn, 'host-revoked');
  assert.equal(r.received, 'hello');
});

test('tls-revoked-server-refused: a client with the CRL refuses a revoked server', async () => {
  const r = await exchange(pki.revoked, pki.hostB, { serverCrl: true, clientCrl: true, expectName: 'host-revoked' });
  assert.equal(r.clientError, 'CERT_REVOKED');
  assert.equal(r.received, '');
});

test('tls-other-ca-refused: a host-a certificate from another CA is not trusted', async () => {
  const r = await exchange(pki.otherCaHost, pki.hostB, { serverCrl: false });
  // Node sends the server's CA along with its certificate, so OpenSSL sees an untrusted root in the chain.
  assert.ok(['SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'].includes(r.clientError ?? ''), `client error ${r.clientError}`);
  assert.equal(r.received, '');
});

test('tls-self-signed-refused: a self-signed host-a is not trusted', async () => {
  const r = await exchange(pki.selfSigned, pki.hostB, { serverCrl: false });
  assert.equal(r.clientError, 'DEPTH_ZERO_SELF_SIGNED_CERT');
});

test('tls-expired-refused: an expired server certificate is refused', async () => {
  const r = await exchange(pki.expired, pki.hostB, { serverCrl: true, expectName: 'host-expired' });
  assert.equal(r.clientError, 'CERT_HAS_EXPIRED');
});

test('tls-wrong-name-refused: host-b presented where host-a is expected fails the name check', async () => {
  const r = await exchange(pki.hostB, pki.hostA, { serverCrl: true, expectName: 'host-a' });
  assert.equal(r.clientError, 'ERR_TLS_CERT_ALTNAME_INVALID');
});

test('tls-server-only-as-client-refused: a serverAuth-only certificate cannot authenticate a client', async () => {
  const r = await exchange(pki.hostA, pki.serverOnly, { serverCrl: true, rejectUnauthorized: false });
  assert.equal(r.serverAuthorizationError, 'INVALID_PURPOSE');
});

/** A CA and two hosts (host-a, host-b; IP 127.0.0.1) whose keys are all of `keyType`, with the CA's CRL in each host dir. */
async function keyTypePki(keyType: 'ec' | 'rsa' | 'ed25519'): Promise<{ hostA: string; hostB: string }> {
  const dir = (name: string): string => join(pki.root, `${keyType}-${name}`);
  const weak = keyType === 'rsa' ? { keyBits: 2048, allowWeakKeyForTests: true } : {};
  await createCa({ dir: dir('ca'), commonName: `vmgate ${keyType} CA`, keyType, ...weak });
  for (const h of ['host-a', 'host-b']) {
    await issueCertificate({ caDir: dir('ca'), outDir: dir(h), commonName: h, dns: [h], ips: ['127.0.0.1'], keyType, ...weak });
  }
  return { hostA: dir('host-a'), hostB: dir('host-b') };
}

/** The TlsFiles vmgate's config loader makes from `tls.dir: dir`. */
function dirFiles(dir: string): TlsFiles {
  const f = (k: keyof typeof QEMU_TLS_LAYOUT): string => join(dir, QEMU_TLS_LAYOUT[k]);
  return { ca: f('ca'), cert: f('cert'), key: f('key'), clientCert: f('clientCert'), clientKey: f('clientKey'), crl: f('crl') };
}

for (const keyType of ['ec', 'rsa', 'ed25519'] as const) {
  test(`tls-key-type-${keyType}: vmgate identities with ${keyType} keys load and complete mutual TLS 1.3, CRL loaded`, async () => {
    const dirs = await keyTypePki(keyType);
    assert.equal(inspectCertificate(join(dirs.hostA, 'server-cert.pem')).publicKey.split(' ')[0], keyType.toUpperCase());
    const r = await exchange(dirs.hostA, dirs.hostB, { serverCrl: true, clientCrl: true });
    assert.equal(r.clientError, undefined);
    assert.equal(r.protocol, 'TLSv1.3');
    assert.equal(r.serverSawCn, 'host-b');
    // vmgate's own loader, used as the gateway uses it (server options from the identity, the dialler's
    // client context), over a real socket.
    const a = await loadIdentity(dirFiles(dirs.hostA));
    const b = await loadIdentity(dirFiles(dirs.hostB));
    const seen = await new Promise<{ cn: string; authorized: boolean; protocol: string | null }>((resolve, reject) => {
      const serverOptions = { ca: a.ca, cert: a.server.certPem, key: a.server.keyPem, ...(a.crl !== undefined ? { crl: a.crl } : {}) };
      const server = tls.createServer({ ...serverOptions, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (socket) => {
        resolve({ cn: String(socket.getPeerCertificate().subject.CN), authorized: socket.authorized, protocol: socket.getProtocol() });
        socket.end();
        server.close();
      });
      server.on('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const client = tls.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, servername: 'host-a', secureContext: b.clientContext, minVersion: 'TLSv1.3' });
        client.on('error', (e: Error) => { server.close(); reject(e); });
        client.resume();
      });
    });
    assert.deepEqual(seen, { cn: 'host-b', authorized: true, protocol: 'TLSv1.3' });
  });
}
