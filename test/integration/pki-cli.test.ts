import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertCliError } from '../helpers/assert-code.js';

// The built CLI as an operator runs it: exit codes, messages, next steps.
// Failures are asserted by the code of their `error [code]: ...` line. What the
// tool prints on success (what it made, the next command to run, inspect's
// listing) has no code: that text is the product, and is matched as text.
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const cliJs = join(repo, 'dist', 'certs', 'pki.js');
const wrapper = join(repo, 'certs', 'vmgate-pki');

interface Run { status: number | null; stdout: string; stderr: string }
function pki(...args: string[]): Run {
  const r = spawnSync(process.execPath, [cliJs, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
function assertOneLineError(r: Run, code: string): void {
  assertCliError(r.stderr, code);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

let root = '';
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'vmgate-pki-cli-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

test('cli-lifecycle: init-ca, issue, verify ok, revoke, publish-crl, verify fails', async () => {
  const ca = join(root, 'ca');
  const host = join(root, 'host-a');
  const passFile = join(root, 'ca.pass');
  await writeFile(passFile, 'a long passphrase\n', { mode: 0o600 });

  let r = pki('init-ca', '--dir', ca, '--cn', 'cli CA', '--passphrase-file', passFile, '--key-bits', '3072');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /created CA "cli CA"/);
  assert.match(r.stdout, /encrypted/);
  assert.match(r.stdout, /^next: vmgate-pki issue --ca /m);

  r = pki('issue', '--ca', ca, '--passphrase-file', passFile, '--out', host, '--cn', 'host-a', '--dns', 'host-a,host-a.example', '--ip', '127.0.0.1');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /issued host certificate CN=host-a serial [0-9a-f]{32} \(DNS:host-a, DNS:host-a\.example, IP:127\.0\.0\.1/);
  assert.match(r.stdout, /^next: vmgate-pki verify /m);
  assert.equal((await stat(join(host, 'server-key.pem'))).mode & 0o777, 0o600);

  r = pki('verify', host, '--name', 'host-a.example');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /: ok \(/);

  r = pki('revoke', '--ca', ca, '--passphrase-file', passFile, '--cert', join(host, 'server-cert.pem'), '--reason', 'key-compromise');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^revoked: serial [0-9a-f]{32} \(CN=host-a\)/m);
  assert.match(r.stdout, /^next: vmgate-pki publish-crl /m);

  r = pki('verify', host);
  assert.equal(r.status, 0, 'the host dir still has the old CRL until it is published');

  r = pki('publish-crl', '--ca', ca, '--to', host);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /published .*ca-crl\.pem/);

  r = pki('verify', host);
  assert.equal(r.status, 1);
  assert.match(r.stdout, /^FAIL\s+revocation\s+.*revoked since .*keyCompromise/m);
  assertOneLineError(r, 'pki-verify-failed');

  r = pki('list', '--ca', ca);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /revoked:keyCompromise/);
});

test('cli-bad-passphrase: a wrong CA passphrase exits 1 with pki-bad-passphrase', async () => {
  const ca = join(root, 'ca-pass');
  const good = join(root, 'good.pass');
  const bad = join(root, 'bad.pass');
  await writeFile(good, 'right\n');
  await writeFile(bad, 'wrong\n');
  assert.equal(pki('init-ca', '--dir', ca, '--cn', 'p', '--passphrase-file', good).status, 0);
  const r = pki('issue', '--ca', ca, '--passphrase-file', bad, '--out', join(root, 'p-host'), '--cn', 'host-p');
  assert.equal(r.status, 1);
  assertOneLineError(r, 'pki-bad-passphrase');
});

test('cli-bad-input: malformed SAN, unknown reason, missing option, bad number each exit non-zero with one coded line', () => {
  const ca = join(root, 'ca-bad');
  assert.equal(pki('init-ca', '--dir', ca, '--cn', 'b').status, 0);
  let r = pki('issue', '--ca', ca, '--out', join(root, 'x'), '--cn', 'x', '--dns', 'bad_name');
  assert.equal(r.status, 1);
  assertOneLineError(r, 'pki-bad-san');
  r = pki('revoke', '--ca', ca, '--serial', '01', '--reason', 'because');
  assert.equal(r.status, 1);
  assertOneLineError(r, 'pki-bad-input');
  r = pki('issue', '--ca', ca, '--cn', 'x');
  assert.equal(r.status, 2);
  assertOneLineError(r, 'usage');
  assert.match(r.stderr, /--out/);
  r = pki('issue', '--ca', ca, '--out', join(root, 'y'), '--cn', 'y', '--days', 'soon');
  assert.equal(r.status, 2);
  assertOneLineError(r, 'usage');
  r = pki('frobnicate');
  assert.equal(r.status, 2);
  assertOneLineError(r, 'usage');
});

