/**
 * QEMU's own TLS migration (no gateways) with host directories made by the
 * bundled scripts: proves the PKI's file layout and certificate profile are
 * what QEMU 7.2's tls-creds-x509 (GnuTLS) accepts for every key type
 * vmgate-pki offers (ECDSA P-256, RSA, Ed25519), and that a CRL published by
 * the scripts makes QEMU refuse a revoked peer.
 *
 * Both QEMUs run on 127.0.0.1 in the current network namespace (no root
 * needed). Readiness comes from /proc/<pid>/net/tcp and QMP, never from a
 * probe connection (QEMU takes any connection as the migration stream).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { onProcessExit } from '../helpers/netns.js';
import { requireTool } from '../helpers/require-tool.js';
import { GUEST_LOAD_ADDR, QEMU_BINARY, QemuVm, configureMigration, migrateAndWait, randomGuestImage, type RandomImage } from '../helpers/qemu.js';
import { waitFor } from '../helpers/wait-for.js';

const GUEST_MIB = 128;
const IMAGE_MIB = 16;
const TIMEOUT_MS = 60_000;
const plan = { mode: 'precopy' } as const;
const cliJs = fileURLToPath(new URL('../../certs/pki.js', import.meta.url));

/** Runs the built vmgate-pki; fails the test with its stderr if it fails. */
function pki(...args: string[]): string {
  const r = spawnSync(process.execPath, [cliJs, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `vmgate-pki ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** QEMU option values escape commas by doubling them. */
const qemuValue = (s: string): string => s.replace(/,/g, ',,');

describe('QEMU native TLS migration with vmgate-pki directories', { timeout: 3 * 60_000 }, () => {
  let dir = '';
  let image: RandomImage;
  let forgetDir = (): void => {};
  const vms: QemuVm[] = [];
  const KEY_TYPES = ['ec', 'rsa', 'ed25519'] as const;
  type KeyType = (typeof KEY_TYPES)[number];
  /** One CA and pair of host directories per key type; the default (ec) also serves the revocation test. */
  const ca = (t: KeyType = 'ec'): string => join(dir, `ca-${t}`);
  const srcDir = (t: KeyType = 'ec'): string => join(dir, `host-src-${t}`);
  const dstDir = (t: KeyType = 'ec'): string => join(dir, `host-dst-${t}`);
  const encDir = (h: 'src' | 'dst'): string => join(dir, `host-${h}-encrypted`);
  const passFile = (): string => join(dir, 'key.pass');

  before(async () => {
    requireTool(QEMU_BINARY, 'qemu-system-x86');
    dir = await mkdtemp(join(tmpdir(), 'vmg-e2e-qemu-tls-'));
    forgetDir = onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
    image = await randomGuestImage(dir, IMAGE_MIB);
    for (const t of KEY_TYPES) {
      pki('init-ca', '--dir', ca(t), '--cn', `vmgate e2e CA ${t}`, '--key-type', t);
      pki('issue', '--ca', ca(t), '--out', srcDir(t), '--cn', 'host-src', '--dns', 'host-src', '--ip', '127.0.0.1', '--key-type', t);
      pki('issue', '--ca', ca(t), '--out', dstDir(t), '--cn', 'host-dst', '--dns', 'host-dst', '--ip', '127.0.0.1', '--key-type', t);
    }
    // Encrypted host keys: QEMU opens them through a secret object (passwordid=), which takes the
    // file's bytes verbatim, so the passphrase file has no trailing newline.
    await writeFile(passFile(), 'e2e key passphrase', { mode: 0o600 });
    for (const h of ['src', 'dst'] as const) {
      pki('issue', '--ca', ca(), '--out', encDir(h), '--cn', `host-${h}`, '--dns', `host-${h}`, '--ip', '127.0.0.1', '--key-passphrase-file', passFile());
    }
  });

  after(async () => {
    await Promise.all(vms.map((vm) => vm.kill()));
    if (dir !== '') await rm(dir, { recursive: true, force: true });
    forgetDir();
  });

  /** Source = TLS client (verifies the destination as host-dst), destination = TLS server requiring a client certificate. */
  async function launchPair(tag: string, t: KeyType = 'ec', encrypted = false): Promise<{ src: QemuVm; dst: QemuVm; uri: string }> {
    const secret = encrypted ? ['-object', `secret,id=keypass,file=${qemuValue(passFile())}`] : [];
    const creds = (hostDir: string, endpoint: 'client' | 'server'): string[] =>
      [...secret, '-object', `tls-creds-x509,id=tls0,dir=${qemuValue(hostDir)},endpoint=${endpoint},verify-peer=on${encrypted ? ',passwordid=keypass' : ''}`];
    const src = await QemuVm.launch({ name: `tls-src-${tag}`, memMiB: GUEST_MIB, loadFile: image.path, extraArgs: creds(encrypted ? encDir('src') : srcDir(t), 'client') });
    vms.push(src);
    const dst = await QemuVm.launch({ name: `tls-dst-${tag}`, memMiB: GUEST_MIB, incoming: true, extraArgs: creds(encrypted ? encDir('dst') : dstDir(t), 'server') });
    vms.push(dst);
    await configureMigration(src, plan);
    await configureMigration(dst, plan);
    await src.setParameters({ 'tls-creds': 'tls0', 'tls-hostname': 'host-dst' });
    await dst.setParameters({ 'tls-creds': 'tls0' });
    const port = await dst.migrateIncoming('tcp:127.0.0.1:0');
    return { src, dst, uri: `tcp:127.0.0.1:${port}` };
  }

  for (const t of KEY_TYPES) {
    test(`qemu-native-tls-migrates-${t}: a paused guest migrates over QEMU TLS with script-made ${t} dirs`, async (tc) => {
      const { src, dst, uri } = await launchPair(`ok-${t}`, t);
      const result = await migrateAndWait(src, dst, uri, plan, TIMEOUT_MS);
      assert.equal(result.source.status, 'completed');
      assert.equal(result.destinationState, 'prelaunch');
      assert.equal(await dst.ramHash(GUEST_LOAD_ADDR, image.size), image.sha256, 'the guest data arrived intact');
      tc.diagnostic(`TLS precopy of ${GUEST_MIB} MiB guest with ${t} keys: ${result.elapsedMs} ms`);
      await Promise.all([src.kill(), dst.kill()]);
    });
  }

  test('qemu-native-tls-encrypted-keys: keys from issue --key-passphrase-file migrate with tls-creds-x509 passwordid=', async (tc) => {
    const { src, dst, uri } = await launchPair('encrypted', 'ec', true);
    const result = await migrateAndWait(src, dst, uri, plan, TIMEOUT_MS);
    assert.equal(result.source.status, 'completed');
    assert.equal(await dst.ramHash(GUEST_LOAD_ADDR, image.size), image.sha256, 'the guest data arrived intact');
    tc.diagnostic(`TLS precopy with encrypted keys: ${result.elapsedMs} ms`);
    await Promise.all([src.kill(), dst.kill()]);
  });

  test('qemu-native-tls-revoked-client: after revoke + publish-crl the destination refuses the same source certificate', async () => {
    // The certificate that just migrated successfully: only the CRL changes.
    pki('revoke', '--ca', ca(), '--cert', join(srcDir(), 'client-cert.pem'), '--reason', 'keyCompromise');
    pki('publish-crl', '--ca', ca(), '--to', dstDir());
    const { src, dst, uri } = await launchPair('revoked');
    await src.migrate(uri);
    // QEMU reports the refusal only as text on stderr (GnuTLS's message): no code to assert.
    await waitFor(() => dst.stderr().includes('The certificate has been revoked'), {
      what: 'the destination QEMU to refuse the revoked certificate', timeoutMs: 20_000, intervalMs: 50, detail: () => `destination stderr: ${dst.stderr()}`,
    });
    // With TLS 1.3 the client's handshake ends before the server has judged
    // the client certificate, so the source may even report "completed" for a
    // small guest; what matters is that the destination took nothing.
    const info = await dst.qmp.queryMigrate();
    assert.notEqual(info.status, 'completed');
    assert.equal(await dst.runState(), 'inmigrate');
    assert.notEqual(await dst.ramHash(GUEST_LOAD_ADDR, image.size), image.sha256, 'no guest data was loaded');
    await Promise.all([src.kill(), dst.kill()]);
  });
});
