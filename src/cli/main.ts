#!/usr/bin/env node
import 'reflect-metadata';
import { Command } from 'commander';
import { isVmgateError, messageOf } from '../errors.js';
import { vmgateVersion } from '../metrics/build-info.js';
import { checkConfig } from './check-config.js';
import { runDemo } from './demo.js';
import { runDaemon } from './run.js';
import { cancelSession, controlSocketPath, reloadGateway, DEFAULT_CONTROL_SOCKET, fetchSessions, sessionsTable, statusText, watchSessions } from './sessions.js';
import { addUser, listUsers, readPasswordInput, removeUser } from './users.js';

/**
 * The only place that calls process.exit. Exit codes: 0 success, 1 a coded
 * failure (message on stderr as `error [code]: ...`), 2 a usage error.
 */
const program = new Command('vmgate')
  .description('Carry QEMU live migration between hosts over mutually authenticated TLS 1.3 + SASL')
  .showHelpAfterError()
  .exitOverride()
  .version(vmgateVersion(), '-V, --version', 'print the vmgate version');

// SECURITY.md asks for the version in reports; `vmgate version` is the spelling people try first.
program
  .command('version')
  .description('print the vmgate version')
  .action(() => console.log(vmgateVersion()));

program
  .command('run')
  .description('run the gateway daemon (logs JSON lines to stdout)')
  .requiredOption('-c, --config <file>', 'YAML config file (see docs/configuration.md)')
  .action(async (o: { config: string }) => runDaemon(o.config));

program
  .command('check-config')
  .description('validate a config and every file it names, and explain what the gateway would do')
  .argument('<file>', 'YAML config file')
  .option('--peers', "also ask each route's peer whether it would open the route's target (TLS, login, allow-list; the target is not connected)")
  .action(async (file: string, o: { peers?: boolean }) => {
    const r = await checkConfig(file, { peers: o.peers === true });
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
    console.log(await addUser(o.store, user, await readPasswordInput(o)));
  });
users
  .command('remove')
  .description('remove a user')
  .argument('<user>', 'SASL user name')
  .requiredOption('-s, --store <file>', 'credential store')
  .action(async (user: string, o: { store: string }) => console.log(await removeUser(o.store, user)));
users
  .command('list')
  .description('list user names (never passwords or hashes)')
  .requiredOption('-s, --store <file>', 'credential store')
  .action(async (o: { store: string }) => console.log(await listUsers(o.store)));

const socketOpts = (c: Command): Command =>
  c.option('--socket <path>', `control socket (default ${DEFAULT_CONTROL_SOCKET})`).option('-c, --config <file>', 'read control.socket from this gateway config');

socketOpts(program.command('sessions').description('list migration sessions with their channels, bytes and rates'))
  .option('--json', 'print JSON')
  .option('--watch', 'redraw every second with a live rate bar per session')
  .action(async (o: { socket?: string; config?: string; json?: boolean; watch?: boolean }) => {
    const socket = await controlSocketPath(o);
    if (o.watch) {
      const stop = new AbortController();
      process.once('SIGINT', () => stop.abort());
      await watchSessions(socket, (s) => process.stdout.write(s), stop.signal);
      return;
    }
    const sessions = await fetchSessions(socket);
    console.log(o.json ? JSON.stringify(sessions, null, 2) : sessionsTable(sessions));
  });

socketOpts(program.command('cancel').description('end a migration session (or one channel) at once on this gateway and its peer'))
  .argument('<session>', 'session id from `vmgate sessions`')
  .option('--channel <n>', 'only this channel')
  .action(async (session: string, o: { socket?: string; config?: string; channel?: string }) => {
    console.log(await cancelSession(await controlSocketPath(o), session, o.channel === undefined ? undefined : Number(o.channel)));
  });

socketOpts(program.command('reload').description('reload certificates, CRL, credentials and allow-lists, and wait for the answer (as SIGHUP, but fails when the new files are refused)'))
  .action(async (o: { socket?: string; config?: string }) => console.log(await reloadGateway(await controlSocketPath(o))));

socketOpts(program.command('status').description('show what a running gateway is doing'))
  .action(async (o: { socket?: string; config?: string }) => console.log(await statusText(await controlSocketPath(o))));

program
  .command('demo')
  .description('throwaway PKI + two gateways on loopback; migrates a real QEMU guest if qemu-system-x86_64 is installed, else streams a random payload')
  .option('--size-mib <n>', 'guest RAM / payload size in MiB', '512')
  .option('--payload', 'stream a random payload even when QEMU is installed')
  .option('--keep', 'keep the temp directory for inspection')
  .action(async (o: { sizeMib: string; payload?: boolean; keep?: boolean }) => {
    const ok = await runDemo({ sizeMiB: Number(o.sizeMib), forcePayload: o.payload === true, keep: o.keep === true });
    if (!ok) process.exitCode = 1;
  });

try {
  await program.parseAsync(process.argv);
} catch (e: unknown) {
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('commander.')) {
    process.exit(code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help' ? 0 : 2);
  }
  if (isVmgateError(e)) console.error(`error [${e.code}]: ${e.message}`);
  else console.error(`error [internal]: ${messageOf(e)}`);
  process.exit(1);
}
