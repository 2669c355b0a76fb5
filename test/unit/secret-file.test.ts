import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, cp, mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CredentialStore } from '../../src/auth/credential-store.js';
import { makeLocalPki } from '../../src/demo/local-pair.js';
import { loadIdentity } from '../../src/tls/identity.js';
import { QEMU_TLS_LAYOUT } from '../../src/config/load.js';
import type { TlsFiles } from '../../src/config/config.js';
import { readPublicFile, readSecretFile } from '../../src/util/secret-file.js';
import { code } from '../helpers/assert-code.js';

/**
 * Key and secret files are read only from the directory that names them: a
 * symlink may point elsewhere inside it, never out of it (SECURITY.md, least
 * privilege). Secret files must also be 0600.
 */
let root = '';
/** The configured directory. */
let conf = '';
/** Somewhere else on the same machine. */
let elsewhere = '';
let pkiDir = '';

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'vmgate-secret-file-'));
  conf = join(root, 'etc-vmgate');
  elsewhere = join(root, 'home-someone');
  await mkdir(conf, { mode: 0o700 });
  await mkdir(elsewhere, { mode: 0o700 });
  await writeFile(join(conf, 'real.password'), 'pw-inside\n', { mode: 0o600 });
  await writeFile(join(elsewhere, 'planted.password'), 'pw-planted\n', { mode: 0o600 });
  pkiDir = (await makeLocalPki(join(root, 'pki'), 2048)).hostA;
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

test('secret-file-0644-refused-naming-file-and-fix', async () => {
  const p = join(conf, 'loose.password');
  await writeFile(p, 'x', { mode: 0o600 });
  await chmod(p, 0o644);
  await assert.rejects(readSecretFile(p, 'password file'), code('file-insecure', p, '0644', 'chmod 600'));
});

test('secret-file-symlink-inside-dir-followed', async () => {
  const link = join(conf, 'rotated.password');
  await symlink('real.password', link);
  assert.equal((await readSecretFile(link, 'password file')).toString(), 'pw-inside\n');
});

test('secret-file-symlink-out-of-dir-refused-naming-link-and-target', async () => {
  const link = join(conf, 'to-b.password');
  await symlink(join(elsewhere, 'planted.password'), link);
  await assert.rejects(readSecretFile(link, 'password file'), code('file-outside-dir', link, join(elsewhere, 'planted.password')));
});

test('secret-file-relative-dotdot-symlink-refused', async () => {
  const link = join(conf, 'dotdot.password');
  await symlink('../home-someone/planted.password', link);
  await assert.rejects(readSecretFile(link, 'password file'), code('file-outside-dir', link));
});

test('secret-file-link-chain-leaving-and-returning-judged-by-final-target', async () => {
  // conf/chain -> elsewhere/back -> conf/real.password: what is read is inside.
  const back = join(elsewhere, 'back.password');
  await symlink(join(conf, 'real.password'), back);
  const link = join(conf, 'chain.password');
  await symlink(back, link);
  assert.equal((await readSecretFile(link, 'password file')).toString(), 'pw-inside\n');
});

test('secret-file-directory-symlink-allowed', async () => {
  // /etc/vmgate/current -> pki-2026: the configured directory may itself be a link.
  const dirLink = join(root, 'current');
  await symlink(conf, dirLink);
  assert.equal((await readSecretFile(join(dirLink, 'real.password'), 'password file')).toString(), 'pw-inside\n');
});

test('public-file-symlink-out-of-dir-refused', async () => {
  const link = join(conf, 'ca-cert.pem');
  await symlink(join(elsewhere, 'planted.password'), link);
  await assert.rejects(readPublicFile(link, 'CA certificate'), code('file-outside-dir', 'CA certificate', link));
});

test('credential-store-symlink-out-of-dir-refused', async () => {
  const store = CredentialStore.empty();
  await store.setPassword('migrate', 'pw');
  await store.save(join(elsewhere, 'users.json'));
  const link = join(conf, 'users.json');
  await symlink(join(elsewhere, 'users.json'), link);
  await assert.rejects(CredentialStore.load(link), code('file-outside-dir', 'credential store', link));
});

/** A copy of the host-a directory where `file` is replaced by a link to a copy outside it. */
async function pkiWithEscapingLink(name: string, file: string): Promise<TlsFiles> {
  const dir = join(root, `pki-${name}`);
  await cp(pkiDir, dir, { recursive: true });
  const outside = join(elsewhere, `${name}-${file}`);
  await rename(join(dir, file), outside);
  await symlink(outside, join(dir, file));
  const f = (k: keyof typeof QEMU_TLS_LAYOUT): string => join(dir, QEMU_TLS_LAYOUT[k]);
  return { ca: f('ca'), cert: f('cert'), key: f('key'), clientCert: f('clientCert'), clientKey: f('clientKey'), crl: undefined };
}

test('identity-private-key-symlink-out-of-dir-refused', async () => {
  const files = await pkiWithEscapingLink('key', 'server-key.pem');
  await assert.rejects(loadIdentity(files), code('file-outside-dir', 'private key', files.key));
});

test('identity-certificate-symlink-out-of-dir-refused', async () => {
  const files = await pkiWithEscapingLink('cert', 'server-cert.pem');
  await assert.rejects(loadIdentity(files), code('file-outside-dir', 'certificate', files.cert));
});

test('identity-ca-symlink-out-of-dir-refused', async () => {
  const files = await pkiWithEscapingLink('ca', 'ca-cert.pem');
  await assert.rejects(loadIdentity(files), code('file-outside-dir', 'CA certificate', files.ca));
});

test('identity-key-symlink-inside-dir-loads', async () => {
  const dir = join(root, 'pki-rotated');
  await cp(pkiDir, dir, { recursive: true });
  await rename(join(dir, 'server-key.pem'), join(dir, 'server-key-2026.pem'));
  await symlink('server-key-2026.pem', join(dir, 'server-key.pem'));
  const f = (k: keyof typeof QEMU_TLS_LAYOUT): string => join(dir, QEMU_TLS_LAYOUT[k]);
  const id = await loadIdentity({ ca: f('ca'), cert: f('cert'), key: f('key'), clientCert: f('clientCert'), clientKey: f('clientKey'), crl: undefined });
  assert.match(id.server.cert.subject, /host-a/);
});
