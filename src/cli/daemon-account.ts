import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VmgateError } from '../errors.js';
import { lookupGroup, lookupUser, userGroupIds } from '../util/nss.js';

/**
 * Who the daemon will run as, for `vmgate check-config`: a user, its groups
 * (through NSS) and the unit's `SupplementaryGroups=`, which systemd adds
 * although the user is no member of them (the shipped unit adds kvm).
 */
export interface DaemonAccount {
  name: string;
  uid: number;
  /** Every group the daemon's process has: the user's (id -G) plus the unit's SupplementaryGroups=. */
  gids: number[];
  /** Where the groups beyond the user's own come from, for the report. */
  unitGroups: string[];
}

/** The unit a packaged gateway runs under, and where systemd looks for it and its drop-ins (first wins, drop-ins add). */
const UNIT_NAME = 'vmgate.service';
const UNIT_DIRS = ['/etc/systemd/system', '/run/systemd/system', '/lib/systemd/system', '/usr/lib/systemd/system'];
const DEFAULT_DAEMON_USER = 'vmgate';

/** The unit file plus its drop-ins, in the order systemd applies them. */
async function unitFiles(dirs = UNIT_DIRS, unit = UNIT_NAME): Promise<string[]> {
  const files: string[] = [];
  for (const d of dirs) {
    const f = join(d, unit);
    if (await readFile(f).then(() => true, () => false)) {
      files.push(f);
      break;
    }
  }
  const dropIns = new Map<string, string>();
  for (const d of [...dirs].reverse()) {
    const names = await readdir(join(d, `${unit}.d`)).catch(() => [] as string[]);
    for (const n of names) if (n.endsWith('.conf')) dropIns.set(n, join(d, `${unit}.d`, n));
  }
  return [...files, ...[...dropIns.keys()].sort().map((n) => dropIns.get(n) ?? n)];
}

/** `User=` and `SupplementaryGroups=` of the [Service] section across `files` (an empty assignment resets the list). */
async function unitSettings(files: string[]): Promise<{ user: string | undefined; groups: string[] }> {
  let user: string | undefined;
  let groups: string[] = [];
  for (const f of files) {
    let section = '';
    for (const raw of (await readFile(f, 'utf8')).split('\n')) {
      const line = raw.trim();
      if (line.startsWith('[')) section = line;
      if (section !== '[Service]') continue;
      const m = /^(User|SupplementaryGroups)\s*=\s*(.*)$/.exec(line);
      if (!m) continue;
      const value = (m[2] ?? '').trim();
      if (m[1] === 'User') user = value === '' ? undefined : value;
      else groups = value === '' ? [] : [...groups, ...value.split(/\s+/)];
    }
  }
  return { user, groups };
}

/**
 * The account to check as. `as` names it; otherwise root checks as the unit's
 * user (vmgate) and anyone else as themselves. The unit's supplementary
 * groups count when the account is the unit's user. Returns undefined, with
 * a note why, when root has no such user to check as.
 */
export async function daemonAccount(as: string | undefined, unit: string[] | undefined): Promise<{ account?: DaemonAccount; note?: string }> {
  const files = unit ?? (await unitFiles());
  const settings = files.length > 0 ? await unitSettings(files) : { user: undefined, groups: [] };
  const unitUser = settings.user ?? DEFAULT_DAEMON_USER;
  const euid = process.geteuid?.() ?? 0;
  let name = as;
  if (name === undefined) {
    if (euid === 0) {
      if ((await lookupUser(unitUser)) === undefined) {
        return { note: `no user ${unitUser} (${UNIT_NAME}'s User=) on this host: checked as root only; give --as USER to check as the user the daemon will run as` };
      }
      name = unitUser;
    } else {
      name = String(euid);
    }
  }
  const user = await lookupUser(name);
  if (user === undefined && as === undefined) return { note: `uid ${name} has no user name (getent passwd ${name} finds none): checked the files as this process only` };
  if (user === undefined) throw new VmgateError('config-invalid', `--as ${name}: no such user (getent passwd ${name} finds none)`);
  const gids = new Set(await userGroupIds(user.name));
  gids.add(user.gid);
  const unitGroups: string[] = [];
  if (user.name === unitUser && files.length > 0) {
    for (const g of settings.groups) {
      const found = await lookupGroup(g);
      if (found === undefined) throw new VmgateError('config-invalid', `${files.join(', ')}: SupplementaryGroups= names group ${g}, which does not exist (getent group ${g}): the unit would not start; create it or remove it from the unit`);
      gids.add(found.gid);
      unitGroups.push(found.name);
    }
  }
  return { account: { name: user.name, uid: user.uid, gids: [...gids], unitGroups } };
}