test('cli-no-overwrite: issuing twice into a dir exits 1 naming the file; --force replaces it', () => {
  const ca = join(root, 'ca-ow');
  const out = join(root, 'ow');
  assert.equal(pki('init-ca', '--dir', ca, '--cn', 'ow').status, 0);
  assert.equal(pki('issue', '--ca', ca, '--out', out, '--cn', 'host-o').status, 0);
  const r = pki('issue', '--ca', ca, '--out', out, '--cn', 'host-o');
  assert.equal(r.status, 1);
  assertOneLineError(r, 'pki-exists');
  assert.match(r.stderr, /server-cert\.pem/);
  assert.equal(pki('issue', '--ca', ca, '--out', out, '--cn', 'host-o', '--force').status, 0);
});

test('cli-help: --help works for the program and every command, exit 0', () => {
  const top = pki('--help');
  assert.equal(top.status, 0);
  for (const cmd of ['init-ca', 'issue', 'list', 'inspect', 'verify', 'revoke', 'publish-crl', 'gen-crl', 'renew']) {
    assert.match(top.stdout, new RegExp(`\\b${cmd}\\b`));
    const r = pki(cmd, '--help');
    assert.equal(r.status, 0, cmd);
    assert.match(r.stdout, new RegExp(`Usage: vmgate-pki ${cmd}`));
  }
});

test('cli-wrapper: certs/vmgate-pki runs the built CLI', () => {
  const r = spawnSync(wrapper, ['list', '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Usage: vmgate-pki list/);
});

test('cli-renew-and-inspect: renew prints old and new serial; inspect shows a certificate and a CRL', () => {
  const ca = join(root, 'ca-rn');
  const out = join(root, 'rn');
  assert.equal(pki('init-ca', '--dir', ca, '--cn', 'rn').status, 0);
  assert.equal(pki('issue', '--ca', ca, '--out', out, '--cn', 'host-r', '--ip', '10.0.0.9').status, 0);
  const r = pki('renew', '--ca', ca, '--dir', out, '--days', '30');
  assert.equal(r.status, 0, r.stderr);
  const m = /serial ([0-9a-f]{32}) -> ([0-9a-f]{32})/.exec(r.stdout);
  assert.ok(m !== null && m[1] !== m[2], r.stdout);
  assert.match(r.stdout, new RegExp(`revoke --ca \\S+ --serial ${m[1] ?? ''} --reason superseded`));
  const cert = pki('inspect', join(out, 'server-cert.pem'));
  assert.equal(cert.status, 0);
  assert.match(cert.stdout, new RegExp(`serial\\s+${m[2] ?? ''}`));
  assert.match(cert.stdout, /names\s+IP:10\.0\.0\.9\n/, 'SANs are exactly what was asked for');
  const crl = pki('inspect', join(out, 'ca-crl.pem'));
  assert.equal(crl.status, 0);
  assert.match(crl.stdout, /CRL number\s+1/);
});

test('cli-key-types: ECDSA P-256 by default, --key-type rsa/ed25519 as asked, renew keeps the type, a size with ec is refused', () => {
  const ca = join(root, 'ca-kt');
  assert.equal(pki('init-ca', '--dir', ca, '--cn', 'kt').status, 0);
  const inspectKey = (file: string): string => (JSON.parse(pki('inspect', '--json', file).stdout) as { publicKey: string }).publicKey;
  assert.equal(inspectKey(join(ca, 'ca-cert.pem')), 'EC');
  const cases: Array<[string[], string]> = [[[], 'EC'], [['--key-type', 'rsa'], 'RSA 3072'], [['--key-bits', '4096'], 'RSA 4096'], [['--key-type', 'ed25519'], 'ED25519']];
  for (const [args, expected] of cases) {
    const out = join(root, `kt-${expected.replace(' ', '-')}`);
    const r = pki('issue', '--ca', ca, '--out', out, '--cn', 'host-kt', ...args);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(inspectKey(join(out, 'server-cert.pem')), expected);
  }
  const renewed = pki('renew', '--ca', ca, '--dir', join(root, 'kt-ED25519'));
  assert.equal(renewed.status, 0, renewed.stderr);
  assert.equal(inspectKey(join(root, 'kt-ED25519', 'server-cert.pem')), 'ED25519');
  const bad = pki('issue', '--ca', ca, '--out', join(root, 'kt-bad'), '--cn', 'host-kt', '--key-type', 'ec', '--key-bits', '3072');
  assert.equal(bad.status, 1);
  assertOneLineError(bad, 'pki-bad-input');
});

test('cli-key-passphrase: issue --key-passphrase-file writes an encrypted key that opens with that passphrase only', async () => {
  const ca = join(root, 'ca-kp');
  const pass = join(root, 'host.pass');
  await writeFile(pass, 'host secret\n', { mode: 0o600 });
  assert.equal(pki('init-ca', '--dir', ca, '--cn', 'kp').status, 0);
  const out = join(root, 'kp-host');
  const r = pki('issue', '--ca', ca, '--out', out, '--cn', 'host-kp', '--key-passphrase-file', pass);
  assert.equal(r.status, 0, r.stderr);
  const key = await readFile(join(out, 'server-key.pem'), 'utf8');
  assert.match(key, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  assert.equal(createPrivateKey({ key, passphrase: 'host secret' }).asymmetricKeyType, 'ec');
  assert.throws(() => createPrivateKey({ key, passphrase: 'other' }));
  assert.equal((await stat(join(out, 'server-key.pem'))).mode & 0o777, 0o600);
});
