import { readFile, stat } from 'node:fs/promises';
import { VmgateError, messageOf } from '../errors.js';

/**
 * Reads a file that holds a secret (private key, password, credential store)
 * and refuses it when group or others can read it: a key that other local
 * users can read is already compromised, and starting anyway would hide that.
 */
export async function readSecretFile(path: string, what: string): Promise<Buffer> {
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch (e: unknown) {
    throw new VmgateError('config-unreadable', `cannot read ${what} ${path}: ${messageOf(e)}`, { cause: e });
  }
  if ((mode & 0o077) !== 0) {
    throw new VmgateError(
      'file-insecure',
      `${what} ${path} is readable by group or others (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${path}`,
    );
  }
  return readPublicFile(path, what);
}

export async function readPublicFile(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e: unknown) {
    throw new VmgateError('config-unreadable', `cannot read ${what} ${path}: ${messageOf(e)}`, { cause: e });
  }
}
