/**
 * WorkerPool (the primary of a gateway with `workers: 2`) started in this
 * process with WorkerPool.start, its workers real forked processes, driven
 * over real TLS on loopback by a PeerClient: what status() says of each
 * worker, and that a worker killed with SIGKILL is replaced and the pool
 * serves on.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { stringify } from 'yaml';
import { CredentialStore } from '../../src/auth/credential-store.js';
import { loadConfig } from '../../src/config/load.js';
import { destroyPeer } from '../../src/handshake/client.js';
import { PeerClient } from '../../src/route/peer-client.js';
import type { Identity } from '../../src/tls/identity.js';
import { WorkerPool } from '../../src/workers/primary.js';
import { captureLogs, type CapturedLogs } from '../helpers/log-capture.js';
import { heldTarget, identityOf, makePeerPki, routeConfig, TARGET, USER, type HeldTarget } from '../helpers/peer-fixture.js';

let pki: Awaited<ReturnType<typeof makePeerPki>>;
let hostA: Identity;
let target: HeldTarget;
let pool: WorkerPool;
let logs: CapturedLogs;
const password = randomBytes(18).toString('base64url');

before(async () => {
  pki = await makePeerPki('vmgate-worker-pool-');
  hostA = await identityOf(pki.hostA);
  target = await heldTarget();
  const dir = join(pki.hostB, '..');
  const store = CredentialStore.empty();
  await store.setPassword(USER, password);
  await store.save(join(dir, 'users.json'));
  const file = join(dir, 'host-b.yaml');
  await writeFile(file, stringify({
    name: 'host-b',
    workers: 2,
    // The workers log to this process's stdout; only their errors matter here.
    log: { level: 'error' },
    tls: { dir: pki.hostB },
    server: {
      listen: '127.0.0.1:0',
      credentials: './users.json',
      targets: { [TARGET]: { connect: `tcp:127.0.0.1:${target.port}`, allow: [{ peer: 'host-a', user: USER }] } },
    },
  }), { mode: 0o600 });
  logs = captureLogs('info');
  pool = await WorkerPool.start(await loadConfig(file), logs.log);
});

after(async () => {
  await pool.stop(0);
  await target.close();
  await pki.remove();
});

function client(): PeerClient {
  const port = pool.serverAddress()?.port ?? 0;
  return new PeerClient(routeConfig(port), () => hostA, () => password);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('status() reports each worker process, and the channel a worker carries', { timeout: 30_000 }, async () => {
  const status = await pool.status();
  const pids = pool.workerPids();
  assert.equal(pids.length, 2);
  assert.deepEqual(status.workers?.map((w) => w.pid), pids);
  for (const pid of pids) assert.ok(alive(pid) && pid !== process.pid, `worker ${pid} is a process of its own`);
  assert.deepEqual(status.workers?.map((w) => w.channels), [0, 0]);
  assert.equal(status.server, `127.0.0.1:${pool.serverAddress()?.port}`);
  assert.deepEqual(status.targets, [TARGET]);
  assert.match(status.identity?.subject ?? '', /host-b/, 'a worker answered with its certificate');

  const { peer } = await client().open(randomBytes(16).toString('hex'), 0);
  peer.tls.on('error', () => undefined);
  const busy = await pool.status();
  assert.equal(busy.channels, 1);
  assert.deepEqual(busy.workers?.map((w) => w.channels).sort(), [0, 1], 'one worker carries the channel');
  destroyPeer(peer);
});

test('a worker killed with SIGKILL is replaced by a new process, and the pool serves on', { timeout: 30_000 }, async () => {
  const [victim, survivor] = pool.workerPids();
  assert.ok(victim !== undefined && survivor !== undefined);
  const mark = logs.mark();
  process.kill(victim, 'SIGKILL');
  const exited = await logs.waitFor({ event: 'worker-exited', workerPid: victim }, 10_000, mark);
  assert.equal(exited['how'], 'killed by SIGKILL');
  const started = await logs.waitFor({ event: 'worker-started' }, 10_000, mark);
  const replacement = Number(started['workerPid']);
  assert.notEqual(replacement, victim);
  assert.ok(alive(replacement));

  const pids = (await pool.status()).workers?.map((w) => w.pid);
  assert.equal(pids?.length, 2);
  assert.ok(pids?.includes(survivor), 'the other worker was left alone');
  assert.ok(pids?.includes(replacement), 'status shows the replacement');
  assert.ok(!pids?.includes(victim), 'status no longer shows the killed worker');
  assert.equal(pool.notReady(), undefined, 'ready again');
  // Two probes: round robin hands them to both workers, the replacement included.
  await client().probe();
  await client().probe();
});
