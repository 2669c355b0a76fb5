/**
 * The product's main promise, end to end: a real QEMU in namespace A migrates
 * to its local gateway (route "to-b" on A's 127.0.0.1), the gateways carry the
 * stream over TLS 1.3 + SASL across the veth link, and the gateway in B
 * connects the destination QEMU listening on B's 127.0.0.1. Guest RAM must
 * arrive bit for bit, and both gateways must account for every channel.
 *
 * Compare the timings printed here with harness-direct.test.ts (same guest,
 * same link, no gateways).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { GatewayProcess, addUser, writeGatewayConfig, writeSecretFile, type GatewayLogLine } from '../helpers/gateway-process.js';
import { createNetnsPair, leftoverNamespaces, onProcessExit, type NetnsPair } from '../helpers/netns.js';
import { makeTestPki } from '../helpers/pki.js';
import { QemuVm, configureMigration, migrateAndWait, randomGuestImage, type MigrationPlan, type RandomImage } from '../helpers/qemu.js';

const GUEST_MIB = 512;
const MIGRATION_TIMEOUT_MS = 45_000;
const LOG_TIMEOUT_MS = 10_000;
/** Route listener in A and destination QEMU in B: the same port, in different namespaces. */
const QEMU_PORT = 49152;
const GATEWAY_PORT = 7443;

