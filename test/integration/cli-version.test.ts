/**
 * `vmgate --version`, `-V` and `vmgate version`: the built CLI as a child
 * process prints package.json's version and exits 0 (SECURITY.md asks
 * operators to report it). The installed package is checked the same way by
 * .ci/test-package.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const PKG = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

for (const args of [['--version'], ['-V'], ['version']]) {
  test(`cli-version: vmgate ${args.join(' ')} prints ${PKG.version}`, () => {
    // execFileSync throws on a non-zero exit, so reaching the assert means exit 0.
    const out = execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
    assert.match(PKG.version, /^\d+\.\d+\.\d+/);
    assert.equal(out, `${PKG.version}\n`);
  });
}
