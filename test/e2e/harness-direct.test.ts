/**
 * Baseline for every end-to-end test: QEMU migrates straight to QEMU across
 * the veth link between two namespaces, no gateway involved. It proves the
 * harness (namespaces, QEMU launch, random guest RAM, QMP, memory hashing) and
 * gives the timings the gateway tests are compared with.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { after, before, describe, test, type TestContext } from 'node:test';
import { createNetnsPair, leftoverNamespaces, onProcessExit, type NetnsPair } from '../helpers/netns.js';
import {
  GUEST_LOAD_ADDR,
  QemuVm,
  configureMigration,
  migrateAndWait,
  randomGuestImage,
  type MigrationPlan,
  type RandomImage,
} from '../helpers/qemu.js';

const GUEST_MIB = 512;
const TIMEOUT_MS = 60_000;

describe('harness: direct QEMU-to-QEMU migration between two namespaces', { timeout: 5 * 60_000 }, () => {
  let net: NetnsPair;
  let dir: string;
  let image: RandomImage;
  let forgetDir = (): void => {};
  const vms: QemuVm[] = [];

  before(async () => {
    net = await createNetnsPair({ subnet: '10.250.1.0/30' });
    dir = await mkdtemp(join(tmpdir(), 'vmg-e2e-direct-'));
    forgetDir = onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
    image = await randomGuestImage(dir, 256);
  });

  after(async () => {
    await Promise.all(vms.map((vm) => vm.kill()));
    await net?.destroy();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    forgetDir();
    const left = leftoverNamespaces().filter((ns) => ns === net?.a || ns === net?.b);
    assert.deepEqual(left, [], 'network namespaces left over');
  });

  async function launchPair(plan: MigrationPlan): Promise<{ src: QemuVm; dst: QemuVm; uri: string }> {
    const src = await QemuVm.launch({ name: `src-${plan.mode}`, netns: net.a, memMiB: GUEST_MIB, loadFile: image.path });
    vms.push(src);
    const dst = await QemuVm.launch({ name: `dst-${plan.mode}`, netns: net.b, memMiB: GUEST_MIB, incoming: true });
    vms.push(dst);
    await configureMigration(src, plan);
    await configureMigration(dst, plan);
    const port = await dst.migrateIncoming(`tcp:${net.addrB}:0`);
    return { src, dst, uri: `tcp:${net.addrB}:${port}` };
  }

  async function migrateAndCompare(t: TestContext, plan: MigrationPlan): Promise<void> {
    const { src, dst, uri } = await launchPair(plan);
    const srcHash = await src.ramHash();
    const result = await migrateAndWait(src, dst, uri, plan, TIMEOUT_MS);
    const dstHash = await dst.ramHash();
    assert.equal(dstHash, srcHash, 'destination guest RAM differs from the source');
    const ram = result.source.ram;
    const mib = (ram?.transferred ?? 0) / 2 ** 20;
    const line = `${plan.mode}: ${result.elapsedMs} ms wall, total-time ${result.source['total-time']} ms, ` +
      `${mib.toFixed(0)} MiB, ${ram?.mbps.toFixed(0)} Mbit/s, downtime ${result.source.downtime} ms, ` +
      `statuses ${result.sourceStatuses.join('>')}`;
    t.diagnostic(line);
    // the random part cannot be deduplicated: at least that much crossed the link
    assert.ok((ram?.transferred ?? 0) >= image.size, `only ${ram?.transferred} bytes transferred`);
    await Promise.all([src.kill(), dst.kill()]);
    if (plan.mode === 'multifd') {
      // the RAM pages went over the multifd channels, not the main one
      assert.ok(Number(ram?.['multifd-bytes'] ?? 0) >= image.size, `multifd-bytes ${String(ram?.['multifd-bytes'])}`);
    }
    if (plan.mode === 'postcopy') {
      assert.equal(result.destinationState, 'paused');
      assert.ok(result.sourceStatuses.includes('postcopy-active'), `no postcopy-active: ${result.sourceStatuses.join('>')}`);
    } else {
      assert.equal(result.destinationState, 'prelaunch');
      assert.ok(!result.sourceStatuses.includes('postcopy-active'));
    }
  }

  test('loader-puts-random-image-in-guest-ram', async () => {
    const vm = await QemuVm.launch({ name: 'loader', netns: net.a, memMiB: GUEST_MIB, loadFile: image.path });
    vms.push(vm);
    assert.equal(await vm.ramHash(GUEST_LOAD_ADDR, image.size), image.sha256);
    const other = await QemuVm.launch({ name: 'empty', netns: net.b, memMiB: GUEST_MIB, incoming: true });
    vms.push(other);
    assert.notEqual(await other.ramHash(GUEST_LOAD_ADDR, image.size), image.sha256, 'a guest without the loader must not hold the image');
    await Promise.all([vm.kill(), other.kill()]);
  });

  test('link-down-cuts-link-up-restores', async () => {
    const server = net.spawnIn(net.b, [
      process.execPath, '-e',
      `require('node:net').createServer((s) => s.end('pong')).listen(7000, '${net.addrB}', () => console.log('listening'))`,
    ]);
    try {
      await once(server.stdout!, 'data');
      const probe = async (): Promise<string> => {
        const script = `const s = require('node:net').connect(7000, '${net.addrB}');
          s.setTimeout(3000, () => { console.log('timeout'); process.exit(0); });
          s.on('data', (d) => { console.log(String(d)); process.exit(0); });
          s.on('error', (e) => { console.log(e.code); process.exit(0); });`;
        return (await net.exec(net.a, [process.execPath, '-e', script])).stdout.trim();
      };
      assert.equal(await probe(), 'pong');
      await net.linkDown();
      assert.equal(await probe(), 'ENETUNREACH');
      await net.linkUp();
      assert.equal(await probe(), 'pong');
    } finally {
      process.kill(-server.pid!, 'SIGKILL');
    }
  });

  test('direct-precopy', async (t) => {
    await migrateAndCompare(t, { mode: 'precopy' });
  });

  test('direct-multifd-4-channels', async (t) => {
    await migrateAndCompare(t, { mode: 'multifd', multifdChannels: 4 });
  });

  test('direct-postcopy', async (t) => {
    await migrateAndCompare(t, { mode: 'postcopy' });
  });
});
