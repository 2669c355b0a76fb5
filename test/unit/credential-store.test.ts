import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { scryptSync } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { CredentialStore } from '../../src/auth/credential-store.js';
import { code } from '../helpers/assert-code.js';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmgate-creds-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let seq = 0;
async function writeStore(content: unknown, mode = 0o600): Promise<string> {
  const path = join(dir, `store-${seq++}.json`);
  await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content), { mode });
  await chmod(path, mode);
  return path;
}

/** A record with cheap scrypt parameters (N=16): only tests use these. */
function cheapRecord(password: string, salt = Buffer.alloc(16, 1)): Record<string, unknown> {
  const hash = scryptSync(password, salt, 32, { N: 16, r: 8, p: 1 });
  return { salt: salt.toString('base64'), hash: hash.toString('base64'), N: 16, r: 8, p: 1 };
}


test('set-verify-save-load-remove-round-trip', async () => {
  const store = CredentialStore.empty();
  await store.setPassword('alice', 'correct horse');
  await store.setPassword('bob', 'battery staple');
  assert.deepEqual(store.users(), ['alice', 'bob']);
  assert.equal(await store.verify('alice', 'correct horse'), true);

  const path = join(dir, 'round-trip.json');
  await store.save(path);
  const loaded = await CredentialStore.load(path);
  assert.deepEqual(loaded.users(), ['alice', 'bob']);
  assert.equal(await loaded.verify('alice', 'correct horse'), true);
  assert.equal(await loaded.verify('bob', 'battery staple'), true);

  assert.equal(loaded.remove('alice'), true);
  assert.equal(loaded.remove('alice'), false);
  assert.equal(await loaded.verify('alice', 'correct horse'), false);
  assert.deepEqual(loaded.users(), ['bob']);
});

