import { readFile } from 'node:fs/promises';
import { VmgateError } from '../errors.js';

/** Resolves a group name (from /etc/group) or number to a gid. */
export async function groupId(group: string | number, key = 'control.group'): Promise<number> {
  if (typeof group === 'number') return group;
  if (/^\d+$/.test(group)) return Number(group);
  const text = await readFile('/etc/group', 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined) return Number(gid);
  }
  throw new VmgateError('config-invalid', `${key}: no group named ${JSON.stringify(group)} in /etc/group`);
}
