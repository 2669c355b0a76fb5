/**
 * cliFailure maps every way a command can fail to one exit code and one
 * `error [code]: ...` message: usage mistakes (commander's and vmgate's own)
 * to `usage` and exit 2, coded failures to their code and exit 1.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { cliFailure, commandOf, EXIT_FAILED, EXIT_OK, EXIT_USAGE } from '../../src/cli/cli-errors.js';
import { VmgateError } from '../../src/errors.js';

function program(): Command {
  const p = new Command('vmgate').configureOutput({ outputError: () => undefined, writeErr: () => undefined, writeOut: () => undefined }).exitOverride();
  p.command('run').requiredOption('-c, --config <file>').action(() => undefined);
  const users = p.command('users');
  users.command('add').argument('<user>').action(() => undefined);
  return p;
}

async function failure(args: string[]): Promise<ReturnType<typeof cliFailure>> {
  const p = program();
  try {
    await p.parseAsync(args, { from: 'user' });
  } catch (e: unknown) {
    return cliFailure(e, commandOf(p, args));
  }
  assert.fail(`vmgate ${args.join(' ')} did not fail`);
}

test('commander usage errors are usage, exit 2, naming the help of the command at fault', async () => {
  for (const [args, help] of [
    [['run', '-c', 'x', '--foo'], 'vmgate run --help'],
    [['run'], 'vmgate run --help'],
    [['users', 'add'], 'vmgate users add --help'],
    [['nope'], 'vmgate --help'],
    [['users'], 'vmgate users --help'],
    [[], 'vmgate --help'],
  ] as const) {
    const f = await failure([...args]);
    assert.equal(f.exitCode, EXIT_USAGE, args.join(' '));
    const m = f.message ?? '';
    assert.ok(m.startsWith('error [usage]: '), m);
    assert.ok(m.endsWith(`(see ${help})`), m);
    assert.ok(!m.includes('\n'), 'one line');
  }
});

test('help is not a failure', async () => {
  assert.deepEqual(await failure(['run', '--help']), { exitCode: EXIT_OK, message: undefined });
});

test('a VmgateError with code usage is a usage error; any other code is exit 1 with that code', () => {
  const p = program();
  const run = commandOf(p, ['run']);
  assert.equal(cliFailure(new VmgateError('usage', 'bad'), run).exitCode, EXIT_USAGE);
  assert.deepEqual(cliFailure(new VmgateError('session-unknown', 'gone'), run), { exitCode: EXIT_FAILED, message: 'error [session-unknown]: gone' });
  assert.deepEqual(cliFailure(new Error('boom'), run), { exitCode: EXIT_FAILED, message: 'error [internal]: boom' });
});

test('commandOf skips options and stops at the first word that is no command', () => {
  const p = program();
  assert.equal(commandOf(p, ['users', '--verbose', 'add', 'bob']).name(), 'add');
  assert.equal(commandOf(p, ['frobnicate', 'run']).name(), 'vmgate');
});
