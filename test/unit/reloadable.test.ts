/**
 * A reload with worker processes is read and checked once by the primary
 * (checkReload) and built in each worker from those very bytes
 * (loadFromChecked): the worker reads no file, so it cannot take a file
 * that changed after the check, nor one the primary refused.
 */
import assert from 'node:assert/strict';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { CredentialStore } from '../../src/auth/credential-store.js';
import { loadConfig } from '../../src/config/load.js';
import { checkReload, loadFromChecked, loadFromDisk } from '../../src/daemon/reloadable.js';
import { code } from '../helpers/assert-code.js';
import { writeGatewayConfig, writeSecretFile } from '../helpers/gateway-process.js';
import { withTestPki, type TestPki } from '../helpers/pki.js';

let dir = '';
let pki: TestPki;
withTestPki('vmgate-reloadable-', (d, p) => {
  dir = d;
  pki = p;
});

async function writeSetup(name: string): Promise<string> {
  const store = CredentialStore.empty();
  await store.setPassword('migrate', 'pw-of-migrate');
  await store.save(join(dir, `${name}-users.json`));
  await writeSecretFile(join(dir, `${name}.password`), 'route-password');
  const file = join(dir, `${name}.yaml`);
  await writeGatewayConfig(file, {
    name,
    tls: { dir: pki.hostB },
    server: { listen: '127.0.0.1:0', credentials: `./${name}-users.json`, targets: { incoming: { connect: 'tcp:127.0.0.1:49152', allow: [{ peer: 'host-a', user: 'migrate' }] } } },
    routes: { 'to-a': { listen: 'tcp:127.0.0.1:0', peer: '127.0.0.1:7443', peerName: 'host-a', target: 'incoming', user: 'migrate', passwordFile: `./${name}.password` } },
  });
  return file;
}

test('a worker builds the checked state from the bytes alone, even with the files gone', async () => {
  const running = await loadConfig(await writeSetup('gone'));
  const checked = await checkReload(running);
  const fromDisk = await loadFromDisk(running);
  // Every file the reload named disappears before the worker builds it.
  await rename(join(dir, 'gone-users.json'), join(dir, 'gone-users.moved'));
  await rename(join(dir, 'gone.password'), join(dir, 'gone.password.moved'));
  const built = await loadFromChecked(running, checked);
  assert.equal(built.identity.server.cert.fingerprint256, fromDisk.identity.server.cert.fingerprint256);
  assert.deepEqual(built.credentials.users(), ['migrate']);
  assert.equal((await built.credentials.check('migrate', 'pw-of-migrate')).accepted, true);
  assert.equal(built.passwords.get('to-a'), 'route-password');
  assert.deepEqual([...built.targets.keys()], ['incoming']);
});

test('a file that changes after the check does not reach the worker', async () => {
  const running = await loadConfig(await writeSetup('changed'));
  const checked = await checkReload(running);
  await writeSecretFile(join(dir, 'changed.password'), 'changed-after-the-check');
  assert.equal((await loadFromChecked(running, checked)).passwords.get('to-a'), 'route-password');
});

test('a refused file stops the reload at the check, with its code', async () => {
  const running = await loadConfig(await writeSetup('refused'));
  await writeFile(join(dir, 'refused-users.json'), '{ not json', { mode: 0o600 });
  await assert.rejects(checkReload(running), code('credentials-invalid'));
});
