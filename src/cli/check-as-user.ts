import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Config } from '../config/config.js';
import { VmgateError } from '../errors.js';
import { groupId } from '../util/group-id.js';
import { groupName, userName } from '../util/nss.js';
import type { DaemonAccount } from './daemon-account.js';

/**
 * What `vmgate check-config` cannot see by reading the files itself (it often
 * runs as root, the daemon as vmgate): whether the daemon's account may read
 * every file it names (each directory on the way searchable, the file
 * readable, by owner, group or other bits), whether each socket group exists
 * (through NSS) and whether the account may hand a socket to it (a member,
 * or root). Each refusal is a coded error that names the file or group and
 * the fix.
 */

/** A file the daemon reads, and whether it holds a secret (which must stay 0600, so the fix is its owner). */
export interface NamedFile {
  path: string;
  what: string;
  secret: boolean;
}

export async function checkFilesAs(account: DaemonAccount, files: NamedFile[]): Promise<VmgateError[]> {
  const refusals: VmgateError[] = [];
  const dirsSeen = new Map<string, boolean>();
  for (const f of files) {
    const dirs = await checkDirsAs(account, f, dirsSeen);
    if (dirs === 'reported') continue; // one line per closed directory, not one per file in it
    const refusal = dirs ?? (await checkFileAs(account, f));
    if (refusal) refusals.push(refusal);
  }
  return refusals;
}

/** Every directory from / down to the file's own must let the account pass (x); `seen` says which passed. */
async function checkDirsAs(account: DaemonAccount, f: NamedFile, seen: Map<string, boolean>): Promise<VmgateError | 'reported' | undefined> {
  const dirs: string[] = [];
  for (let d = dirname(resolve(f.path)); ; d = dirname(d)) {
    dirs.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of dirs) {
    const known = seen.get(d);
    if (known === true) continue;
    if (known === false) return 'reported';
    const st = await stat(d).catch(() => undefined);
    if (st === undefined) return undefined; // the file check says what is missing
    seen.set(d, allows(account, st, 0o1));
    if (!allows(account, st, 0o1)) {
      return new VmgateError(
        'config-unreadable',
        `${f.what} ${f.path}: user ${account.name} cannot enter directory ${d} (${await describe(st)}), so the gateway would fail with config-unreadable; ` +
          `fix: chown ${account.name} ${d}, or chgrp a group of ${account.name} and chmod g+x ${d}`,
      );
    }
  }
  return undefined;
}

async function checkFileAs(account: DaemonAccount, f: NamedFile): Promise<VmgateError | undefined> {
  const st = await stat(f.path).catch(() => undefined);
  if (st === undefined || allows(account, st, 0o4)) return undefined;
  const fix = f.secret ? `chown ${account.name} ${f.path} (it must stay mode 0600)` : `chown ${account.name} ${f.path}, or chmod a+r ${f.path} (it holds no secret)`;
  return new VmgateError(
    'config-unreadable',
    `${f.what} ${f.path} is not readable by user ${account.name} (${await describe(st)}; ${account.name}'s groups: ${(await Promise.all(account.gids.map(groupName))).join(', ')}), ` +
      `so the gateway would fail with config-unreadable; fix: ${fix}`,
  );
}

/** Root reads everything; otherwise the owner bits, else the group bits when the account is in the group, else the other bits. */
function allows(account: DaemonAccount, st: { uid: number; gid: number; mode: number }, bit: number): boolean {
  if (account.uid === 0) return true;
  if (st.uid === account.uid) return ((st.mode >> 6) & bit) !== 0;
  if (account.gids.includes(st.gid)) return ((st.mode >> 3) & bit) !== 0;
  return (st.mode & bit) !== 0;
}

async function describe(st: { uid: number; gid: number; mode: number }): Promise<string> {
  return `owner ${await userName(st.uid)}:${await groupName(st.gid)}, mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}`;
}

/**
 * control.group and every route's socketGroup: the group must exist, and the
 * daemon's account must be in it to hand its socket over (chown to a group
 * needs membership without CAP_CHOWN, and the unit grants no capability).
 * Without an account (root with no vmgate user) only existence is checked.
 */
export async function checkSocketGroups(config: Config, account: DaemonAccount | undefined): Promise<VmgateError[]> {
  const wanted: { key: string; group: string | number }[] = [];
  if (config.control?.group !== undefined) wanted.push({ key: 'control.group', group: config.control.group });
  for (const r of config.routes) if (r.socketGroup !== undefined) wanted.push({ key: `routes.${r.name}.socketGroup`, group: r.socketGroup });
  const refusals: VmgateError[] = [];
  for (const w of wanted) {
    let gid: number;
    try {
      gid = await groupId(w.group, w.key);
    } catch (e: unknown) {
      if (e instanceof VmgateError) refusals.push(e);
      else throw e;
      continue;
    }
    if (account === undefined || account.uid === 0 || account.gids.includes(gid)) continue;
    refusals.push(
      new VmgateError(
        'config-invalid',
        `${w.key}: ${w.group}: user ${account.name} is not in group ${w.group}, so it cannot hand its socket to it (the gateway would stop at start with EPERM on chown); ` +
          `fix: give the unit SupplementaryGroups=${w.group} (systemctl edit vmgate), or usermod -aG ${w.group} ${account.name}`,
      ),
    );
  }
  return refusals;
}