describe('migration through a pair of gateways', { timeout: 5 * 60_000 }, () => {
  let net: NetnsPair;
  let dir: string;
  let image: RandomImage;
  let forgetDir = (): void => {};
  let gwA: GatewayProcess | undefined;
  let gwB: GatewayProcess | undefined;
  const vms: QemuVm[] = [];

  before(async () => {
    net = await createNetnsPair({ subnet: '10.250.2.0/30' });
    dir = await mkdtemp(join(tmpdir(), 'vmg-e2e-gw-'));
    forgetDir = onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
    image = await randomGuestImage(dir, 256);
    const pki = await makeTestPki(join(dir, 'pki'));
    const dirA = join(dir, 'a');
    const dirB = join(dir, 'b');
    await mkdir(dirA);
    await mkdir(dirB);

    const password = randomBytes(24).toString('base64url');
    await addUser({ store: join(dirB, 'users.json'), user: 'migrate', password });
    await writeSecretFile(join(dirA, 'to-b.password'), password);

    await writeGatewayConfig(join(dirB, 'gateway.yaml'), {
      name: 'host-b',
      tls: { dir: pki.hostB },
      server: {
        listen: `${net.addrB}:${GATEWAY_PORT}`,
        credentials: './users.json',
        targets: {
          incoming: { connect: `tcp:127.0.0.1:${QEMU_PORT}`, allow: [{ peer: 'host-a', user: 'migrate' }] },
        },
      },
    });
    await writeGatewayConfig(join(dirA, 'gateway.yaml'), {
      name: 'host-a',
      tls: { dir: pki.hostA },
      routes: {
        'to-b': {
          listen: `tcp:127.0.0.1:${QEMU_PORT}`,
          peer: `${net.addrB}:${GATEWAY_PORT}`,
          peerName: 'host-b',
          target: 'incoming',
          user: 'migrate',
          passwordFile: './to-b.password',
        },
      },
    });
    gwB = await GatewayProcess.start({ configPath: join(dirB, 'gateway.yaml'), netns: net.b, name: 'host-b' });
    gwA = await GatewayProcess.start({ configPath: join(dirA, 'gateway.yaml'), netns: net.a, name: 'host-a' });
  });

  after(async () => {
    await Promise.all(vms.map((vm) => vm.kill()));
    await Promise.all([gwA?.stop(), gwB?.stop()]);
    await net?.destroy();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    forgetDir();
    const left = leftoverNamespaces().filter((ns) => ns === net?.a || ns === net?.b);
    assert.deepEqual(left, [], 'network namespaces left over');
  });

  const isEvent = (event: string) => (l: GatewayLogLine): boolean => l.event === event;

  /**
   * Migrates a fresh source (random RAM) through the gateways to a fresh
   * destination, compares RAM hashes, then checks both gateways' channel
   * lines for this migration: `channels` channels, one session, all closed
   * "ok", and each channel's bytes equal on both sides (nothing lost).
   */
  async function migrateThroughGateways(t: TestContext, plan: MigrationPlan, channels: number): Promise<void> {
    assert.ok(gwA !== undefined && gwB !== undefined);
    const t0 = Date.now();
    const fromA = gwA.logs.length;
    const fromB = gwB.logs.length;
    const src = await QemuVm.launch({ name: `src-${plan.mode}`, netns: net.a, memMiB: GUEST_MIB, loadFile: image.path });
    vms.push(src);
    const dst = await QemuVm.launch({ name: `dst-${plan.mode}`, netns: net.b, memMiB: GUEST_MIB, incoming: true });
    vms.push(dst);
    await configureMigration(src, plan);
    await configureMigration(dst, plan);
    await dst.migrateIncoming(`tcp:127.0.0.1:${QEMU_PORT}`);
    const srcHash = await src.ramHash();
    const tReady = Date.now();

    const result = await migrateAndWait(src, dst, `tcp:127.0.0.1:${QEMU_PORT}`, plan, MIGRATION_TIMEOUT_MS);
    assert.equal(await dst.ramHash(), srcHash, 'destination guest RAM differs from the source');
    assert.equal(result.destinationState, plan.mode === 'postcopy' ? 'paused' : 'prelaunch');
    if (plan.mode === 'postcopy') {
      assert.ok(result.sourceStatuses.includes('postcopy-active'), `no postcopy-active: ${result.sourceStatuses.join('>')}`);
    }

    // Both QEMUs are still running: the channels must end by QEMU's own normal close.
    const closesA = await gwA.waitForLogs(isEvent('channel-close'), channels, LOG_TIMEOUT_MS, fromA);
    const closesB = await gwB.waitForLogs(isEvent('channel-close'), channels, LOG_TIMEOUT_MS, fromB);
    await Promise.all([src.kill(), dst.kill()]);
    const since = (gw: GatewayProcess, from: number, event: string): GatewayLogLine[] => gw.logs.slice(from).filter(isEvent(event));
    const diag = `\n${gwA.diagnostics(channels * 3)}\n${gwB.diagnostics(channels * 3)}`;
    assert.equal(since(gwA, fromA, 'channel-open').length, channels, `host-a channel-open lines${diag}`);
    assert.equal(since(gwB, fromB, 'channel-open').length, channels, `host-b channel-open lines${diag}`);
    assert.equal(closesA.length, channels, `host-a channel-close lines${diag}`);
    assert.equal(closesB.length, channels, `host-b channel-close lines${diag}`);
    assert.deepEqual(since(gwA, fromA, 'channel-refused'), [], 'host-a refused a channel');
    assert.deepEqual(since(gwB, fromB, 'channel-refused'), [], 'host-b refused a channel');

    // One session, the same id on both gateways, channels numbered 0..n-1 in arrival order.
    const sessions = new Set([...closesA, ...closesB].map((l) => l['session']));
    assert.equal(sessions.size, 1, `expected one session, got ${[...sessions].join(', ')}`);
    const byChannel = (lines: GatewayLogLine[]): Map<number, GatewayLogLine> => new Map(lines.map((l) => [Number(l['channel']), l]));
    const a = byChannel(closesA);
    const b = byChannel(closesB);
    const expected = Array.from({ length: channels }, (_, i) => i);
    assert.deepEqual([...a.keys()].sort((x, y) => x - y), expected);
    assert.deepEqual([...b.keys()].sort((x, y) => x - y), expected);

    let sent = 0;
    for (const k of expected) {
      const la = a.get(k);
      const lb = b.get(k);
      assert.ok(la !== undefined && lb !== undefined);
      assert.equal(la['cause'], 'ok', `host-a channel ${k}: ${JSON.stringify(la)}`);
      assert.equal(lb['cause'], 'ok', `host-b channel ${k}: ${JSON.stringify(lb)}`);
      assert.equal(typeof la['bytesOut'], 'number');
      // What A sent to its peer is what B received from its peer, and back.
      assert.equal(la['bytesOut'], lb['bytesIn'], `channel ${k} source->destination bytes differ`);
      assert.equal(la['bytesIn'], lb['bytesOut'], `channel ${k} destination->source bytes differ`);
      sent += Number(la['bytesOut']);
    }
    assert.ok(sent >= image.size, `only ${sent} bytes crossed the gateways`);

    const info = result.source;
    t.diagnostic(
      `${plan.mode} via gateways: ${result.elapsedMs} ms wall, total-time ${info['total-time']} ms, ` +
        `${(sent / 2 ** 20).toFixed(0)} MiB over ${channels} channel(s), ${info.ram?.mbps.toFixed(0)} Mbit/s, ` +
        `downtime ${info.downtime} ms, statuses ${result.sourceStatuses.join('>')}; ` +
        `set-up ${tReady - t0} ms, test ${Date.now() - t0} ms`,
    );
  }

  test('precopy-through-gateways', async (t) => {
    await migrateThroughGateways(t, { mode: 'precopy' }, 1);
  });

  test('multifd-4-channels-through-gateways-one-session-5-channels', async (t) => {
    await migrateThroughGateways(t, { mode: 'multifd', multifdChannels: 4 }, 5);
  });

  test('postcopy-through-gateways', async (t) => {
    await migrateThroughGateways(t, { mode: 'postcopy' }, 1);
  });

  // Last: it stops the gateways the tests above share.
  test('sigterm-stops-both-gateways-with-exit-0', async () => {
    assert.ok(gwA !== undefined && gwB !== undefined);
    const [exitA, exitB] = await Promise.all([gwA.stop(10_000), gwB.stop(10_000)]);
    assert.deepEqual(exitA, { code: 0, signal: null }, gwA.diagnostics());
    assert.deepEqual(exitB, { code: 0, signal: null }, gwB.diagnostics());
    for (const gw of [gwA, gwB]) {
      assert.ok(gw.logs.some(isEvent('stopped')), `${gw.name} logged no "stopped" line`);
      assert.deepEqual(gw.otherStdout, [], `${gw.name} wrote non-JSON lines to stdout`);
    }
  });
});
