/**
 * The end-to-end stage: two "hosts" (network namespaces joined by a veth
 * link), a gateway process in each, and real QEMUs on both sides.
 *
 *   host A: source QEMU --migrate tcp:127.0.0.1:49152--> gateway host-a (route "to-b")
 *   host B: gateway host-b (target "incoming") --connects--> destination QEMU on 127.0.0.1:49152
 *
 *   const stage = await startNetnsGateways({ subnet: '10.250.40.0/30', tag: 'cancel', channel: { stallTimeoutMs: 2_000 } });
 *   const src = await stage.source('src', { running: true, plan: { mode: 'precopy' } });
 *   const dst = await stage.destination('dst', { plan: { mode: 'precopy' } });   // listening already
 *   await src.migrate(QEMU_URI);
 *   ...
 *   await stage.close();   // QEMUs, gateways, namespaces, temp dir; fails if a namespace is left over
 *
 * Each gateway has a control socket (`stage.controlA` / `stage.controlB`) for
 * `vmgate sessions|cancel|status`; paths in the filesystem work across
 * namespaces, so the CLI runs from the test's own namespace.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GatewayProcess, addUser, writeGatewayConfig, writeSecretFile, type GatewayLogLine } from './gateway-process.js';
import { createNetnsPair, leftoverNamespaces, onProcessExit, type KilledConnection, type NetnsPair, type NetnsPath } from './netns.js';
import { makeTestPki, type TestPki } from './pki.js';
import { QemuVm, configureMigration, randomGuestImage, type MigrationPlan, type RandomImage } from './qemu.js';
import { MIGRATION_FINAL_STATES, type MigrationInfo } from './qmp.js';

/** Route listener in A and destination QEMU in B: the same port, in different namespaces. */
export const QEMU_PORT = 49152;
/** What the source QEMU migrates to (its local gateway), and what the destination QEMU listens on. */
export const QEMU_URI = `tcp:127.0.0.1:${QEMU_PORT}`;
const GATEWAY_PORT = 7443;
const MiB = 1024 * 1024;

/** A source slowed to this (max-bandwidth) is still sending seconds after it starts: time to break something mid-migration. */
export const SLOW_BANDWIDTH = 64 * MiB;
/** "Mid-migration": the source has sent this much of its RAM and is still active. */
export const MID_MIGRATION_BYTES = 24 * MiB;
/** QEMU counts bytes that still sit in socket buffers; at least this much has passed the source gateway by then. */
export const RELAYED_AT_LEAST = MID_MIGRATION_BYTES / 2;

export const isChannelClose = (l: GatewayLogLine): boolean => l.event === 'channel-close';

export interface NetnsGatewaysOptions {
  /** A /30 inside 10.250.0.0/16 (see createNetnsPair). */
  readonly subnet: string;
  /** Short label for the temp dir. */
  readonly tag: string;
  /** Guest RAM of every QEMU, MiB. Default 512. */
  readonly guestMiB?: number;
  /** Random data loaded into source guests, MiB. Default 256. */
  readonly imageMiB?: number;
  /** The `channel:` section of both configs (stallTimeoutMs, closeGraceMs, ...). */
  readonly channel?: Readonly<Record<string, number>>;
  /** The `workers` setting of both gateways. Default: absent (one process). */
  readonly workers?: number;
  /**
   * A port range for the route (on A) and the target (on B) instead of the
   * one port QEMU_PORT: `ports` ports from QEMU_PORT, one migration per port,
   * as libvirt uses them (docs/libvirt.md).
   */
  readonly ports?: number;
  /**
   * A second veth path (see createNetnsPair's secondSubnet). Gateway B then
   * listens on 0.0.0.0:GATEWAY_PORT, so it answers on both paths' addresses;
   * name them in the route with `route`.
   */
  readonly secondSubnet?: string;
  /**
   * Extra keys for route "to-b" (merged over the defaults; `peer` is
   * path 0's address), given the paths and the gateway port, e.g. a list of
   * peer paths: `route: (paths, port) => ({ peer: paths.map((p) => `${p.addrB}:${port}`) })`.
   */
  readonly route?: (paths: readonly NetnsPath[], gatewayPort: number) => Readonly<Record<string, unknown>>;
}

export interface KillHopOptions {
  /** The namespace whose sockets are destroyed: 'a' (the route's gateway, default) or 'b' (the server). */
  readonly side?: 'a' | 'b';
  /** Only the hop connections over this path (its B address); default: every path. */
  readonly path?: number;
}

