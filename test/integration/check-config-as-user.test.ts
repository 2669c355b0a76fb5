/**
 * `vmgate check-config --as USER` checks what `run` would meet as the user the
 * daemon runs as (root runs check-config, vmgate runs the daemon): every file
 * readable by that user, every socket group known to NSS and in the user's
 * reach (its groups, plus the unit's SupplementaryGroups=). Each refusal is a
 * coded error naming the file or group. nobody:nogroup stands in for vmgate;
 * group daemon (gid 1) is one nobody is not in.
 */
import assert from 'node:assert/strict';
import { chmod, chown, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { checkConfig } from '../../src/cli/check-config.js';
import { daemonAccount } from '../../src/cli/daemon-account.js';
import type { VmgateError } from '../../src/errors.js';
import { groupId } from '../../src/util/group-id.js';
import { cliCode, code } from '../helpers/assert-code.js';
import { runCli, writeGatewayConfig, writeSecretFile } from '../helpers/gateway-process.js';
import { writeSmallGateway } from '../helpers/small-gateway.js';
import { NOBODY } from '../helpers/unprivileged.js';

let dir: string;
let unitNone: string;

before(async () => {
  assert.equal(process.getuid?.(), 0, 'this test hands files to nobody, so it must run as root (as .ci/run does)');
  dir = await mkdtemp(join(tmpdir(), 'vmgate-check-as-'));
  await chmod(dir, 0o755);
  unitNone = join(dir, 'plain.service');
  await writeFile(unitNone, '[Service]\nUser=vmgate\n');
});

after(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function chownTree(path: string): Promise<void> {
  await chown(path, NOBODY, NOBODY);
  if (!(await stat(path)).isDirectory()) return;
  for (const e of await readdir(path)) await chownTree(join(path, e));
}

/** A gateway whose files all belong to nobody, in a directory nobody may enter; `extra` goes into its config. */
async function gatewayForNobody(extra: Record<string, unknown> = {}): Promise<{ caseDir: string; config: string; tls: string }> {
  const caseDir = await mkdtemp(join(dir, 'case-'));
  await chmod(caseDir, 0o755);
  const g = await writeSmallGateway(caseDir);
  await writeGatewayConfig(g.config, { name: 'host-small', tls: { dir: g.tls }, control: { socket: g.control }, ...extra });
  await chownTree(g.tls);
  await chown(g.config, NOBODY, NOBODY);
  return { caseDir, config: g.config, tls: g.tls };
}

async function failureOf(config: string, as = 'nobody', unit = [unitNone]): Promise<VmgateError> {
  const r = await checkConfig(config, { as, unit });
  assert.ok(r.failure, `check-config passed:\n${r.report}`);
  return r.failure;
}

test('check-as-user-passes: files readable by the user, no socket group', async () => {
  const g = await gatewayForNobody();
  const r = await checkConfig(g.config, { as: 'nobody', unit: [unitNone] });
  assert.equal(r.failure, undefined, r.report);
  assert.match(r.report, /checked as user nobody \(uid 65534\): \d+ file\(s\)/);
});

test('check-as-user-key-unreadable: a key the user cannot read is named, with the fix', async () => {
  const g = await gatewayForNobody();
  const key = join(g.tls, 'server-key.pem');
  await chown(key, 0, 0);
  code('config-unreadable', key, 'nobody', `chown nobody ${key}`)(await failureOf(g.config));
  const cli = await runCli(['check-config', '--as', 'nobody', g.config]);
  assert.equal(cli.code, 1);
  assert.equal(cliCode(cli.stderr), 'config-unreadable');
  assert.match(cli.stdout, /^refused \(config-unreadable\): .*server-key\.pem/m);
  // As root everything is readable: the same config passes.
  assert.equal((await checkConfig(g.config, { as: 'root', unit: [unitNone] })).failure, undefined);
});

test('check-as-user-config-unreadable: the config file itself', async () => {
  const g = await gatewayForNobody();
  await chown(g.config, 0, 0);
  code('config-unreadable', g.config)(await failureOf(g.config));
});

test('check-as-user-directory-closed: a directory on the way the user cannot enter', async () => {
  const g = await gatewayForNobody();
  await chmod(g.caseDir, 0o700);
  const f = await failureOf(g.config);
  code('config-unreadable', `directory ${g.caseDir}`, `chown nobody ${g.caseDir}`)(f);
  assert.doesNotMatch(f.message, /problem\(s\)/, 'one refusal for the directory, not one per file in it');
});

test('check-as-user-store-and-password-files: the credential store and a route password file', async () => {
  const g = await gatewayForNobody();
  const store = join(g.caseDir, 'users.json');
  await writeFile(store, '{"version":1,"users":{}}\n', { mode: 0o600 });
  const pw = join(g.caseDir, 'to-b.password');
  await writeSecretFile(pw, 'a password');
  const route = { listen: 'tcp:127.0.0.1:0', peer: '127.0.0.1:1', peerName: 'host-b', target: 'incoming', user: 'migrate', passwordFile: pw };
  const server = { listen: '127.0.0.1:0', credentials: store, targets: { incoming: { connect: 'tcp:127.0.0.1:1', allow: [{ peer: 'host-b', user: 'migrate' }] } } };
  await writeGatewayConfig(g.config, { name: 'host-small', tls: { dir: g.tls }, server, routes: { 'to-b': route } });
  await chown(g.config, NOBODY, NOBODY);
  code('config-unreadable', store)(await failureOf(g.config));
  await chown(store, NOBODY, NOBODY);
  code('config-unreadable', pw)(await failureOf(g.config));
  await chown(pw, NOBODY, NOBODY);
  const r = await checkConfig(g.config, { as: 'nobody', unit: [unitNone] });
  assert.equal(r.failure, undefined, r.report);
});

test('check-socket-group-missing: control.group and socketGroup that NSS does not know', async () => {
  const g = await gatewayForNobody({ control: { socket: join(dir, 'c.sock'), group: 'vmgate-no-such-group' } });
  code('config-invalid', 'control.group', 'vmgate-no-such-group')(await failureOf(g.config, 'root'));
  const pw = join(g.caseDir, 'to-b.password');
  await writeSecretFile(pw, 'a password');
  const route = { listen: `unix:${join(g.caseDir, 'to-b.sock')}`, peer: '127.0.0.1:1', peerName: 'host-b', target: 'incoming', user: 'migrate', passwordFile: pw, socketGroup: 'vmgate-no-such-group-2' };
  await writeGatewayConfig(g.config, { name: 'host-small', tls: { dir: g.tls }, routes: { 'to-b': route } });
  code('config-invalid', 'routes.to-b.socketGroup', 'vmgate-no-such-group-2')(await failureOf(g.config, 'root'));
});

test('check-socket-group-not-a-member: the user cannot hand its socket to a group it is not in, unless the unit adds it', async () => {
  const g = await gatewayForNobody({ control: { socket: join(dir, 'c2.sock'), group: 'daemon' } });
  code('config-invalid', 'control.group', 'user nobody is not in group daemon', 'SupplementaryGroups=daemon')(await failureOf(g.config));
  const unit = join(g.caseDir, 'vmgate.service');
  await writeFile(unit, '[Unit]\nDescription=x\n[Service]\nUser=nobody\nSupplementaryGroups=daemon\n');
  const r = await checkConfig(g.config, { as: 'nobody', unit: [unit] });
  assert.equal(r.failure, undefined, r.report);
  assert.match(r.report, /with daemon from the unit's SupplementaryGroups=/);
  // A drop-in that empties the list takes the group away again.
  const dropIn = join(g.caseDir, 'override.conf');
  await writeFile(dropIn, '[Service]\nSupplementaryGroups=\n');
  code('config-invalid', 'control.group')(await failureOf(g.config, 'nobody', [unit, dropIn]));
});

test('check-as-default-user-missing: as root without the unit\'s user, it says so and checks as root', async () => {
  const unit = join(dir, 'absent.service');
  await writeFile(unit, '[Service]\nUser=vmgate-no-such-user\n');
  const r = await daemonAccount(undefined, [unit]);
  assert.equal(r.account, undefined);
  assert.match(r.note ?? '', /no user vmgate-no-such-user .*--as USER/);
  const g = await gatewayForNobody();
  const c = await checkConfig(g.config, { unit: [unit] });
  assert.equal(c.failure, undefined, c.report);
  assert.match(c.report, /note: no user vmgate-no-such-user/);
});

test('check-as-unknown-user: --as a user NSS does not know', async () => {
  const g = await gatewayForNobody();
  await assert.rejects(checkConfig(g.config, { as: 'vmgate-no-such-user', unit: [unitNone] }), code('config-invalid', 'vmgate-no-such-user'));
});

test('group-id-through-nss: names resolve through getent, a missing group is config-invalid', async () => {
  assert.equal(await groupId('daemon'), 1);
  assert.equal(await groupId('nogroup'), NOBODY);
  await assert.rejects(groupId('vmgate-no-such-group', 'routes.x.socketGroup'), code('config-invalid', 'routes.x.socketGroup', 'vmgate-no-such-group'));
});
