import { execFile } from 'node:child_process';

/**
 * Users and groups as the system resolves them (NSS: /etc/passwd and
 * /etc/group, but also LDAP, sssd, systemd's dynamic users...), through
 * getent(1) and id(1) from libc-bin and coreutils, both Essential in Debian.
 * Reading /etc/group alone misses every group a directory service provides.
 */

export interface NssGroup {
  name: string;
  gid: number;
}

export interface NssUser {
  name: string;
  uid: number;
  gid: number;
}

function run(command: string, args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 10_000 }, (err, stdout) => {
      if (err === null) return resolve({ code: 0, stdout });
      if (typeof err.code === 'number') return resolve({ code: err.code, stdout });
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- err is execFile's ExecFileException, an Error; the rule loses that once err.code is narrowed
      reject(err);
    });
  });
}

/** `getent group NAME` (a name or a number); undefined when NSS knows no such group. */
export async function lookupGroup(group: string | number): Promise<NssGroup | undefined> {
  const r = await run('getent', ['group', String(group)]);
  const [name, , gid] = r.stdout.split('\n')[0]?.split(':') ?? [];
  if (r.code !== 0 || name === undefined || gid === undefined) return undefined;
  return { name, gid: Number(gid) };
}

/** `getent passwd NAME` (a name or a number); undefined when NSS knows no such user. */
export async function lookupUser(user: string | number): Promise<NssUser | undefined> {
  const r = await run('getent', ['passwd', String(user)]);
  const [name, , uid, gid] = r.stdout.split('\n')[0]?.split(':') ?? [];
  if (r.code !== 0 || name === undefined || uid === undefined || gid === undefined) return undefined;
  return { name, uid: Number(uid), gid: Number(gid) };
}

/** Every group id the user gets at login (`id -G USER`: primary and supplementary, through NSS). */
export async function userGroupIds(user: string): Promise<number[]> {
  const r = await run('id', ['-G', '--', user]);
  if (r.code !== 0) return [];
  return r.stdout.trim().split(/\s+/).filter((g) => g !== '').map(Number);
}

/** A group's name for messages, or its number when NSS has no name for it. */
export async function groupName(gid: number): Promise<string> {
  return (await lookupGroup(gid))?.name ?? String(gid);
}

/** A user's name for messages, or its number when NSS has no name for it. */
export async function userName(uid: number): Promise<string> {
  return (await lookupUser(uid))?.name ?? String(uid);
}
