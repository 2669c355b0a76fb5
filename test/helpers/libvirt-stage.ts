/**
 * The libvirt end-to-end stage: two "hosts" as operators run them, on one
 * machine.
 *
 *   host A (netns vmg-a-*)                          host B (netns vmg-b-*)
 *   libvirtd A ── source QEMU                        libvirtd B ── destination QEMU
 *                   │ tcp 127.0.0.1:49152                              ▲ 127.0.0.1:49152
 *                   ▼                                                  │
 *   vmgate host-a (route "to-b") ══ TLS 1.3 over the veth ══> vmgate host-b (target "incoming")
 *
 * libvirtd A reaches libvirtd B for `--p2p` over B's unix socket (a path both
 * namespaces see); the migration stream itself goes only through vmgate:
 * `--migrateuri tcp://127.0.0.1:49152` makes the source QEMU connect to its
 * local gateway, `--listen-address 127.0.0.1` makes the destination QEMU
 * listen where B's gateway connects.
 *
 *   const stage = await startLibvirtStage({ subnet: '10.250.60.0/30', tag: 'migrate' });
 *   const before = await stage.startDomain('vm1');                  // on A, RAM digests
 *   const r = await stage.migrate('vm1', ['--parallel']).done;     // virsh migrate --live --p2p ...
 *   assert.deepEqual(await stage.digests(stage.hostB, 'vm1'), before);
 *   await stage.close();   // domains, daemons, gateways, tcpdump, namespaces, temp dir
 *
 * Today a route is one fixed port, so the migration URI names it. With port
 * ranges: `local: 'tcp:127.0.0.1:49152-49215'`, `migrateUri: 'tcp://127.0.0.1'`
 * and `qemu: { migrationPorts: { min: 49152, max: 49215 } }`; several
 * domains migrate at once with several `migrate(...)` runs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { GatewayProcess, addUser, writeGatewayConfig, writeSecretFile } from './gateway-process.js';
import type { QemuConfOptions } from './libvirt-config.js';
import { LibvirtDaemon, type VirshRun } from './libvirt-daemon.js';
import { PAYLOAD_GUEST_PATH, createPayloadDomain, ramDigests, type RamDigests } from './libvirt-domain.js';
import { createNetnsPair, leftoverNamespaces, onProcessExit, type NetnsPair } from './netns.js';
import { startCapture, type Capture } from './packet-capture.js';
import { createCa, issueCertificate, publishCrl } from '../../src/pki/index.js';
import { TEST_KEY_BITS } from './pki.js';
import { randomGuestImage } from './qemu.js';
import { requireTool } from './require-tool.js';

/** The route's local port on A and the destination QEMU's port on B (one fixed port: what a route is today). */
const ROUTE_PORT = 49152;
const LOOPBACK = '127.0.0.1';
const GATEWAY_PORT = 7443;
const MiB = 1024 * 1024;

export interface AllowEntry {
  readonly peer: string;
  readonly user: string;
}

export interface LibvirtStageOptions {
  /** A /30 inside 10.250.0.0/16 (see createNetnsPair). */
  readonly subnet: string;
  /** Short label for the temp dir. */
  readonly tag: string;
  /** Host B's allow-list for target "incoming". Default: host-a as user "migrate" (everything passes). */
  readonly allow?: readonly AllowEntry[];
  /** Random payload in guest RAM, MiB. Default 256. */
  readonly payloadMiB?: number;
  /**
   * The route's `listen` on A and the target's `connect` on B. Default
   * tcp:127.0.0.1:49152 (a route is one fixed port today); a port range goes
   * here once routes take one.
   */
  readonly local?: string;
  /**
   * virsh's --migrateuri. Default tcp://127.0.0.1:49152, the route's port.
   * With a port range: tcp://127.0.0.1, and libvirt picks the port from
   * `qemu.migrationPorts`.
   */
  readonly migrateUri?: string;
  /**
   * virsh's --listen-address: where the destination QEMU listens (the
   * target's address on B). Default 127.0.0.1; docs/libvirt.md gives each
   * destination host an address of its own, such as 127.0.0.2.
   */
  readonly listenAddress?: string;
  /** qemu.conf options of both daemons (migration_port_min/max for a port range). */
  readonly qemu?: QemuConfOptions;
  /** Guest RAM, MiB. Default 384: the payload at 16 MiB, room above it for the BIOS's tables. */
  readonly guestMiB?: number;
}

