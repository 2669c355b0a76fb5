/**
 * Logs under systemd: when stdout is the stream systemd connected to the
 * journal ($JOURNAL_STREAM names its device and inode), every line the daemon
 * and its worker processes write is led by the syslog priority `<N>` of its
 * level, which journald strips and files the line under (`journalctl -p`).
 * The gateway runs for real; a shell stands in for systemd by setting
 * JOURNAL_STREAM to what its stdout is (a pipe) and exec'ing the gateway.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { GatewayProcess } from '../helpers/gateway-process.js';
import { writeSmallGateway } from '../helpers/small-gateway.js';
import { syslogPriority } from '../../src/log/log-lines.js';

// $$: the shell's own stdout (inside $(...) fd 1 is the substitution's pipe).
const AS_SYSTEMD = ['sh', '-c', 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/$$/fd/1) && export JOURNAL_STREAM && exec "$@"', 'sh'];

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmgate-journal-'));
});

after(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

test('journal-prefix: every line of the primary and its workers carries <N> of its level and the gateway name', { timeout: 60_000 }, async () => {
  const files = await writeSmallGateway(await mkdtemp(join(dir, 'workers-')), 'host-j');
  const config = parse(await readFile(files.config, 'utf8')) as Record<string, unknown>;
  await writeFile(files.config, stringify({ ...config, workers: 2 }), { mode: 0o600 });
  const gw = await GatewayProcess.start({ configPath: files.config, name: 'journal', wrap: AS_SYSTEMD });
  try {
    await gw.waitForLogs((l) => l.event === 'worker-ready', 2, 10_000);
    // A refused reload logs at error level: a line journalctl -p err shows.
    await writeFile(join(files.tls, 'server-cert.pem'), 'not a certificate\n');
    process.kill(gw.pid, 'SIGHUP');
    await gw.waitForLog((l) => l.event === 'reload-failed' && l['process'] === 'primary', 10_000);
    const exit = await gw.stop(20_000);
    assert.equal(exit.code, 0, gw.diagnostics());
    assert.deepEqual(gw.otherStdout, [], 'every stdout line is <N> + one JSON object');
    for (const [i, line] of gw.logs.entries()) {
      assert.equal(gw.priorities[i], syslogPriority(line.level ?? -1), `line ${i} (${line.event}) is led by the priority of its level`);
      assert.equal(line['gateway'], 'host-j', `line ${i} (${line.event}) names the gateway`);
    }
    const events = new Set(gw.logs.map((l) => l.event));
    for (const e of ['ready', 'worker-ready', 'reloading', 'reload-failed', 'stopping', 'stopped']) assert.ok(events.has(e), `saw ${e}: ${[...events].join(', ')}`);
    assert.ok(gw.priorities.includes(3), 'the refused reload is an error line (<3>)');
  } finally {
    await gw.kill();
  }
});

test('journal-prefix-only-on-the-journal: stdout redirected away from the journal stream gets plain JSON', { timeout: 60_000 }, async () => {
  const files = await writeSmallGateway(await mkdtemp(join(dir, 'piped-')), 'host-p');
  // As `vmgate run | tee` in a unit: JOURNAL_STREAM is inherited but names another stream.
  const gw = await GatewayProcess.start({ configPath: files.config, name: 'piped', env: { JOURNAL_STREAM: '0:1' } });
  try {
    const exit = await gw.stop(20_000);
    assert.equal(exit.code, 0, gw.diagnostics());
    assert.deepEqual(gw.otherStdout, []);
    assert.ok(gw.logs.length >= 3, gw.diagnostics());
    assert.ok(gw.priorities.every((p) => p === undefined), 'no <N> prefix');
    assert.ok(gw.logs.every((l) => l['gateway'] === 'host-p'), 'stopping and stopped name the gateway too');
  } finally {
    await gw.kill();
  }
});

test('log-format-flag: --log-format journal forces the prefix without systemd', { timeout: 60_000 }, async () => {
  const files = await writeSmallGateway(await mkdtemp(join(dir, 'flag-')), 'host-f');
  const gw = await GatewayProcess.start({ configPath: files.config, name: 'flag', extraArgs: ['--log-format', 'journal'] });
  try {
    await gw.stop(20_000);
    assert.ok(gw.logs.length >= 3, gw.diagnostics());
    assert.deepEqual(gw.priorities, gw.logs.map((l) => syslogPriority(l.level ?? -1)));
  } finally {
    await gw.kill();
  }
});