export interface GuestOptions {
  readonly plan: MigrationPlan;
  /** Source only: `cont` the guest, so it is "running" rather than "prelaunch". */
  readonly running?: boolean;
  /** Destination only: listen on this port of the range instead of QEMU_PORT. */
  readonly port?: number;
}

export interface NetnsGateways {
  readonly net: NetnsPair;
  readonly dir: string;
  readonly pki: TestPki;
  readonly image: RandomImage;
  readonly gwA: GatewayProcess;
  readonly gwB: GatewayProcess;
  readonly configA: string;
  readonly configB: string;
  readonly controlA: string;
  readonly controlB: string;
  /** A source QEMU in A with the random image loaded, configured for `plan`. */
  source(name: string, o: GuestOptions): Promise<QemuVm>;
  /** A destination QEMU in B, configured for `plan`, listening on QEMU_URI (or `port`). */
  destination(name: string, o: GuestOptions): Promise<QemuVm>;
  /**
   * Destroys the gateway hop's TCP connections (`ss -K`, see NetnsPair.killConnections):
   * in A those to B's gateway port, in B those from it. Resolves with what was destroyed.
   */
  killHop(o?: KillHopOptions): Promise<KilledConnection[]>;
  /** Kills every QEMU and gateway, removes the namespaces and the temp dir. */
  close(): Promise<void>;
}

export async function startNetnsGateways(o: NetnsGatewaysOptions): Promise<NetnsGateways> {
  const guestMiB = o.guestMiB ?? 512;
  const net = await createNetnsPair({ subnet: o.subnet, ...(o.secondSubnet === undefined ? {} : { secondSubnet: o.secondSubnet }) });
  const dir = await mkdtemp(join(tmpdir(), `vmg-e2e-${o.tag}-`));
  const forgetDir = onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
  const vms: QemuVm[] = [];
  const gateways: GatewayProcess[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(vms.map((vm) => vm.kill()));
    await Promise.all(gateways.map((gw) => gw.stop()));
    await net.destroy();
    await rm(dir, { recursive: true, force: true });
    forgetDir();
    const left = leftoverNamespaces().filter((ns) => ns === net.a || ns === net.b);
    assert.deepEqual(left, [], 'network namespaces left over');
  };
  try {
    const image = await randomGuestImage(dir, o.imageMiB ?? 256);
    const pki = await makeTestPki(join(dir, 'pki'));
    const dirA = join(dir, 'a');
    const dirB = join(dir, 'b');
    await mkdir(dirA);
    await mkdir(dirB);
    const password = randomBytes(24).toString('base64url');
    await addUser({ store: join(dirB, 'users.json'), user: 'migrate', password });
    await writeSecretFile(join(dirA, 'to-b.password'), password);
    const local = o.ports === undefined ? QEMU_URI : `tcp:127.0.0.1:${QEMU_PORT}-${QEMU_PORT + o.ports - 1}`;
    const channel = { ...(o.channel === undefined ? {} : { channel: o.channel }), ...(o.workers === undefined ? {} : { workers: o.workers }) };
    const configA = join(dirA, 'gateway.yaml');
    const configB = join(dirB, 'gateway.yaml');
    const controlA = join(dirA, 'control.sock');
    const controlB = join(dirB, 'control.sock');
    await writeGatewayConfig(configB, {
      name: 'host-b',
      tls: { dir: pki.hostB },
      control: { socket: controlB },
      ...channel,
      server: {
        listen: `${o.secondSubnet === undefined ? net.addrB : '0.0.0.0'}:${GATEWAY_PORT}`,
        credentials: './users.json',
        targets: { incoming: { connect: local, allow: [{ peer: 'host-a', user: 'migrate' }] } },
      },
    });
    await writeGatewayConfig(configA, {
      name: 'host-a',
      tls: { dir: pki.hostA },
      control: { socket: controlA },
      ...channel,
      routes: {
        'to-b': {
          listen: local, peer: `${net.addrB}:${GATEWAY_PORT}`, peerName: 'host-b', target: 'incoming', user: 'migrate', passwordFile: './to-b.password',
          ...o.route?.(net.paths, GATEWAY_PORT),
        },
      },
    });
    const gwB = await GatewayProcess.start({ configPath: configB, netns: net.b, name: 'host-b' });
    gateways.push(gwB);
    const gwA = await GatewayProcess.start({ configPath: configA, netns: net.a, name: 'host-a' });
    gateways.push(gwA);

    const launch = async (name: string, netns: string, extra: { loadFile?: string; incoming?: boolean }, plan: MigrationPlan): Promise<QemuVm> => {
      const vm = await QemuVm.launch({ name, netns, memMiB: guestMiB, ...extra });
      vms.push(vm);
      await configureMigration(vm, plan);
      return vm;
    };
    const killHop = (k: KillHopOptions = {}): Promise<KilledConnection[]> => {
      const addr = k.path === undefined ? undefined : net.paths[k.path]?.addrB;
      if (k.path !== undefined && addr === undefined) return Promise.reject(new Error(`no path ${k.path}: the stage has ${net.paths.length}`));
      const only = addr === undefined ? {} : k.side === 'b' ? { src: addr } : { dst: addr };
      return k.side === 'b'
        ? net.killConnections(net.b, { sport: GATEWAY_PORT, ...only })
        : net.killConnections(net.a, { dport: GATEWAY_PORT, ...only });
    };
    return {
      net, dir, pki, image, gwA, gwB, configA, configB, controlA, controlB, close, killHop,
      source: async (name, g) => {
        const vm = await launch(name, net.a, { loadFile: image.path }, g.plan);
        if (g.running === true) {
          await vm.qmp.execute('cont');
          await vm.qmp.waitForRunState(['running'], 10_000);
        }
        return vm;
      },
      destination: async (name, g) => {
        const vm = await launch(name, net.b, { incoming: true }, g.plan);
        await vm.migrateIncoming(g.port === undefined ? QEMU_URI : `tcp:127.0.0.1:${g.port}`);
        return vm;
      },
    };
  } catch (e: unknown) {
    await close();
    throw e;
  }
}

