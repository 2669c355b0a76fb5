/**
 * `vmgate-pki ... | head -1` and `vmgate ... | head -1`: the reader closes the
 * pipe before the command has written; the command's writes then fail with
 * EPIPE. That is no failure: exit 0 and nothing on stderr (it printed a stack).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CLI_PATH } from '../helpers/gateway-process.js';

const PKI_JS = join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist', 'certs', 'pki.js');

/** Runs `args` with a stdout pipe whose read end is closed at once (before Node has even started). */
function withClosedStdout(args: readonly string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stderr })));
}

for (const [name, args] of [['vmgate-pki --help', [PKI_JS, '--help']], ['vmgate --help', [CLI_PATH, '--help']], ['vmgate version', [CLI_PATH, 'version']]] as const) {
  test(`closed-stdout: ${name} into a closed pipe exits 0 without a stack trace`, { timeout: 30_000 }, async () => {
    const r = await withClosedStdout(args);
    assert.deepEqual(r, { code: 0, signal: null, stderr: '' });
  });
}