export interface LibvirtStage {
  readonly net: NetnsPair;
  readonly dir: string;
  readonly hostA: LibvirtDaemon;
  readonly hostB: LibvirtDaemon;
  readonly gwA: GatewayProcess;
  readonly gwB: GatewayProcess;
  readonly guestMiB: number;
  /** Size and sha256 of the random payload in every guest's RAM. */
  readonly payload: { readonly size: number; readonly sha256: string };
  /** virsh migrate options that send the stream through vmgate. */
  migrationArgs(): string[];
  /** Starts payload domain `name` on host A (BIOS idle) and returns its RAM digests. */
  startDomain(name: string): Promise<RamDigests>;
  /** RAM digests of `name` on `host`. */
  digests(host: LibvirtDaemon, name: string): Promise<RamDigests>;
  /** `virsh migrate --live --p2p NAME <B's URI> <migrationArgs> ...extra` on host A, running. */
  migrate(name: string, extra?: readonly string[]): VirshRun;
  /** A tcpdump of the veth in host A's namespace (the hop between the hosts). */
  capture(label: string): Promise<Capture>;
  /** Removes everything the stage made; asserts no namespace is left. */
  close(): Promise<void>;
}

export async function startLibvirtStage(o: LibvirtStageOptions): Promise<LibvirtStage> {
  requireTool('virsh', 'libvirt-clients');
  requireTool('libvirtd', 'libvirt-daemon');
  requireTool('tcpdump', 'tcpdump');
  const guestMiB = o.guestMiB ?? 384;
  const net = await createNetnsPair({ subnet: o.subnet });
  const dir = await mkdtemp(join(tmpdir(), `vmg-libvirt-${o.tag}-`));
  const forgetDir = onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
  const daemons: LibvirtDaemon[] = [];
  const gateways: GatewayProcess[] = [];
  const captures: Capture[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(daemons.map((d) => d.stop()));
    await Promise.all(gateways.map((gw) => gw.stop()));
    await Promise.all(captures.map((c) => c.kill()));
    await net.destroy();
    await rm(dir, { recursive: true, force: true });
    forgetDir();
    assert.deepEqual(leftoverNamespaces().filter((ns) => ns === net.a || ns === net.b), [], 'network namespaces left over');
  };
  try {
    const dumps = join(dir, 'dumps');
    await mkdir(dumps);
    // Independent, slow parts side by side; each is registered for close() as soon as it exists.
    const daemon = async (name: string, netns: string, sub: string): Promise<LibvirtDaemon> => {
      const d = await LibvirtDaemon.start({ name, netns, dir: join(dir, sub), ...(o.qemu === undefined ? {} : { qemu: o.qemu }) });
      daemons.push(d);
      return d;
    };
    // allSettled, not all: on a failure, close() must not run while another part is still starting.
    const [hostA, hostB, image, [gwA, gwB]] = await allSettledOrThrow([
      daemon('host-a', net.a, 'libvirt-a'),
      daemon('host-b', net.b, 'libvirt-b'),
      randomGuestImage(dir, o.payloadMiB ?? 256),
      startGatewayPair(net, join(dir, 'gateways'), o.local ?? `tcp:${LOOPBACK}:${ROUTE_PORT}`, o.allow, (gw) => gateways.push(gw)),
    ] as const);

    // The payload where host A's QEMUs look for it; zeros of the same size where host B's do.
    const payloadFile = basename(PAYLOAD_GUEST_PATH);
    await rename(image.path, join(hostA.dirs.lib, payloadFile));
    await writeFile(join(hostB.dirs.lib, payloadFile), '');
    await truncate(join(hostB.dirs.lib, payloadFile), image.size);

    const migrationArgs = (): string[] => ['--migrateuri', o.migrateUri ?? `tcp://${LOOPBACK}:${ROUTE_PORT}`, '--listen-address', o.listenAddress ?? LOOPBACK];
    return {
      net, dir, hostA, hostB, gwA, gwB, guestMiB, close, migrationArgs,
      payload: { size: image.size, sha256: image.sha256 },
      startDomain: async (name) => {
        await createPayloadDomain(hostA, { name, memMiB: guestMiB });
        return ramDigests(hostA, name, guestMiB, image.size, dumps);
      },
      digests: (host, name) => ramDigests(host, name, guestMiB, image.size, dumps),
      migrate: (name, extra = []) => hostA.spawnVirsh(['migrate', '--live', '--p2p', name, hostB.uri, ...migrationArgs(), ...extra]),
      capture: async (label) => {
        const c = await startCapture({ netns: net.a, ifname: net.ifname, file: join(dir, `${label}.pcap`) });
        captures.push(c);
        return c;
      },
    };
  } catch (e: unknown) {
    await close();
    throw e;
  }
}

