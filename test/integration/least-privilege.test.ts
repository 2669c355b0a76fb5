/**
 * Least privilege (SECURITY.md): the daemon serves its ports (above 1024) as
 * an unprivileged user with no capability at all and no way to gain one, and
 * the shipped systemd unit runs it that way.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { chown, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connectLoopback, exchange, startSink, type PayloadSink } from '../../src/demo/payload.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { startProcessPair, type ProcessPair } from '../helpers/process-pair.js';
import { AS_NOBODY, NOBODY, requireRootWithSetpriv } from '../helpers/unprivileged.js';

const UID = NOBODY;
const GID = NOBODY;

async function chownTree(path: string): Promise<void> {
  await chown(path, UID, GID);
  if (!(await stat(path)).isDirectory()) return;
  for (const entry of await readdir(path)) await chownTree(join(path, entry));
}

/** The lines of /proc/PID/status that say who a process is and what it may do. */
function privileges(pid: number): Record<string, string> {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Object.fromEntries(
    status
      .split('\n')
      .map((l) => l.split(':\t'))
      .filter(([k]) => ['Uid', 'Gid', 'Groups', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs'].includes(k ?? ''))
      .map(([k, v]) => [k ?? '', (v ?? '').trim()]),
  );
}

describe('gateway as an unprivileged user', { timeout: 120_000 }, () => {
  let dir: string;
  let pki: TestPki;
  let sink: PayloadSink;
  let pair: ProcessPair;

  before(async () => {
    requireRootWithSetpriv();
    dir = await mkdtemp(join(tmpdir(), 'vmgate-unpriv-'));
    pki = await makeTestPki(join(dir, 'pki'));
    sink = await startSink(4 << 20);
    // The gateway's files belong to its own user, keys still 0600 (as deploy/README.md says).
    pair = await startProcessPair({ dir, pki, password: 'unprivileged-pw-5b1e', targetPort: sink.port, wrap: AS_NOBODY, beforeStart: () => chownTree(dir) });
  });

  after(async () => {
    await pair?.stop();
    await sink?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test('runs-as-nobody-with-no-capabilities-and-no-new-privs', () => {
    for (const gw of [pair.a, pair.b]) {
      const p = privileges(gw.pid);
      assert.equal(p['Uid'], `${UID}\t${UID}\t${UID}\t${UID}`, `${gw.name} uid`);
      assert.equal(p['Gid'], `${GID}\t${GID}\t${GID}\t${GID}`, `${gw.name} gid`);
      assert.equal(p['Groups'], '', `${gw.name} supplementary groups`);
      for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) assert.equal(p[set], '0000000000000000', `${gw.name} ${set}`);
      assert.equal(p['NoNewPrivs'], '1', `${gw.name} no_new_privs`);
    }
  });

  test('serves-ports-above-1024-and-carries-a-transfer', async () => {
    assert.ok(pair.serverPort > 1024 && pair.routePort > 1024);
    const client = await connectLoopback(pair.routePort);
    const [mine, theirs] = await Promise.all([exchange(client, 4 << 20), sink.next()]);
    assert.equal(theirs.received, mine.sent);
    assert.equal(mine.received, theirs.sent);
    await pair.b.waitForLog((l) => l.event === 'channel-close' && l['cause'] === 'ok', 10_000);
  });

  test('deploy-unit-runs-as-its-own-user-without-capabilities', () => {
    const unit = readFileSync(new URL('../../../deploy/vmgate.service', import.meta.url), 'utf8');
    const settings = new Map(unit.split('\n').filter((l) => /^\w+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).trim()]));
    assert.equal(settings.get('User'), 'vmgate');
    assert.equal(settings.get('Group'), 'vmgate');
    assert.equal(settings.get('CapabilityBoundingSet'), '', 'no capability may be kept');
    assert.equal(settings.get('AmbientCapabilities'), '');
    assert.equal(settings.get('NoNewPrivileges'), 'yes');
    assert.equal(settings.get('UMask'), '0077');
  });
});
