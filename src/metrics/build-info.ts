import { readFileSync } from 'node:fs';

/**
 * The vmgate version, from the package.json of the tree this file runs from
 * (dist/src/metrics/ or src/metrics/). `unknown` if that file is missing:
 * a build label is not worth refusing to start over.
 */
export function vmgateVersion(): string {
  for (const up of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'vmgate' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not at this level; try the next
    }
  }
  return 'unknown';
}
