/**
 * `vmgate demo` as an operator runs it: the built CLI as a child process, in a
 * private TMPDIR so that anything it leaves behind is visibly its own. With
 * QEMU installed it migrates a real guest; with --payload it streams bytes.
 * Either way: exit 0, an OK line, equal hashes, no QEMU and no temp dir left,
 * also when interrupted with Ctrl-C.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { findQemu } from '../../src/demo/qemu-demo.js';
import { waitFor } from '../helpers/wait-for.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `vmgate <args>` with TMPDIR=tmp; `interrupt` sends SIGINT once stdout contains that text. */
function runCli(args: readonly string[], tmp: string, opts: { interrupt?: string; timeoutMs?: number } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, TMPDIR: tmp },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let interrupted = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`vmgate ${args.join(' ')} still running after ${opts.timeoutMs ?? 180_000} ms:\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 180_000);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (opts.interrupt !== undefined && !interrupted && stdout.includes(opts.interrupt)) {
        interrupted = true;
        child.kill('SIGINT');
      }
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The work dir the demo announces on its first line. */
function workDirOf(run: CliRun): string {
  const m = /\(work dir (\S+)\)/.exec(run.stdout);
  assert.ok(m?.[1], `no work dir in the output:\n${run.stdout}`);
  return m[1];
}

/** Pids of live processes whose command line mentions `text` (a zombie's is empty). */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Asserts that nothing of the run is left: no process mentioning its work dir, an empty TMPDIR. */
async function assertNothingLeft(run: CliRun, tmp: string): Promise<void> {
  const dir = workDirOf(run);
  assert.ok(dir.startsWith(`${tmp}/vmgate-demo-`), `work dir ${dir} is not in the run's TMPDIR ${tmp}`);
  // SIGKILLed QEMUs can take a moment to be gone from /proc.
  await waitFor(() => processesMentioning(dir).length === 0, { what: `the processes of ${dir} to exit`, timeoutMs: 5_000, intervalMs: 100, detail: () => `still running: ${processesMentioning(dir).join(', ')}` });
  assert.equal(existsSync(dir), false, `${dir} left behind`);
  assert.deepEqual(readdirSync(tmp), [], `temp files left in ${tmp}`);
}

describe('vmgate demo (built CLI)', () => {
  let tmp: string;
  let qemu: string | undefined;

  before(async () => {
    qemu = await findQemu();
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  const freshTmp = (): string => {
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
    tmp = mkdtempSync(join(tmpdir(), 'vmg-demo-cli-'));
    return tmp;
  };

  test('demo-qemu-migrates-a-real-guest', async () => {
    assert.ok(qemu !== undefined, 'qemu-system-x86_64 is not installed: sudo .ci/install-deps installs it');
    const dir = freshTmp();
    const run = await runCli(['demo', '--size-mib', '256'], dir);
    assert.equal(run.code, 0, `exit ${run.code}:\n${run.stdout}\n${run.stderr}`);
    // The demo's output is its product: the operator reads it, there is no code.
    assert.match(run.stdout, /live-migrating a real QEMU guest/);
    assert.match(run.stdout, /migrated {2}the 256 MiB guest .* MB sent in [\d.]+ s, \d+ MB\/s/);
    assert.match(run.stdout, /^OK: the guest's memory arrived intact/m);
    const src = /source\s+([0-9a-f]{64})/.exec(run.stdout)?.[1];
    const dst = /destination\s+([0-9a-f]{64})/.exec(run.stdout)?.[1];
    assert.ok(src !== undefined && dst !== undefined, `no hashes in:\n${run.stdout}`);
    assert.equal(dst, src);
    await assertNothingLeft(run, dir);
  });

  test('demo-payload-when-asked', async () => {
    const dir = freshTmp();
    const run = await runCli(['demo', '--payload', '--size-mib', '64'], dir);
    assert.equal(run.code, 0, `exit ${run.code}:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /streaming a 64 MiB random payload/);
    assert.match(run.stdout, /moved {5}67108864 bytes/);
    assert.match(run.stdout, /^OK: the payload arrived intact/m);
    const sent = /sent\s+([0-9a-f]{64})/.exec(run.stdout)?.[1];
    const received = /received\s+([0-9a-f]{64})/.exec(run.stdout)?.[1];
    assert.ok(sent !== undefined && received !== undefined, `no hashes in:\n${run.stdout}`);
    assert.equal(received, sent);
    await assertNothingLeft(run, dir);
  });

  test('demo-ctrl-c-mid-migration-cleans-up', async () => {
    assert.ok(qemu !== undefined, 'qemu-system-x86_64 is not installed: sudo .ci/install-deps installs it');
    const dir = freshTmp();
    // Both QEMUs are up and the gateways are running when this line appears.
    const run = await runCli(['demo', '--size-mib', '512'], dir, { interrupt: 'migrating (precopy)' });
    assert.equal(run.signal, 'SIGINT', `expected death by SIGINT, got exit ${run.code}:\n${run.stdout}\n${run.stderr}`);
    await assertNothingLeft(run, dir);
  });

  test('demo-falls-back-to-payload-without-qemu', async () => {
    const dir = freshTmp();
    const run = await new Promise<CliRun>((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, 'demo', '--size-mib', '8'], {
        env: { ...process.env, TMPDIR: dir, VMGATE_QEMU: join(dir, 'no-such-qemu') },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.once('error', reject);
      child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
    assert.equal(run.code, 0, `exit ${run.code}:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /apt-get install qemu-system-x86/);
    assert.match(run.stdout, /^OK: the payload arrived intact/m);
    await assertNothingLeft(run, dir);
  });

  test('find-qemu-honours-VMGATE_QEMU-and-PATH', async () => {
    const dir = freshTmp();
    const fake = join(dir, 'qemu-system-x86_64');
    writeFileSync(fake, '#!/bin/sh\nexit 1\n');
    chmodSync(fake, 0o755);
    assert.equal(await findQemu({ PATH: `/nonexistent:${dir}` }), fake);
    assert.equal(await findQemu({ PATH: dir, VMGATE_QEMU: join(dir, 'missing') }), undefined);
    assert.equal(await findQemu({ PATH: '/nonexistent', VMGATE_QEMU: fake }), fake);
    chmodSync(fake, 0o644);
    assert.equal(await findQemu({ PATH: dir }), undefined, 'a file that is not executable is not QEMU');
  });
});
