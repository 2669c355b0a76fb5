/**
 * `vmgate status --json` prints the control socket's status reply as JSON;
 * `vmgate sessions --watch` redraws with escape sequences only on a
 * terminal, and into a pipe writes one plain table per poll.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { watchSessions } from '../../src/cli/sessions.js';
import { CLI_PATH, GatewayProcess, runCli } from '../helpers/gateway-process.js';
import { writeSmallGateway } from '../helpers/small-gateway.js';

let dir: string;
let gw: GatewayProcess;
let control: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmgate-status-'));
  const files = await writeSmallGateway(dir, 'host-status');
  control = files.control;
  gw = await GatewayProcess.start({ configPath: files.config, name: 'status' });
});

after(async () => {
  await gw?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

test('status-json: the status reply as JSON, exit 0', async () => {
  const r = await runCli(['status', '--json', '--socket', control]);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.equal(s['name'], 'host-status');
  assert.equal(s['server'], null);
  assert.deepEqual(s['routes'], []);
  assert.equal(s['channels'], 0);
  assert.equal(s['sessions'], 0);
  assert.equal(typeof s['uptimeS'], 'number');
  assert.match(String((s['identity'] as Record<string, unknown>)['subject']), /host-small/);
});

test('sessions-watch-into-a-pipe: plain tables, no escape sequences, ends on SIGTERM', { timeout: 30_000 }, async () => {
  const child = spawn(process.execPath, [CLI_PATH, 'sessions', '--watch', '--socket', control], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  // Two polls (a second apart) show that it keeps printing, one table each.
  await new Promise<void>((resolve) => {
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      if ((out.match(/no migration in progress/g) ?? []).length >= 2) resolve();
    });
  });
  child.kill('SIGTERM');
  assert.equal(await exited, 0, err);
  assert.ok(!out.includes('\x1b'), `no escape sequence in ${JSON.stringify(out)}`);
  assert.match(out, /^\d{4}-\d\d-\d\dT[\d:.]+Z\nno migration in progress\n\n\d{4}-/);
});

test('sessions-watch-on-a-terminal: clears and redraws', async () => {
  const stop = new AbortController();
  const frames: string[] = [];
  await watchSessions(control, (s) => {
    frames.push(s);
    if (frames.length === 2) stop.abort();
  }, stop.signal, { redraw: true, intervalMs: 50 });
  assert.equal(frames.length, 2);
  for (const f of frames) assert.ok(f.startsWith('\x1b[2J\x1b[H'), JSON.stringify(f));
});
