/**
 * File writing for the PKI: nothing is clobbered unless asked, secrets are
 * created 0600 from the first byte, and every write is atomic (temp file in the
 * same directory, then rename) so a crash never leaves half a key behind.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, copyFile, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { VmgateError, messageOf, systemCode, type ErrorCode } from '../errors.js';
import { DIR_MODE } from './layout.js';

export async function ensureDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: DIR_MODE });
  } catch (e: unknown) {
    throw new VmgateError('pki-unwritable', `cannot create directory ${dir}: ${messageOf(e)}`, { cause: e });
  }
}

/** Throws `pki-exists` naming the first path that exists, unless `force`. */
export function assertAbsent(paths: readonly string[], force: boolean | undefined): void {
  if (force === true) return;
  for (const path of paths) {
    if (existsSync(path)) {
      throw new VmgateError('pki-exists', `${path} already exists; nothing was changed (use --force / force: true to overwrite)`);
    }
  }
}

export async function writeFileAtomic(path: string, data: string | Buffer, mode: number): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await chmod(tmp, mode); // the umask may have taken bits we want (never adds any)
    await rename(tmp, path);
  } catch (e: unknown) {
    await rm(tmp, { force: true });
    throw new VmgateError('pki-unwritable', `cannot write ${path}: ${messageOf(e)}`, { cause: e });
  }
}

export async function copyFileAtomic(from: string, to: string, mode: number): Promise<void> {
  const tmp = join(dirname(to), `.${basename(to)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await copyFile(from, tmp);
    await chmod(tmp, mode);
    await rename(tmp, to);
  } catch (e: unknown) {
    await rm(tmp, { force: true });
    throw new VmgateError('pki-unwritable', `cannot copy ${from} to ${to}: ${messageOf(e)}`, { cause: e });
  }
}

function readFailure(e: unknown, path: string, what: string, missingCode: ErrorCode): VmgateError {
  if (systemCode(e) === 'ENOENT') return new VmgateError(missingCode, `${what} ${path} does not exist`, { cause: e });
  return new VmgateError('pki-unreadable', `cannot read ${what} ${path}: ${messageOf(e)}`, { cause: e });
}

export async function readText(path: string, what: string, missingCode: ErrorCode = 'pki-unreadable'): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e: unknown) {
    throw readFailure(e, path, what, missingCode);
  }
}

export function readTextSync(path: string, what: string, missingCode: ErrorCode = 'pki-unreadable'): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e: unknown) {
    throw readFailure(e, path, what, missingCode);
  }
}
