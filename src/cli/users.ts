import { existsSync } from 'node:fs';
import { CredentialStore } from '../auth/credential-store.js';
import { VmgateError } from '../errors.js';
import { readSecretFile } from '../util/secret-file.js';

/** `vmgate users add|remove|list`: the server's SASL credential store. */

export async function addUser(store: string, user: string, password: string): Promise<string> {
  const s = existsSync(store) ? await CredentialStore.load(store) : CredentialStore.empty();
  const existed = s.users().includes(user);
  await s.setPassword(user, password);
  await s.save(store);
  return `${existed ? 'updated' : 'added'} user ${user} in ${store}`;
}

export async function removeUser(store: string, user: string): Promise<string> {
  const s = await CredentialStore.load(store);
  if (!s.remove(user)) throw new VmgateError('user-unknown', `no user ${JSON.stringify(user)} in ${store}; see vmgate users list --store ${store}`);
  await s.save(store);
  return `removed user ${user} from ${store}`;
}

export async function listUsers(store: string): Promise<string> {
  const users = (await CredentialStore.load(store)).users();
  return users.length === 0 ? `(no users in ${store})` : users.join('\n');
}

/** The password comes from a 0600 file or stdin, never from argv (visible in ps). */
export async function readPasswordInput(opts: { passwordFile?: string; passwordStdin?: boolean }): Promise<string> {
  if (opts.passwordFile) return (await readSecretFile(opts.passwordFile, 'password file')).toString('utf8').replace(/\r?\n$/, '');
  if (opts.passwordStdin) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  }
  throw new VmgateError('usage', 'give the password with --password-file FILE (mode 0600) or --password-stdin');
}
