import assert from 'node:assert/strict';
import { isVmgateError } from '../../src/errors.js';

/** An `assert.throws`/`rejects` matcher: a VmgateError with `expected` code whose message mentions each of `mentions`. */
export function code(expected: string, ...mentions: string[]): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(isVmgateError(e), `expected VmgateError, got ${String(e)}`);
    assert.equal(e.code, expected, e.message);
    for (const m of mentions) assert.ok(e.message.includes(m), `"${e.message}" does not mention ${m}`);
    return true;
  };
}

/** The code of the CLI's one error line (`error [code]: ...` on stderr), or undefined when there is none. */
export function cliCode(stderr: string): string | undefined {
  return /^error \[([a-z0-9-]+)\]: /m.exec(stderr)?.[1];
}

/** Asserts that a CLI run failed with exactly one `error [expected]: ...` line on stderr. */
export function assertCliError(stderr: string, expected: string): void {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `stderr: ${stderr}`);
  assert.equal(cliCode(stderr), expected, `stderr: ${stderr}`);
}

/** The `code` of the first control ERROR frame body (`{"code":"...","message":"..."}`) found in raw output. */
export function errorFrameCode(output: string): string | undefined {
  const m = /\{"code":"[^"]*","message":"(?:[^"\\]|\\.)*"\}/.exec(output);
  if (!m) return undefined;
  return (JSON.parse(m[0]) as { code: string }).code;
}
