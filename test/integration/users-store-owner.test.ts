/**
 * `vmgate users add|remove` rewrite the credential store (a temp file renamed
 * over it). Run as root on the store of a daemon that runs as its own user,
 * the rewritten store must keep that owner, group and mode, or the daemon can
 * no longer read it (config-unreadable at start, reload-failed when running).
 */
import assert from 'node:assert/strict';
import { chown, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runCli, writeSecretFile } from '../helpers/gateway-process.js';
import { NOBODY } from '../helpers/unprivileged.js';

let dir: string;

before(async () => {
  assert.equal(process.getuid?.(), 0, 'this test hands the store to another user, so it must run as root (as .ci/run does)');
  dir = await mkdtemp(join(tmpdir(), 'vmgate-users-'));
});

after(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function cli(...args: string[]): Promise<string> {
  const r = await runCli(args);
  assert.equal(r.code, 0, `vmgate ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test('users-add-keeps-owner-group-mode: a store handed to another user stays theirs', async () => {
  const store = join(dir, 'users.json');
  const pw = join(dir, 'pw');
  await writeSecretFile(pw, 'first-password-1c9a');
  await cli('users', 'add', 'alice', '--store', store, '--password-file', pw);
  const created = await stat(store);
  assert.equal(created.mode & 0o777, 0o600, 'a new store is 0600');
  assert.equal(created.uid, 0, 'a new store belongs to its creator');

  await chown(store, NOBODY, NOBODY);
  await cli('users', 'add', 'bob', '--store', store, '--password-file', pw);
  let st = await stat(store);
  assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [NOBODY, NOBODY, 0o600], 'users add kept owner, group and mode');
  assert.notEqual(st.ino, created.ino, 'the store was rewritten (a new file renamed over it)');

  await cli('users', 'remove', 'alice', '--store', store);
  st = await stat(store);
  assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [NOBODY, NOBODY, 0o600], 'users remove kept owner, group and mode');
  assert.equal((await cli('users', 'list', '--store', store)).trim(), 'bob');
  assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith('.tmp')), [], 'no temp file left behind');
});
