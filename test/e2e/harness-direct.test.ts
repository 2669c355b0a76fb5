/**
 * Baseline for every end-to-end test: QEMU migrates straight to QEMU across
 * the veth link between two namespaces, no gateway involved. It proves the
 * harness (namespaces, QEMU launch, random guest RAM, QMP, memory hashing) and
 * gives the timings the gateway tests are compared with.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createNetnsPair, leftoverNamespaces, type NetnsPair } from '../helpers/netns.js';
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
  const vms: QemuVm[] = [];

  before(async () => {
    net = await createNetnsPair({ subnet: '10.250.1.0/30' });
    dir = await mkdtemp(join(tmpdir(), 'vmg-e2e-direct-'));
    image = await randomGuestImage(dir, 256);
  });

  after(async () => {
    await Promise.all(vms.map((vm) => vm.kill()));
    await net?.destroy();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
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

  async function migrateAndCompare(plan: MigrationPlan): Promise<void> {
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
    process.stderr.write(`# ${line}\n`);
    // the random part cannot be deduplicated: at least that much crossed the link
    assert.ok((ram?.transferred ?? 0) >= image.size, `only ${ram?.transferred} bytes transferred`);
    await Promise.all([src.kill(), dst.kill()]);
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
    assert.notEqual(await other.ramHash(), await vm.ramHash(), 'an empty guest must not hash like the loaded one');
    await Promise.all([vm.kill(), other.kill()]);
  });

  test('direct-precopy', async () => {
    await migrateAndCompare({ mode: 'precopy' });
  });

  test('direct-multifd-4-channels', async () => {
    await migrateAndCompare({ mode: 'multifd', multifdChannels: 4 });
  });

  test('direct-postcopy', async () => {
    await migrateAndCompare({ mode: 'postcopy' });
  });
});
