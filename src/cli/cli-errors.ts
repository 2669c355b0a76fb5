import { CommanderError, type Command } from 'commander';
import { isVmgateError, messageOf } from '../errors.js';

/**
 * One error style for the whole CLI: every failure is one `error [code]: ...`
 * message on stderr, usage mistakes included (never commander's own wording
 * followed by the whole help). Exit codes (docs/operations.md):
 */
export const EXIT_OK = 0;
/** The command ran and failed: the code says why. */
export const EXIT_FAILED = 1;
/** The command line was wrong (code `usage`); nothing was done. */
export const EXIT_USAGE = 2;

export interface CliFailure {
  exitCode: number;
  /** What to print on stderr; undefined when commander already printed (help). */
  message: string | undefined;
}

/** The command a command line names, as far as it names one: `vmgate users add`. */
export function commandOf(program: Command, args: readonly string[]): Command {
  let cmd = program;
  for (const a of args) {
    if (a.startsWith('-')) continue;
    const sub = cmd.commands.find((c) => c.name() === a || c.aliases().includes(a));
    if (sub === undefined) break;
    cmd = sub;
  }
  return cmd;
}

function fullName(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** What the CLI prints and returns for an error thrown while running `cmd`. */
export function cliFailure(e: unknown, cmd: Command): CliFailure {
  const seeHelp = ` (see ${fullName(cmd)} --help)`;
  if (e instanceof CommanderError) {
    if (e.exitCode === 0) return { exitCode: EXIT_OK, message: undefined }; // --help, --version
    if (e.code === 'commander.help') {
      // A command that needs a subcommand was given none.
      const subs = cmd.commands.map((c) => c.name()).join(', ');
      return usage(`${fullName(cmd)} needs a command: ${subs}${seeHelp}`);
    }
    return usage(`${commanderSentence(e.message)}${seeHelp}`);
  }
  if (isVmgateError(e)) {
    if (e.code === 'usage') return usage(`${e.message}${seeHelp}`);
    return { exitCode: EXIT_FAILED, message: `error [${e.code}]: ${e.message}` };
  }
  return { exitCode: EXIT_FAILED, message: `error [internal]: ${messageOf(e)}` };
}

function usage(text: string): CliFailure {
  return { exitCode: EXIT_USAGE, message: `error [usage]: ${text}` };
}

/** `error: unknown option '--confg'\n(Did you mean --config?)` -> `unknown option '--confg'; did you mean --config?` */
function commanderSentence(message: string): string {
  return message
    .replace(/^error: /, '')
    .replace(/ is invalid\. /, ' is invalid: ')
    .replace(/\s*\(Did you mean (.+)\?\)\s*$/s, '; did you mean $1?')
    .replace(/\s*\n\s*/g, ' ')
    .trim();
}
