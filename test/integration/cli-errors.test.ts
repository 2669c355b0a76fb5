/**
 * The built `vmgate` CLI as an operator meets its errors: a usage mistake is
 * one `error [usage]: ...` line and exit 2, with no help dump; a failure of
 * a command that ran is one `error [code]: ...` message and exit 1.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { EXIT_FAILED, EXIT_USAGE } from '../../src/cli/cli-errors.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'vmgate-cli-errors-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function vmgate(...args: string[]): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The code of the single `error [code]: ...` line on stderr. */
function errorCode(r: Run): string {
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected on stderr:\n${r.stderr}`);
  const m = /^error \[([a-z-]+)\]: \S/.exec(lines[0] ?? '');
  assert.ok(m?.[1], `not in vmgate's error style: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /Usage:|Options:/, 'no help dump');
  return m[1];
}

const USAGE_MISTAKES: Array<[string, string[], string]> = [
  ['no command', [], 'vmgate --help'],
  ['unknown command', ['frobnicate'], 'vmgate --help'],
  ['unknown option', ['run', '-c', 'x.yaml', '--foo'], 'vmgate run --help'],
  ['missing required option', ['run'], 'vmgate run --help'],
  ['missing argument', ['check-config'], 'vmgate check-config --help'],
  ['command without its subcommand', ['users'], 'vmgate users --help'],
  ['bad option value', ['cancel', 'f'.repeat(32), '--channel', 'two'], 'vmgate cancel --help'],
  ['bad number for the demo', ['demo', '--size-mib', '0'], 'vmgate demo --help'],
  ['no password source', ['users', 'add', 'bob', '--store', join(tmp, 'users.json')], 'vmgate users add --help'],
];

for (const [what, args, help] of USAGE_MISTAKES) {
  test(`usage: ${what} is one usage line naming the help to read, exit 2`, () => {
    const r = vmgate(...args);
    assert.equal(r.status, EXIT_USAGE, r.stderr);
    assert.equal(errorCode(r), 'usage');
    assert.ok(r.stderr.includes(`(see ${help})`), r.stderr);
    assert.equal(r.stdout, '');
  });
}

test('usage: a misspelt command gets a suggestion', () => {
  const r = vmgate('stauts');
  assert.equal(r.status, EXIT_USAGE);
  assert.equal(errorCode(r), 'usage');
  assert.ok(r.stderr.includes('did you mean status?'), r.stderr);
});

test('help is still help: exit 0 on stdout', () => {
  const r = vmgate('run', '--help');
  assert.equal(r.status, 0);
  assert.match(r.stdout, /--config/);
  assert.equal(r.stderr, '');
});

test('a coded failure of a command that ran: one error line with its code, exit 1', () => {
  const file = join(tmp, 'bad.yaml');
  writeFileSync(file, 'tls:\n  dir: ./pki\nwokers: 2\n');
  const r = vmgate('check-config', file);
  assert.equal(r.status, EXIT_FAILED, r.stderr);
  assert.match(r.stderr, /^error \[config-invalid\]: /);
});

test('a control socket that is not there is control-unreachable, exit 1', () => {
  const r = vmgate('status', '--socket', join(tmp, 'no-such.sock'));
  assert.equal(r.status, EXIT_FAILED);
  assert.equal(errorCode(r), 'control-unreachable');
});
