#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { vmgateVersion } from '../metrics/build-info.js';
import { cliFailure, commandOf } from './cli-errors.js';
import { controlSocketPath, DEFAULT_CONTROL_SOCKET } from './control-socket-path.js';
import { onStdoutEpipe } from '../util/stdout-epipe.js';

// Each command loads its modules when it runs: `vmgate --help`, `status`,
// `sessions` and `cancel` start without the daemon, PKI and config stacks
// (cancel must be about as quick as QEMU's own migrate_cancel).
const sessionsModule = (): Promise<typeof import('./sessions.js')> => import('./sessions.js');
const usersModule = (): Promise<typeof import('./users.js')> => import('./users.js');

/**
 * The only place that calls process.exit. Exit codes (cli-errors.ts,
 * docs/operations.md): 0 success, 1 a coded failure, 2 a usage error; either
 * failure is one `error [code]: ...` message on stderr.
 */
const program = new Command('vmgate')
  .description('Carry QEMU live migration between hosts over mutually authenticated TLS 1.3 + SASL')
  // Commander's own error text and help-on-error are replaced by cli-errors.ts;
  // set before the subcommands are added so that they inherit it.
  .configureOutput({ outputError: () => undefined, writeErr: () => undefined })
  .exitOverride()
  .version(vmgateVersion(), '-V, --version', 'print the vmgate version');

// SECURITY.md asks for the version in reports; `vmgate version` is the spelling people try first.
program
  .command('version')
  .description('print the vmgate version')
  .action(() => console.log(vmgateVersion()));

program
  .command('run')
  .description('run the gateway daemon (logs to stdout: see --log-format)')
  .requiredOption('-c, --config <file>', 'YAML config file (see docs/configuration.md)')
  .addOption(
    new Option('--log-format <format>', 'json: one JSON object per line; journal: the same, each line led by its syslog priority <N> for journald; pretty: readable lines; auto: journal under systemd, pretty on a terminal, else json')
      .choices(['auto', 'json', 'journal', 'pretty'])
      .default('auto'),
  )
  .action(async (o: { config: string; logFormat: 'auto' | 'json' | 'journal' | 'pretty' }) => (await import('./run.js')).runDaemon(o.config, o.logFormat));

program
  .command('check-config')
  .description('validate a config and every file it names, and explain what the gateway would do')
  .argument('<file>', 'YAML config file')
  .option('--peers', "also ask each route's peer whether it would open the route's target (TLS, login, allow-list; the target is not connected)")
  .option('--as <user>', "check that this user can read every file and hand sockets to each socket group (default: as root, vmgate.service's User=, with its SupplementaryGroups=; otherwise yourself)")
  .action(async (file: string, o: { peers?: boolean; as?: string }) => {
    const { checkConfig } = await import('./check-config.js');
    const r = await checkConfig(file, { peers: o.peers === true, as: o.as });
    console.log(r.report);
    if (r.failure) throw r.failure;
  });

const users = program.command('users').description('manage the SASL credential store (salted scrypt hashes)');
users
  .command('add')
  .description('add a user or change its password')
  .argument('<user>', 'SASL user name')
  .requiredOption('-s, --store <file>', 'credential store (created 0600 if missing)')
  .option('--password-file <file>', 'read the password from this 0600 file')
  .option('--password-stdin', 'read the password from standard input')
  .action(async (user: string, o: { store: string; passwordFile?: string; passwordStdin?: boolean }) => {
    const { addUser, readPasswordInput } = await usersModule();
    console.log(await addUser(o.store, user, await readPasswordInput(o)));
  });
users
  .command('remove')
  .description('remove a user')
  .argument('<user>', 'SASL user name')
  .requiredOption('-s, --store <file>', 'credential store')
  .action(async (user: string, o: { store: string }) => console.log(await (await usersModule()).removeUser(o.store, user)));
