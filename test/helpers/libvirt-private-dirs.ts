/**
 * The system folders each test libvirtd gets its own copy of (bind mounts in
 * its private mount namespace), and their mount points in the shared root
 * filesystem. Without libvirt-daemon-system nothing creates those, so the
 * first daemon creates the missing ones (empty) and the last one to exit
 * removes them again: the machine is left as it was found.
 */
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import { onProcessExit } from './netns.js';

/** The system folders each daemon gets its own copy of (bind mounts in its mount namespace). */
export const PRIVATE_DIRS = {
  etc: '/etc/libvirt',
  run: '/run/libvirt',
  lib: '/var/lib/libvirt',
  cache: '/var/cache/libvirt',
  log: '/var/log/libvirt',
} as const;
export type PrivateDir = keyof typeof PRIVATE_DIRS;

let mountPointUsers = 0;
let createdMountPoints: string[] = [];
let forgetMountPoints: (() => void) | undefined;

/** Creates the missing mount points for one more daemon; returns the release to call when it has exited. */
export function acquireMountPoints(): () => void {
  if (mountPointUsers === 0) {
    createdMountPoints = Object.values(PRIVATE_DIRS).filter((p) => !existsSync(p));
    for (const p of createdMountPoints) mkdirSync(p, { recursive: true, mode: 0o755 });
    forgetMountPoints = onProcessExit(removeMountPoints);
  }
  mountPointUsers++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--mountPointUsers === 0) {
      removeMountPoints();
      forgetMountPoints?.();
    }
  };
}

function removeMountPoints(): void {
  for (const p of createdMountPoints.reverse()) {
    try {
      rmdirSync(p); // only if still empty
    } catch {
      // not empty or gone: leave it
    }
  }
  createdMountPoints = [];
}
