import assert from 'node:assert/strict';
import { requireTool } from './require-tool.js';

/** nobody:nogroup on Debian. */
export const NOBODY = 65534;

/**
 * A command prefix that runs the rest as nobody:nogroup with no supplementary
 * group, every capability set empty and no_new_privs (setpriv, util-linux),
 * then execs it (so the pid stays the program's).
 */
export const AS_NOBODY: readonly string[] = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--'];

/** Tests that switch users must start as root (as .ci/run does) and need setpriv. */
export function requireRootWithSetpriv(): void {
  requireTool('setpriv', 'util-linux');
  assert.equal(process.getuid?.(), 0, 'this test switches to another user, so it must start as root (as .ci/run does)');
}