test('saved-file-format', async () => {
  const store = CredentialStore.empty();
  await store.setPassword('alice', 'pw');
  const path = join(dir, 'format.json');
  await store.save(path);
  const json = JSON.parse(await readFile(path, 'utf8')) as { version: number; users: Record<string, Record<string, unknown>> };
  assert.equal(json.version, 1);
  const rec = json.users['alice']!;
  assert.deepEqual(Object.keys(rec).sort(), ['N', 'hash', 'p', 'r', 'salt']);
  assert.deepEqual([rec['N'], rec['r'], rec['p']], [16384, 8, 1]);
  assert.equal(Buffer.from(rec['salt'] as string, 'base64').length, 16);
  const expected = scryptSync('pw', Buffer.from(rec['salt'] as string, 'base64'), 32, { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
  assert.equal(rec['hash'], expected.toString('base64'));
});

test('saved-file-mode-0600-and-no-temp-left', async () => {
  const store = CredentialStore.empty();
  const path = join(dir, 'mode.json');
  const oldUmask = process.umask(0o000);
  try {
    await store.save(path);
  } finally {
    process.umask(oldUmask);
  }
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.deepEqual((await readdir(dir)).filter((n) => n.includes('mode.json') && n !== 'mode.json'), []);
});

test('save-replaces-existing-file', async () => {
  const path = await writeStore({ version: 1, users: { old: cheapRecord('x') } });
  const store = CredentialStore.empty();
  await store.save(path);
  assert.deepEqual((await CredentialStore.load(path)).users(), []);
});

test('wrong-password-false', async () => {
  const path = await writeStore({ version: 1, users: { alice: cheapRecord('right') } });
  const store = await CredentialStore.load(path);
  assert.equal(await store.verify('alice', 'right'), true);
  assert.equal(await store.verify('alice', 'wrong'), false);
  assert.equal(await store.verify('alice', 'right '), false);
  assert.equal(await store.verify('alice', ''), false);
});

test('unknown-user-false', async () => {
  const path = await writeStore({ version: 1, users: { alice: cheapRecord('right') } });
  const store = await CredentialStore.load(path);
  assert.equal(await store.verify('mallory', 'right'), false);
  assert.equal(await store.verify('', 'right'), false);
  assert.equal(await CredentialStore.empty().verify('alice', 'right'), false);
});

test('verify-applies-saslprep', async () => {
  const path = await writeStore({ version: 1, users: { alice: cheapRecord('correct horse') } });
  const store = await CredentialStore.load(path);
  assert.equal(await store.verify('al\u00adice', 'correct\u00a0horse'), true);
});

test('set-password-refuses-bad-input', async () => {
  const store = CredentialStore.empty();
  await assert.rejects(store.setPassword('', 'pw'), code('credentials-invalid'));
  await assert.rejects(store.setPassword('a\u0007', 'pw'), code('credentials-invalid'));
  await assert.rejects(store.setPassword('u'.repeat(256), 'pw'), code('credentials-invalid'));
  await assert.rejects(store.setPassword('alice', ''), code('credentials-invalid'));
  await assert.rejects(store.setPassword('alice', 'p'.repeat(1025)), code('credentials-invalid'));
  await assert.rejects(store.setPassword('alice', '\u00ad'), code('credentials-invalid'));
  assert.deepEqual(store.users(), []);
});

test('load-0644-refused-file-insecure', async () => {
  const path = await writeStore({ version: 1, users: {} }, 0o644);
  await assert.rejects(CredentialStore.load(path), code('file-insecure', path, 'chmod 600'));
});

test('load-group-writable-refused-file-insecure', async () => {
  const path = await writeStore({ version: 1, users: {} }, 0o620);
  await assert.rejects(CredentialStore.load(path), code('file-insecure', path));
});

test('load-missing-file-config-unreadable', async () => {
  await assert.rejects(CredentialStore.load(join(dir, 'nope.json')), code('config-unreadable', 'nope.json'));
});

const invalid: [string, unknown, string][] = [
  ['corrupt-json', '{"version":1,"users":{', 'JSON'],
  ['top-level-array', '[]', 'object'],
  ['missing-version', { users: {} }, 'version'],
  ['wrong-version', { version: 2, users: {} }, 'version'],
  ['missing-users', { version: 1 }, 'users'],
  ['users-array', { version: 1, users: [] }, 'users'],
  ['unknown-top-key', { version: 1, users: {}, extra: true }, 'extra'],
  ['missing-salt', { version: 1, users: { alice: { ...cheapRecord('x'), salt: undefined } } }, 'users["alice"].salt'],
  ['missing-hash', { version: 1, users: { alice: { ...cheapRecord('x'), hash: undefined } } }, 'users["alice"].hash'],
  ['short-salt', { version: 1, users: { alice: { ...cheapRecord('x'), salt: Buffer.alloc(8).toString('base64') } } }, 'users["alice"].salt'],
  ['junk-hash', { version: 1, users: { alice: { ...cheapRecord('x'), hash: '!!!' } } }, 'users["alice"].hash'],
  ['n-not-power-of-two', { version: 1, users: { alice: { ...cheapRecord('x'), N: 1000 } } }, 'users["alice"].N'],
  ['absurd-n', { version: 1, users: { alice: { ...cheapRecord('x'), N: 2 ** 30 } } }, 'users["alice"].N'],
  ['memory-too-large', { version: 1, users: { alice: { ...cheapRecord('x'), N: 2 ** 20, r: 8 } } }, 'users["alice"].N'],
  ['zero-r', { version: 1, users: { alice: { ...cheapRecord('x'), r: 0 } } }, 'users["alice"].r'],
  ['huge-p', { version: 1, users: { alice: { ...cheapRecord('x'), p: 1000 } } }, 'users["alice"].p'],
  ['unknown-record-key', { version: 1, users: { alice: { ...cheapRecord('x'), algo: 'md5' } } }, 'algo'],
  ['record-not-object', { version: 1, users: { alice: 'hash' } }, 'users["alice"]'],
  ['name-not-saslprepped', { version: 1, users: { 'al\u00adice': cheapRecord('x') } }, 'users["al\u00adice"]'],
  ['empty-name', { version: 1, users: { '': cheapRecord('x') } }, 'users[""]'],
];
for (const [name, content, mention] of invalid) {
  test(`load-${name}-credentials-invalid`, async () => {
    const path = await writeStore(content);
    await assert.rejects(CredentialStore.load(path), code('credentials-invalid', path, mention));
  });
}

test('load-proto-user-name-kept', async () => {
  const path = await writeStore(`{"version":1,"users":{"__proto__":${JSON.stringify(cheapRecord('x'))}}}`);
  const store = await CredentialStore.load(path);
  assert.deepEqual(store.users(), ['__proto__']);
  assert.equal(await store.verify('__proto__', 'x'), true);
  assert.equal(await store.verify('constructor', 'x'), false);
});

test('load-other-params-within-bounds', async () => {
  const salt = Buffer.alloc(16, 9);
  const hash = scryptSync('pw', salt, 32, { N: 32, r: 2, p: 3 });
  const path = await writeStore({ version: 1, users: { carol: { salt: salt.toString('base64'), hash: hash.toString('base64'), N: 32, r: 2, p: 3 } } });
  assert.equal(await (await CredentialStore.load(path)).verify('carol', 'pw'), true);
});

// ---- recently verified logins (the later channels of a migration skip scrypt) ----

async function cheapStore(users: Record<string, string>): Promise<CredentialStore> {
  const records = Object.fromEntries(Object.entries(users).map(([u, pw]) => [u, cheapRecord(pw)]));
  return CredentialStore.load(await writeStore({ version: 1, users: records }));
}

test('login-cache-hit: a login accepted by scrypt is accepted again without it', async () => {
  const store = await cheapStore({ alice: 'pw-a' });
  assert.deepEqual(await store.check('alice', 'pw-a'), { accepted: true, via: 'scrypt' });
  assert.deepEqual(await store.check('alice', 'pw-a'), { accepted: true, via: 'recent' });
});

test('login-cache-miss: a failed login is never remembered, and each try pays scrypt', async () => {
  const store = await cheapStore({ alice: 'pw-a' });
  assert.deepEqual(await store.check('alice', 'wrong'), { accepted: false, via: 'scrypt' });
  assert.deepEqual(await store.check('alice', 'wrong'), { accepted: false, via: 'scrypt' });
  assert.deepEqual(await store.check('nobody', 'pw-a'), { accepted: false, via: 'scrypt' });
});

test('login-cache-wrong-password-never-accepted: with the right login cached, any other password is refused by scrypt', async () => {
  const store = await cheapStore({ alice: 'pw-a', bob: 'pw-b' });
  assert.equal(await store.verify('alice', 'pw-a'), true);
  assert.equal(await store.verify('bob', 'pw-b'), true);
  await fc.assert(
    fc.asyncProperty(fc.constantFrom('alice', 'bob', 'carol'), fc.string({ minLength: 1, maxLength: 40 }), async (user, password) => {
      fc.pre(!(user === 'alice' && password === 'pw-a') && !(user === 'bob' && password === 'pw-b'));
      assert.deepEqual(await store.check(user, password), { accepted: false, via: 'scrypt' });
    }),
    { numRuns: 200 },
  );
  assert.equal(await store.verify('bob', 'pw-a'), false, "another user's cached password");
});

test('login-cache-concurrent: eight channels logging in at once share one scrypt run', async () => {
  const store = await cheapStore({ alice: 'pw-a' });
  const results = await Promise.all(Array.from({ length: 8 }, () => store.check('alice', 'pw-a')));
  assert.ok(results.every((r) => r.accepted));
  assert.deepEqual(results.map((r) => r.via).sort(), ['scrypt', 'shared', 'shared', 'shared', 'shared', 'shared', 'shared', 'shared']);
});

test('login-cache-concurrent-wrong: concurrent wrong passwords each pay their own scrypt run', async () => {
  const store = await cheapStore({ alice: 'pw-a' });
  const results = await Promise.all(Array.from({ length: 4 }, () => store.check('alice', 'wrong')));
  assert.deepEqual(results, Array.from({ length: 4 }, () => ({ accepted: false, via: 'scrypt' })));
});

test('login-cache-set-password: a new password drops the cached old one', async () => {
  const store = await cheapStore({ alice: 'old-pw' });
  assert.equal(await store.verify('alice', 'old-pw'), true);
  await store.setPassword('alice', 'new-pw');
  assert.deepEqual(await store.check('alice', 'old-pw'), { accepted: false, via: 'scrypt' });
  assert.equal(await store.verify('alice', 'new-pw'), true);
});

test('login-cache-remove: a removed user is refused even with a cached login', async () => {
  const store = await cheapStore({ alice: 'pw-a' });
  assert.equal(await store.verify('alice', 'pw-a'), true);
  store.remove('alice');
  assert.deepEqual(await store.check('alice', 'pw-a'), { accepted: false, via: 'scrypt' });
});

test('login-cache-reload: a store loaded again (as on SIGHUP) starts with no cached login', async () => {
  const path = await writeStore({ version: 1, users: { alice: cheapRecord('old-pw') } });
  const original = await CredentialStore.load(path);
  assert.equal(await original.verify('alice', 'old-pw'), true);
  await writeFile(path, JSON.stringify({ version: 1, users: { alice: cheapRecord('new-pw') } }), { mode: 0o600 });
  const reloaded = await CredentialStore.load(path);
  assert.deepEqual(await reloaded.check('alice', 'old-pw'), { accepted: false, via: 'scrypt' });
  assert.deepEqual(await reloaded.check('alice', 'new-pw'), { accepted: true, via: 'scrypt' });
});
