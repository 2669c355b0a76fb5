/**
 * What every path of the bench shares: a work dir, the test PKI (the same CA
 * and host certificates for stunnel and vmgate), and a SASL user for vmgate.
 * Removed by `dispose`, or at process exit if the bench is interrupted.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onProcessExit } from '../src/util/process-exit.js';
import { addUser, writeSecretFile } from '../test/helpers/gateway-process.js';
import { makeTestPki, type TestPki } from '../test/helpers/pki.js';

export interface Fixture {
  dir: string;
  pki: TestPki;
  user: string;
  /** Credential store for the server gateway. */
  usersFile: string;
  /** 0600 file with the user's password, for the route. */
  passwordFile: string;
  dispose(): Promise<void>;
}

export async function makeFixture(): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'vmgate-bench-'));
  const forget = onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
  const pki = await makeTestPki(join(dir, 'pki'));
  const user = 'migrate';
  const password = randomBytes(24).toString('base64url');
  const usersFile = join(dir, 'users.json');
  await addUser({ store: usersFile, user, password });
  const passwordFile = join(dir, 'route.password');
  await writeSecretFile(passwordFile, password);
  return {
    dir,
    pki,
    user,
    usersFile,
    passwordFile,
    async dispose() {
      await rm(dir, { recursive: true, force: true });
      forget();
    },
  };
}
