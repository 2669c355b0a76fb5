/**
 * How the gateway may read its private keys: group-readable (0640) only for
 * the group `tls.keyGroup` names, and encrypted keys only with the passphrase
 * in `tls.keyPassphraseFile`. Real files, real modes and owners (CI runs as
 * root, so files can be handed to the groups `daemon` and `bin`).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, chown, cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issueCertificate } from '../../src/pki/index.js';
import { parseConfig, QEMU_TLS_LAYOUT } from '../../src/config/load.js';
import type { TlsFiles } from '../../src/config/config.js';
import { loadIdentity } from '../../src/tls/identity.js';
import { groupId } from '../../src/util/group-id.js';
import { code } from '../helpers/assert-code.js';

let root = '';
let plainDir = '';
let encryptedDir = '';
let daemonGid = 0;
let binGid = 0;
let n = 0;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'vmgate-key-access-'));
  daemonGid = await groupId('daemon');
  binGid = await groupId('bin');
  await createCa({ dir: join(root, 'ca'), commonName: 'key access CA' });
  plainDir = join(root, 'plain');
  encryptedDir = join(root, 'encrypted');
  await issueCertificate({ caDir: join(root, 'ca'), outDir: plainDir, commonName: 'host-a', ips: ['127.0.0.1'] });
  await issueCertificate({ caDir: join(root, 'ca'), outDir: encryptedDir, commonName: 'host-a', ips: ['127.0.0.1'], keyPassphrase: 'correct horse' });
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function copyOf(dir: string): Promise<string> {
  const to = join(root, `copy-${n++}`);
  await cp(dir, to, { recursive: true });
  return to;
}

function files(dir: string, extra: Partial<TlsFiles> = {}): TlsFiles {
  const f = (k: keyof typeof QEMU_TLS_LAYOUT): string => join(dir, QEMU_TLS_LAYOUT[k]);
  return { ca: f('ca'), cert: f('cert'), key: f('key'), clientCert: f('clientCert'), clientKey: f('clientKey'), crl: undefined, ...extra };
}

/** A copy of the plain host dir whose keys have `mode` and group `gid`. */
async function sharedKeys(mode: number, gid: number): Promise<string> {
  const dir = await copyOf(plainDir);
  for (const k of ['server-key.pem', 'client-key.pem']) {
    await chown(join(dir, k), 0, gid);
    await chmod(join(dir, k), mode);
  }
  return dir;
}

test('key-group-0640-accepted: a key 0640 owned by the tls.keyGroup group loads (by name and by number)', async () => {
  const dir = await sharedKeys(0o640, daemonGid);
  assert.match((await loadIdentity(files(dir, { keyGroup: 'daemon' }))).server.cert.subject, /host-a/);
  assert.match((await loadIdentity(files(dir, { keyGroup: daemonGid }))).server.cert.subject, /host-a/);
});

test('key-group-unset-refused: the same 0640 key without tls.keyGroup is file-insecure, naming chmod 600 and tls.keyGroup', async () => {
  const dir = await sharedKeys(0o640, daemonGid);
  await assert.rejects(loadIdentity(files(dir)), code('file-insecure', join(dir, 'server-key.pem'), '0640', 'chmod 600', 'tls.keyGroup'));
});

test('key-group-other-group-refused: a 0640 key owned by another group is file-insecure, naming chgrp', async () => {
  const dir = await sharedKeys(0o640, binGid);
  await assert.rejects(loadIdentity(files(dir, { keyGroup: 'daemon' })), code('file-insecure', join(dir, 'server-key.pem'), `gid ${binGid}`, 'chgrp daemon'));
});

test('key-group-other-bits-refused: with tls.keyGroup, a key others may read (0644) is still file-insecure', async () => {
  const dir = await sharedKeys(0o644, daemonGid);
  await assert.rejects(loadIdentity(files(dir, { keyGroup: 'daemon' })), code('file-insecure', '0644', 'chmod o='));
});

test('key-group-write-refused: with tls.keyGroup, a group-writable key (0660) is file-insecure', async () => {
  const dir = await sharedKeys(0o660, daemonGid);
  await assert.rejects(loadIdentity(files(dir, { keyGroup: 'daemon' })), code('file-insecure', '0660', 'chmod 640'));
});

test('key-group-unknown-refused: a tls.keyGroup that names no group is config-invalid', async () => {
  const dir = await sharedKeys(0o640, daemonGid);
  await assert.rejects(loadIdentity(files(dir, { keyGroup: 'no-such-group-vmgate' })), code('config-invalid', 'tls.keyGroup'));
});

async function passphraseFile(text: string, mode = 0o600): Promise<string> {
  const p = join(root, `pass-${n++}`);
  await writeFile(p, text, { mode: 0o600 });
  await chmod(p, mode);
  return p;
}

test('key-passphrase-accepted: an encrypted key opens with tls.keyPassphraseFile (trailing newline ignored)', async () => {
  const id = await loadIdentity(files(encryptedDir, { keyPassphraseFile: await passphraseFile('correct horse\n') }));
  assert.match(id.server.cert.subject, /host-a/);
  assert.ok(id.server.keyPem.toString().includes('-----BEGIN PRIVATE KEY-----'), 'TLS gets the opened key');
});

test('key-passphrase-missing: an encrypted key without tls.keyPassphraseFile is identity-key-passphrase naming the key and the option', async () => {
  await assert.rejects(loadIdentity(files(encryptedDir)), code('identity-key-passphrase', join(encryptedDir, 'server-key.pem'), 'tls.keyPassphraseFile'));
});

test('key-passphrase-wrong: a wrong passphrase is identity-key-passphrase naming the passphrase file', async () => {
  const p = await passphraseFile('wrong horse\n');
  await assert.rejects(loadIdentity(files(encryptedDir, { keyPassphraseFile: p })), code('identity-key-passphrase', p, join(encryptedDir, 'server-key.pem')));
});

test('key-passphrase-empty: an empty passphrase file is identity-key-passphrase', async () => {
  const p = await passphraseFile('\n');
  await assert.rejects(loadIdentity(files(encryptedDir, { keyPassphraseFile: p })), code('identity-key-passphrase', p));
});

test('key-passphrase-file-insecure: a passphrase file others may read is file-insecure, even with tls.keyGroup', async () => {
  const p = await passphraseFile('correct horse\n', 0o640);
  await chown(p, 0, daemonGid);
  await assert.rejects(loadIdentity(files(encryptedDir, { keyPassphraseFile: p, keyGroup: 'daemon' })), code('file-insecure', p, 'chmod 600'));
});

test('key-access-config: tls.keyGroup and tls.keyPassphraseFile are read from the config, the file relative to it', () => {
  const c = parseConfig('tls:\n  dir: pki\n  keyGroup: qemu\n  keyPassphraseFile: key.pass\n', '/etc/vmgate/vmgate.yaml');
  assert.equal(c.tls.keyGroup, 'qemu');
  assert.equal(c.tls.keyPassphraseFile, '/etc/vmgate/key.pass');
  const d = parseConfig('tls:\n  dir: pki\n', '/etc/vmgate/vmgate.yaml');
  assert.equal(d.tls.keyGroup, undefined);
  assert.equal(d.tls.keyPassphraseFile, undefined);
});