users
  .command('list')
  .description('list user names (never passwords or hashes)')
  .requiredOption('-s, --store <file>', 'credential store')
  .action(async (o: { store: string }) => console.log(await (await usersModule()).listUsers(o.store)));

const socketOpts = (c: Command): Command =>
  c.option('--socket <path>', `control socket (default ${DEFAULT_CONTROL_SOCKET})`).option('-c, --config <file>', 'read control.socket from this gateway config');

socketOpts(program.command('sessions').description('list migration sessions with their channels, bytes and rates'))
  .option('--json', 'print JSON')
  .option('--watch', 'poll every second: on a terminal redraw with a live rate bar per session, otherwise print one plain table per poll')
  .action(async (o: { socket?: string; config?: string; json?: boolean; watch?: boolean }) => {
    const socket = await controlSocketPath(o);
    const { fetchSessions, sessionsTable, watchSessions } = await sessionsModule();
    if (o.watch) {
      const stop = new AbortController();
      process.once('SIGINT', () => stop.abort());
      process.once('SIGTERM', () => stop.abort());
      await watchSessions(socket, (s) => process.stdout.write(s), stop.signal, { redraw: process.stdout.isTTY === true });
      return;
    }
    const sessions = await fetchSessions(socket);
    console.log(o.json ? JSON.stringify(sessions, null, 2) : sessionsTable(sessions));
  });

socketOpts(program.command('cancel').description('end a migration session (or one channel) at once on this gateway and its peer'))
  .argument('<session>', 'session id from `vmgate sessions`')
  .option('--channel <n>', 'only this channel', channelNumber)
  .action(async (session: string, o: { socket?: string; config?: string; channel?: number }) => {
    console.log(await (await sessionsModule()).cancelSession(await controlSocketPath(o), session, o.channel));
  });

socketOpts(program.command('reload').description('reload certificates, CRL, credentials and allow-lists, and wait for the answer (as SIGHUP, but fails when the new files are refused)'))
  .action(async (o: { socket?: string; config?: string }) => console.log(await (await sessionsModule()).reloadGateway(await controlSocketPath(o))));

socketOpts(program.command('status').description('show what a running gateway is doing'))
  .option('--json', 'print JSON (the control socket\'s status reply)')
  .action(async (o: { socket?: string; config?: string; json?: boolean }) => {
    const socket = await controlSocketPath(o);
    const { fetchStatus, statusText } = await sessionsModule();
    console.log(o.json ? JSON.stringify(await fetchStatus(socket), null, 2) : await statusText(socket));
  });

program
  .command('demo')
  .description('throwaway PKI + two gateways on loopback; migrates a real QEMU guest if qemu-system-x86_64 is installed, else streams a random payload')
  .option('--size-mib <n>', 'guest RAM / payload size in MiB', '512')
  .option('--payload', 'stream a random payload even when QEMU is installed')
  .option('--keep', 'keep the temp directory for inspection')
  .action(async (o: { sizeMib: string; payload?: boolean; keep?: boolean }) => {
    const { runDemo } = await import('./demo.js');
    const ok = await runDemo({ sizeMiB: Number(o.sizeMib), forcePayload: o.payload === true, keep: o.keep === true });
    if (!ok) process.exitCode = 1;
  });

function channelNumber(text: string): number {
  if (!/^\d{1,4}$/.test(text) || Number(text) > 1023) throw new InvalidArgumentError('a channel is a number from 0 to 1023, as vmgate sessions shows');
  return Number(text);
}

// `vmgate sessions | head -1`: the reader is done, and so is the command
// (sessions --watch would otherwise poll for ever into a closed pipe).
onStdoutEpipe(() => process.exit(0));

try {
  await program.parseAsync(process.argv);
} catch (e: unknown) {
  const failure = cliFailure(e, commandOf(program, process.argv.slice(2)));
  if (failure.message !== undefined) console.error(failure.message);
  process.exit(failure.exitCode);
}
