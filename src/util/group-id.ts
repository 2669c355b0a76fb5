import { VmgateError } from '../errors.js';
import { lookupGroup } from './nss.js';

/** Resolves a group name or number to a gid through NSS (getent group), so LDAP or sssd groups count. */
export async function groupId(group: string | number, key = 'control.group'): Promise<number> {
  if (typeof group === 'number') return group;
  if (/^\d+$/.test(group)) return Number(group);
  const found = await lookupGroup(group);
  if (found !== undefined) return found.gid;
  throw new VmgateError('config-invalid', `${key}: no group named ${JSON.stringify(group)} (getent group ${group} finds none); create it (groupadd --system ${group}) or name an existing group`);
}
