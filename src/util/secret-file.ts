import { constants } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { VmgateError, messageOf } from '../errors.js';

/**
 * The files the gateway trusts (private keys, certificates, the CA, the CRL,
 * password files, the credential store) are read only from the directory
 * that names them. A symlink is followed only while it stays inside that
 * directory (`server-key.pem -> server-key-2026.pem` for a rotation is fine;
 * `server-key.pem -> /home/someone/key.pem` is refused): whoever can plant a
 * link there must not be able to make the daemon read, or trust, a file from
 * anywhere else. The directory itself may be a symlink (`/etc/vmgate/pki ->
 * pki-2026`): the rule applies to where it leads.
 *
 * Returns the file's real path, which callers open (with O_NOFOLLOW) instead
 * of the link, so the link cannot be swapped between this check and the read.
 */
async function resolveInsideDir(path: string, what: string): Promise<string> {
  const dir = dirname(resolve(path));
  let realDir: string;
  let realFile: string;
  try {
    realDir = await realpath(dir);
    realFile = await realpath(path);
  } catch (e: unknown) {
    throw new VmgateError('config-unreadable', `cannot read ${what} ${path}: ${messageOf(e)}`, { cause: e });
  }
  const rel = relative(realDir, realFile);
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new VmgateError(
      'file-outside-dir',
      `${what} ${path} is a symlink to ${realFile}, outside its directory ${realDir}; the gateway never follows a link out of the directory that names a key or secret file. ` +
        `Move the file into ${realDir}, or name ${realFile} in the config`,
    );
  }
  return realFile;
}

/**
 * A group that may read a secret file besides its owner (`tls.keyGroup`): a
 * PKI directory shared with QEMU or libvirt, where the QEMU user reads the
 * same key through its group (0640 root:qemu, as Nova lays out /etc/pki/qemu).
 */
export interface SharedGroup {
  gid: number;
  /** As the config names it, for messages. */
  name: string | number;
  /** The config key that set it, for messages. */
  key: string;
}

const octal = (mode: number): string => (mode & 0o777).toString(8).padStart(4, '0');

/**
 * Why a secret file's mode is refused, or undefined when it is fine. By
 * default group and others must have no access at all; with `shared`, the
 * file's group may read it when that group is exactly `shared.gid`, and
 * others still get nothing.
 */
function secretModeProblem(path: string, what: string, mode: number, gid: number, shared: SharedGroup | undefined): string | undefined {
  if ((mode & 0o077) === 0) return undefined;
  const m = octal(mode);
  if (shared === undefined) {
    return `${what} ${path} is readable by group or others (mode ${m}); run: chmod 600 ${path}` +
      ((mode & 0o007) === 0 && (mode & 0o040) !== 0 ? ` (or, if its group gid ${gid} is QEMU's and must read it, set tls.keyGroup to that group)` : '');
  }
  if ((mode & 0o007) !== 0) return `${what} ${path} is accessible by others (mode ${m}); run: chmod o= ${path} (${shared.key} allows group read only)`;
  if ((mode & 0o030) !== 0) return `${what} ${path} is group-writable (mode ${m}); run: chmod 640 ${path} (${shared.key} allows group read only)`;
  if (gid !== shared.gid) {
    return `${what} ${path} is readable by group gid ${gid}, not by ${shared.key} ${JSON.stringify(shared.name)} (gid ${shared.gid}); run: chgrp ${shared.name} ${path}, or chmod 600 ${path}`;
  }
  return undefined;
}

/**
 * Reads a file that holds a secret (private key, password) and refuses it
 * when group or others can read it (see `secretModeProblem`): a key that
 * other local users can read is already compromised, and starting anyway
 * would hide that. Mode, owner group and content come from the same open file.
 */
export async function readSecretFile(path: string, what: string, shared?: SharedGroup): Promise<Buffer> {
  return readInsideDir(path, what, (mode, gid) => {
    const problem = secretModeProblem(path, what, mode, gid, shared);
    return problem === undefined ? undefined : new VmgateError('file-insecure', problem);
  });
}

/** Reads a file that is not secret (certificate, CA, CRL) under the same directory rule. */
export async function readPublicFile(path: string, what: string): Promise<Buffer> {
  return readInsideDir(path, what, () => undefined);
}

async function readInsideDir(path: string, what: string, checkMode: (mode: number, gid: number) => VmgateError | undefined): Promise<Buffer> {
  const real = await resolveInsideDir(path, what);
  try {
    const fh = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new VmgateError('config-unreadable', `${what} ${path} is not a regular file`);
      const refused = checkMode(st.mode, st.gid);
      if (refused) throw refused;
      return await fh.readFile();
    } finally {
      await fh.close();
    }
  } catch (e: unknown) {
    if (e instanceof VmgateError) throw e;
    throw new VmgateError('config-unreadable', `cannot read ${what} ${path}: ${messageOf(e)}`, { cause: e });
  }
}
