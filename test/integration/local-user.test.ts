/**
 * A local unprivileged user on the source host (SECURITY.md): a route's unix
 * socket is mode 0600 (or 0660 for the group QEMU runs in), so another user
 * cannot connect to it; a loopback TCP route is reachable by every local
 * process, which is the exposure the docs warn about.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { chmod, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startLocalPair, type LocalPair } from '../../src/demo/local-pair.js';
import { startSink, type PayloadSink } from '../../src/demo/payload.js';
import { captureLogs, type CapturedLogs } from '../helpers/log-capture.js';
import { makeTestPki } from '../helpers/pki.js';
import { AS_NOBODY, NOBODY, requireRootWithSetpriv } from '../helpers/unprivileged.js';
import { within } from '../helpers/wait-for.js';

/**
 * Connects as nobody:nogroup (no capability) to `target` (a unix path or a TCP
 * port) and says what happened: "connected" or the error code. A connection
 * stays open until `release()`, so the test can wait for the gateway to act on it.
 */
async function connectAsNobody(target: string | number): Promise<{ said: string; release: () => void }> {
  const script = `
    const t = process.argv[1];
    const s = require('node:net').connect(/^\\d+$/.test(t) ? { host: '127.0.0.1', port: Number(t) } : { path: t });
    s.on('connect', () => { s.write('QEVM from another local user'); console.log('connected'); });
    s.on('error', (e) => { console.log(e.code); process.exit(0); });
    process.stdin.on('end', () => process.exit(0)).resume();`;
  const argv = [...AS_NOBODY, process.execPath, '-e', script, String(target)];
  // Async: the gateways under test live in this process.
  const child = spawn(argv[0] ?? 'setpriv', argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  const release = (): void => {
    child.stdin?.end();
  };
  try {
    const [line] = (await within(once(createInterface({ input: child.stdout as NodeJS.ReadableStream }), 'line'), 15_000, 'the unprivileged client to report')) as [string];
    return { said: line.trim(), release };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
}

describe('local users and the route listener', { timeout: 120_000 }, () => {
  let dir: string;
  let sockets: string;
  let sink: PayloadSink;
  let logs: CapturedLogs;
  let pair: LocalPair;

  before(async () => {
    requireRootWithSetpriv();
    dir = await mkdtemp(join(tmpdir(), 'vmgate-local-user-'));
    // A directory every user may enter: only the socket's own mode may keep them out.
    sockets = await mkdtemp(join(tmpdir(), 'vmgate-sockets-'));
    await chmod(sockets, 0o755);
    const pki = await makeTestPki(join(dir, 'pki'));
    sink = await startSink(0);
    logs = captureLogs('info');
    pair = await startLocalPair({
      dir: join(dir, 'pair'),
      targetConnect: `tcp:127.0.0.1:${sink.port}`,
      log: logs.log,
      pkiA: pki.hostA,
      pkiB: pki.hostB,
      tweakA: (c) => {
        const routes = c['routes'] as Record<string, Record<string, unknown>>;
        const base = routes['to-b'] ?? {};
        routes['to-b'] = { ...base, listen: `unix:${join(sockets, 'private.sock')}` };
        routes['to-b-group'] = { ...base, listen: `unix:${join(sockets, 'group.sock')}`, socketGroup: NOBODY };
        routes['to-b-tcp'] = { ...base, listen: 'tcp:127.0.0.1:0' };
      },
    });
  });

  after(async () => {
    await pair?.stop();
    await sink?.close();
    for (const d of [dir, sockets]) if (d !== undefined) await rm(d, { recursive: true, force: true });
  });

  test('unix-route-socket-is-0600-and-another-user-cannot-connect', async () => {
    const path = join(sockets, 'private.sock');
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const c = await connectAsNobody(path);
    c.release();
    assert.equal(c.said, 'EACCES');
    assert.equal(sink.transfers.length, 0, 'nothing may reach the target');
  });

  test('unix-route-socket-group-is-0660-and-that-group-can-connect', async () => {
    const path = join(sockets, 'group.sock');
    const st = await stat(path);
    assert.equal(st.mode & 0o777, 0o660);
    assert.equal(st.gid, NOBODY);
    const from = logs.mark();
    const c = await connectAsNobody(path);
    try {
      assert.equal(c.said, 'connected');
      await logs.waitFor({ gateway: 'host-a', event: 'channel-open', route: 'to-b-group' }, 10_000, from);
    } finally {
      c.release();
    }
  });

  test('loopback-tcp-route-is-reachable-by-any-local-user', async () => {
    const port = Number(/:(\d+)$/.exec(pair.a.routeAddress('to-b-tcp') ?? '')?.[1]);
    const from = logs.mark();
    const c = await connectAsNobody(port);
    try {
      assert.equal(c.said, 'connected');
      // This is the exposure: another user's bytes go to the peer's target as a migration stream.
      await logs.waitFor({ gateway: 'host-a', event: 'channel-open', route: 'to-b-tcp' }, 10_000, from);
    } finally {
      c.release();
    }
  });
});
