import { constants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import { freemem } from 'node:os';
import { delimiter, join } from 'node:path';
import { VmgateError, messageOf } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { GUEST_LOAD_ADDR, QemuVm, configureMigration, migrateAndWait, randomGuestImage, type MigrationPlan, type MigrationResult, type RandomImage } from '../qemu/qemu-vm.js';
import { startLocalPair, type LocalPair } from './local-pair.js';

/**
 * The QEMU half of `vmgate demo`: a paused source guest with random data in
 * its RAM migrates to a destination QEMU through the two loopback gateways,
 * and the demo proves the memory arrived by comparing sha256 of all guest RAM
 * on both sides.
 *
 *   source QEMU --tcp--> host-a route ==TLS 1.3 + SASL==> host-b --tcp--> destination QEMU (-incoming)
 */

const QEMU_NAME = 'qemu-system-x86_64';
/** The smallest guest the demo runs: half of it is the random image, which is at least 64 MiB. */
const MIN_GUEST_MIB = 128;
/**
 * The largest guest the demo runs. From 3.5 GiB up, the pc machine splits RAM
 * around the PCI hole below 4 GiB, and the demo hashes guest-physical memory
 * from 0 as one range.
 */
const MAX_GUEST_MIB = 3072;
const MiB = 1024 * 1024;

/**
 * The QEMU binary to use, or undefined when there is none: $VMGATE_QEMU if
 * set (a path, or a name looked up on PATH), else qemu-system-x86_64 on PATH.
 * Only looks at files; never runs anything.
 */
export async function findQemu(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const wanted = env['VMGATE_QEMU'] || QEMU_NAME; // || on purpose: VMGATE_QEMU= (empty) means unset
  if (wanted.includes('/')) return (await isExecutableFile(wanted)) ? wanted : undefined;
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue; // an empty PATH entry means ".": not something to run a hypervisor from
    const candidate = join(dir, wanted);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

export interface QemuDemoOptions {
  /** The demo's work dir (PKI, configs, guest image, QMP sockets); the caller removes it. */
  dir: string;
  /** The QEMU binary (from `findQemu`). */
  qemu: string;
  /** Guest RAM in MiB (kept within MIN_GUEST_MIB..MAX_GUEST_MIB); half of it is filled with random data. */
  sizeMiB: number;
  /** The gateways' logger. */
  log: Logger;
  /** Prints one line for the operator. */
  say: (line: string) => void;
  /** Migration deadline. Default 60 s plus 100 ms per MiB of guest RAM. */
  timeoutMs?: number;
}

/**
 * Runs the migration and prints what happened. Resolves true when the
 * destination's RAM equals the source's (and holds the random image), false
 * when the migration failed or the memory differs (the reason is printed).
 * Throws when the demo cannot be set up (QEMU does not start, not enough
 * memory). Both QEMUs and both gateways are gone when it settles; on a
 * signal, the QEMUs are killed by the process-exit hooks of `QemuVm`.
 */
export async function runQemuDemo(o: QemuDemoOptions): Promise<boolean> {
  const memMiB = Math.min(Math.max(o.sizeMiB, MIN_GUEST_MIB), MAX_GUEST_MIB);
  const imageMiB = Math.floor(memMiB / 2);
  checkHostMemory(memMiB);
  const timeoutMs = o.timeoutMs ?? 60_000 + memMiB * 100;
  const plan: MigrationPlan = { mode: 'precopy' };

  const vms: QemuVm[] = [];
  let pair: LocalPair | undefined;
  try {
    if (memMiB !== o.sizeMiB) {
      const why = memMiB > o.sizeMiB ? 'the smallest' : 'the largest';
      o.say(`  (guest RAM ${o.sizeMiB} MiB -> ${memMiB} MiB, ${why} this demo runs)`);
    }
    o.say(`  guests    two paused ${memMiB} MiB guests; the source gets ${imageMiB} MiB of random data at 0x${GUEST_LOAD_ADDR.toString(16)} ...`);
    const image = await randomGuestImage(o.dir, imageMiB);
    const { src, dst } = await startGuests(o, vms, memMiB, image.path);
    const incomingPort = await prepareMigration(src, dst, plan);

    o.say('  gateways  host-a and host-b with certificates from a fresh CA and a SASL user, on 127.0.0.1 ...');
    pair = await startLocalPair({ dir: o.dir, targetConnect: `tcp:127.0.0.1:${incomingPort}`, log: o.log });
    const routePort = pair.routeAddress.port;
    o.say(`  path      source QEMU -> 127.0.0.1:${routePort} (host-a route) ==TLS 1.3 + SASL==> host-b -> 127.0.0.1:${incomingPort} (destination QEMU)`);

    o.say('  migrating (precopy) ...');
    const result = await migrateOrExplain(o, src, dst, `tcp:127.0.0.1:${routePort}`, plan, timeoutMs);
    if (result === undefined) return false;
    o.say(migratedLine(result, memMiB, imageMiB));
    return await ramArrivedIntact(o, src, dst, image, memMiB);
  } finally {
    // Together: after a completed migration no channel is open; after a failed
    // one, killing QEMU ends the channels the gateways would otherwise drain.
    const stops = await Promise.allSettled([pair?.stop(500), ...vms.map((vm) => vm.kill())]);
    for (const s of stops) if (s.status === 'rejected') o.log.warn({ event: 'demo-cleanup-failed' }, messageOf(s.reason));
  }
}

/** Starts the paused source (with the random image loaded) and the incoming destination; says which QEMU it is. */
async function startGuests(o: QemuDemoOptions, vms: QemuVm[], memMiB: number, imagePath: string): Promise<{ src: QemuVm; dst: QemuVm }> {
  const common = { binary: o.qemu, memMiB, startTimeoutMs: 30_000 };
  const src = await launch(vms, { ...common, name: 'vmgate-demo-src', workDir: await workDir(o.dir, 'qemu-src'), loadFile: imagePath });
  const dst = await launch(vms, { ...common, name: 'vmgate-demo-dst', workDir: await workDir(o.dir, 'qemu-dst'), incoming: true });
  const version = await src.qmp.execute<{ qemu: { major: number; minor: number; micro: number }; package?: string }>('query-version');
  const accel = await src.accelerator();
  const pkg = version.package?.trim() ?? '';
  const release = `${version.qemu.major}.${version.qemu.minor}.${version.qemu.micro}${pkg === '' ? '' : ` (${pkg.replace(/^\((.*)\)$/, '$1')})`}`;
  o.say(`  QEMU      ${o.qemu} ${release}, ${accel === 'kvm' ? 'KVM' : 'TCG (no KVM)'}`);
  return { src, dst };
}

/** Sets the migration capabilities on both sides and has the destination listen; returns its port. */
async function prepareMigration(src: QemuVm, dst: QemuVm, plan: MigrationPlan): Promise<number> {
  await configureMigration(src, plan);
  await configureMigration(dst, plan);
  const incomingPort = await dst.migrateIncoming('tcp:127.0.0.1:0');
  if (incomingPort === undefined) throw new Error('the destination QEMU reported no incoming port');
  return incomingPort;
}

/** The migration's result, or undefined after saying why it failed (with the last words of each QEMU). */
async function migrateOrExplain(o: QemuDemoOptions, src: QemuVm, dst: QemuVm, uri: string, plan: MigrationPlan, timeoutMs: number): Promise<MigrationResult | undefined> {
  try {
    return await migrateAndWait(src, dst, uri, plan, timeoutMs);
  } catch (e: unknown) {
    o.say(`FAILED: the migration did not complete: ${messageOf(e)}`);
    for (const vm of [src, dst]) {
      // CPUID "warning:" lines are noise; the last few other lines carry the reason.
      const said = vm.stderr().split('\n').filter((l) => l.trim() !== '' && !l.includes(' warning: ')).slice(-3);
      if (said.length > 0) o.say(`  ${vm.name} said: ${said.join(' | ')}`);
    }
    return undefined;
  }
}

/** What QEMU's query-migrate says was sent, how fast, and the downtime. */
function migratedLine(result: MigrationResult, memMiB: number, imageMiB: number): string {
  const info = result.source;
  const ram = info.ram;
  const seconds = (info['total-time'] ?? result.elapsedMs) / 1000;
  const sentMB = (ram?.transferred ?? 0) / 1e6;
  const rate = ram === undefined ? '' : `, ${(ram.mbps / 8).toFixed(0)} MB/s`;
  const downtime = info.downtime === undefined ? '' : `, downtime ${info.downtime} ms`;
  return `  migrated  the ${memMiB} MiB guest (${imageMiB} MiB random, the rest zero pages): ${sentMB.toFixed(0)} MB sent in ${seconds.toFixed(2)} s${rate}${downtime} (QEMU's query-migrate)`;
}

/** The proof: sha256 of all guest RAM equal on both sides, and the random image where it was loaded. */
async function ramArrivedIntact(o: QemuDemoOptions, src: QemuVm, dst: QemuVm, image: RandomImage, memMiB: number): Promise<boolean> {
  const [srcHash, dstHash, dstImage] = await Promise.all([
    src.ramHash(),
    dst.ramHash(),
    dst.ramHash(GUEST_LOAD_ADDR, image.size),
  ]);
  o.say(`  sha256 of guest RAM  source       ${srcHash}`);
  o.say(`                       destination  ${dstHash}`);
  if (srcHash !== dstHash) {
    o.say("FAILED: the destination guest's memory differs from the source's");
    return false;
  }
  if (dstImage !== image.sha256) {
    o.say('FAILED: the random data is not where it was loaded in the destination guest');
    return false;
  }
  o.say(`OK: the guest's memory arrived intact through both gateways (all ${memMiB} MiB identical, the random data in place)`);
  return true;
}

async function launch(vms: QemuVm[], options: Parameters<typeof QemuVm.launch>[0]): Promise<QemuVm> {
  const vm = await QemuVm.launch(options);
  vms.push(vm);
  return vm;
}

async function workDir(dir: string, name: string): Promise<string> {
  const path = join(dir, name);
  await mkdir(path, { recursive: true, mode: 0o700 });
  return path;
}

/**
 * Two preallocated guests, the image and the RAM dumps need about three
 * guests' worth of memory and page cache; refuse early and clearly rather
 * than let the OOM killer pick a QEMU.
 */
function checkHostMemory(memMiB: number): void {
  const needMiB = 2 * memMiB;
  const freeMiB = Math.floor(freemem() / MiB);
  if (needMiB > freeMiB * 0.8) {
    throw new VmgateError('not-enough-memory', `--size-mib ${memMiB}: two ${memMiB} MiB guests need about ${needMiB} MiB, this host has ${freeMiB} MiB free; pick a smaller --size-mib`);
  }
}
