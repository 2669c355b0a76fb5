import { spawnSync } from 'node:child_process';

/**
 * The tests need real tools (QEMU, openssl, certtool, ...). A missing one is a
 * broken test machine, not a reason to skip: fail and say how to fix it.
 */
export function requireTool(command: string, debianPackage: string): void {
  if (spawnSync(command, ['--version'], { encoding: 'utf8' }).error !== undefined) {
    throw new Error(`${command} is not installed: install Debian's ${debianPackage} (sudo .ci/install-deps installs everything the tests need)`);
  }
}