/**
 * Waits until the source has sent at least `bytes` of RAM and is still
 * "active": the migration is really under way. Throws if it ends first.
 */
export async function waitForTransferred(vm: QemuVm, bytes: number, timeoutMs: number): Promise<MigrationInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await vm.qmp.queryMigrate();
    const status = info.status ?? 'none';
    if (status === 'active' && (info.ram?.transferred ?? 0) >= bytes) return info;
    if (MIGRATION_FINAL_STATES.has(status)) {
      throw new Error(`migration ended "${status}" before ${(bytes / MiB).toFixed(0)} MiB were sent (${info['error-desc'] ?? ''}); slow it down further`);
    }
    if (Date.now() > deadline) throw new Error(`only ${info.ram?.transferred ?? 0} bytes sent after ${timeoutMs} ms (status ${status})`);
    await sleep(20);
  }
}

/**
 * Waits until the source's ram.transferred has not moved for `quietMs`: every
 * buffer between it and a destination that stopped reading is full and its
 * migration thread is blocked in a write. Returns the last query-migrate.
 */
export async function waitUntilSourceBlocked(vm: QemuVm, quietMs: number, timeoutMs: number): Promise<MigrationInfo> {
  const deadline = Date.now() + timeoutMs;
  let last = await vm.qmp.queryMigrate();
  let since = Date.now();
  for (;;) {
    await sleep(50);
    const info = await vm.qmp.queryMigrate();
    if (info.status !== 'active') throw new Error(`migration is "${info.status ?? 'none'}" while waiting for it to block (${info['error-desc'] ?? ''})`);
    if (info.ram?.transferred !== last.ram?.transferred) {
      last = info;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) {
      return info;
    }
    if (Date.now() > deadline) throw new Error(`the source kept sending for ${timeoutMs} ms (${info.ram?.transferred ?? 0} bytes)`);
  }
}

/** The first MIGRATION event with this status, as epoch milliseconds from QEMU's own timestamp. */
export async function migrationEventTime(vm: QemuVm, status: string, timeoutMs: number): Promise<number> {
  const e = await vm.qmp.waitForEvent('MIGRATION', timeoutMs, (ev) => ev.data['status'] === status);
  return e.timestamp.seconds * 1000 + e.timestamp.microseconds / 1000;
}

const LEGACY_END = 1 * MiB;

/**
 * sha256 of guest RAM from 1 MiB up, for comparing a *running* guest's
 * source and destination. Measured on QEMU 7.2 + KVM with a direct migration,
 * no gateways: a running SeaBIOS changes a byte in its shadow area (the
 * 0xe8000 page) through the PAM alias, which dirty logging misses, so that
 * page can differ after any migration of a running guest. The random image
 * sits at 16 MiB, well inside the compared range. Paused guests compare all
 * of RAM (`vm.ramHash()`).
 */
export function ramHashAboveLegacy(vm: QemuVm): Promise<string> {
  return vm.ramHash(LEGACY_END, vm.memMiB * MiB - LEGACY_END);
}