/**
 * vmgate host-a in A with route "to-b" listening on `local`, vmgate host-b in
 * B with target "incoming" connecting to `local`; throwaway PKI,
 * user "migrate" with a random password.
 */
async function startGatewayPair(
  net: NetnsPair,
  dir: string,
  local: string,
  allow: readonly AllowEntry[] | undefined,
  started: (gw: GatewayProcess) => void,
): Promise<[GatewayProcess, GatewayProcess]> {
  const pki = await twoHostPki(join(dir, 'pki'));
  const dirA = join(dir, 'a');
  const dirB = join(dir, 'b');
  await mkdir(dirA, { recursive: true });
  await mkdir(dirB, { recursive: true });
  const password = randomBytes(24).toString('base64url');
  await addUser({ store: join(dirB, 'users.json'), user: 'migrate', password });
  await writeSecretFile(join(dirA, 'to-b.password'), password);
  await writeGatewayConfig(join(dirB, 'gateway.yaml'), {
    name: 'host-b',
    tls: { dir: pki.hostB },
    control: { socket: join(dirB, 'control.sock') },
    server: {
      listen: `${net.addrB}:${GATEWAY_PORT}`,
      credentials: './users.json',
      targets: { incoming: { connect: local, allow: [...(allow ?? [{ peer: 'host-a', user: 'migrate' }])] } },
    },
  });
  await writeGatewayConfig(join(dirA, 'gateway.yaml'), {
    name: 'host-a',
    tls: { dir: pki.hostA },
    control: { socket: join(dirA, 'control.sock') },
    routes: {
      'to-b': { listen: local, peer: `${net.addrB}:${GATEWAY_PORT}`, peerName: 'host-b', target: 'incoming', user: 'migrate', passwordFile: './to-b.password' },
    },
  });
  const gwB = await GatewayProcess.start({ configPath: join(dirB, 'gateway.yaml'), netns: net.b, name: 'host-b' });
  started(gwB);
  const gwA = await GatewayProcess.start({ configPath: join(dirA, 'gateway.yaml'), netns: net.a, name: 'host-a' });
  started(gwA);
  return [gwA, gwB];
}

/** Like Promise.all, but settles only when every promise has: then throws the first failure. */
async function allSettledOrThrow<T extends readonly unknown[]>(promises: { readonly [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

/** A throwaway CA and certificates for host-a and host-b (QEMU's tls-creds-x509 folder layout). */
async function twoHostPki(root: string): Promise<{ hostA: string; hostB: string }> {
  const caDir = join(root, 'ca');
  const weak = { keyBits: TEST_KEY_BITS, allowWeakKeyForTests: true } as const;
  await createCa({ dir: caDir, commonName: 'vmgate libvirt test CA', ...weak });
  const host = async (cn: string): Promise<string> => {
    await issueCertificate({ caDir, outDir: join(root, cn), commonName: cn, dns: [cn], ips: [LOOPBACK], ...weak });
    return join(root, cn);
  };
  const [hostA, hostB] = await Promise.all([host('host-a'), host('host-b')]);
  await publishCrl({ caDir, to: [hostA, hostB] });
  return { hostA, hostB };
}

export { MiB };
