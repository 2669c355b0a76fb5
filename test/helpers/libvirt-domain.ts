/**
 * Test guests for the libvirt end-to-end tests: transient, diskless domains
 * whose RAM holds a random payload, and what the tests read from them
 * (boot done, RAM hash, migration job progress).
 *
 *   await createPayloadDomain(hostA, { name: 'vm1', memMiB: 512 });   // running, SeaBIOS idle
 *   const before = await ramDigests(hostA, 'vm1', dumpDir, payloadBytes);
 *   ... virsh migrate ...
 *   assert.deepEqual(await ramDigests(hostB, 'vm1', dumpDir, payloadBytes), before);
 *
 * The payload file is named by a path inside the daemons' private
 * /var/lib/libvirt (PAYLOAD_GUEST_PATH). libvirt hands the destination QEMU
 * the same command line, so the destination loads ITS host's file there: the
 * stage puts the random payload in host A's folder and zeros in host B's, and
 * equal RAM after a migration proves the payload crossed the wire.
 */
import { createHash } from 'node:crypto';
import { accessSync, constants, createReadStream } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LibvirtDaemon, VirshRun } from './libvirt-daemon.js';

const MiB = 1024 * 1024;
/** Where the payload file is, as the daemons' QEMUs see it (a bind-mounted, per-host folder). */
export const PAYLOAD_GUEST_PATH = '/var/lib/libvirt/vmg-payload.bin';
/** Guest-physical address the payload is loaded at (16 MiB: clear of the BIOS and low memory). */
const PAYLOAD_ADDR = 0x100_0000;
/** RAM below this is left out of the hash: the idle BIOS keeps its timer tick in the BIOS data area. */
const HASH_FROM = 1 * MiB;
/** What SeaBIOS prints when it has finished setting up and found nothing to boot; from then on it only waits for interrupts. */
const BOOT_DONE = 'No bootable device';

export interface PayloadDomainOptions {
  readonly name: string;
  /** Guest RAM, MiB; must hold the payload above 16 MiB. */
  readonly memMiB: number;
}

/** Whether this machine can run KVM guests (else the domain type is "qemu": TCG). */
function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Where SeaBIOS's debug console of `name` goes, as QEMU sees it (the per-host /var/log/libvirt). */
function debugconGuestPath(name: string): string {
  return `/var/log/libvirt/${name}.debugcon`;
}

/**
 * The domain XML: no disk, no network, no USB, no balloon, the payload loaded
 * at 16 MiB by QEMU's generic loader, SeaBIOS's debug port (0x402) written to
 * a file so the test sees when booting is done, and no reboot loop after
 * "No bootable device" (rebootTimeout -1), so RAM above 1 MiB stays still.
 */
function payloadDomainXml(o: PayloadDomainOptions & { readonly kvm: boolean }): string {
  if (!/^[A-Za-z0-9_-]+$/.test(o.name)) throw new Error(`domain name must be [A-Za-z0-9_-]+, got ${JSON.stringify(o.name)}`);
  const args = [
    '-device', `loader,file=${PAYLOAD_GUEST_PATH},addr=0x${PAYLOAD_ADDR.toString(16)},force-raw=on`,
    '-chardev', `file,id=vmgdebugcon,path=${debugconGuestPath(o.name)}`,
    '-device', 'isa-debugcon,iobase=0x402,chardev=vmgdebugcon',
  ];
  return `<domain type='${o.kvm ? 'kvm' : 'qemu'}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>${o.name}</name>
  <memory unit='MiB'>${o.memMiB}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <bios rebootTimeout='-1'/>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
${args.map((a) => `    <qemu:arg value='${a}'/>`).join('\n')}
  </qemu:commandline>
</domain>
`;
}

/** Starts a transient payload domain on `daemon` and waits until its BIOS is idle. */
export async function createPayloadDomain(daemon: LibvirtDaemon, o: PayloadDomainOptions): Promise<void> {
  const xml = join(daemon.dir, `${o.name}.xml`);
  await writeFile(xml, payloadDomainXml({ ...o, kvm: kvmUsable() }));
  await daemon.virsh(['create', xml]);
  await waitForBootDone(daemon, o.name, 30_000);
}

/** Waits until the guest's BIOS has printed "No bootable device" on its debug console. */
async function waitForBootDone(daemon: LibvirtDaemon, name: string, timeoutMs: number): Promise<void> {
  const file = join(daemon.dirs.log, `${name}.debugcon`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let text = '';
    try {
      text = await readFile(file, 'latin1');
    } catch {
      // not created yet
    }
    if (text.includes(BOOT_DONE)) return;
    if (Date.now() > deadline) throw new Error(`domain ${name} on ${daemon.name}: BIOS not done after ${timeoutMs} ms (debug console: ${JSON.stringify(text.slice(-300))})\n${await daemon.qemuLog(name)}`);
    await sleep(50);
  }
}

export interface RamDigests {
  /** sha256 of guest RAM from 1 MiB to its end. */
  readonly ram: string;
  /** sha256 of the payload's range of guest RAM. */
  readonly payload: string;
}

/**
 * Dumps guest RAM from 1 MiB to the end with `virsh qemu-monitor-command
 * --hmp pmemsave` into `dumpDir` (a folder QEMU and the test both see) and
 * hashes, in one pass, all of it and the payload's range. The dump is
 * deleted afterwards.
 */
export async function ramDigests(daemon: LibvirtDaemon, name: string, memMiB: number, payloadBytes: number, dumpDir: string): Promise<RamDigests> {
  const file = join(dumpDir, `${name}-${daemon.name}-${Date.now()}.ram`);
  const size = memMiB * MiB - HASH_FROM;
  try {
    const out = await daemon.virsh(['qemu-monitor-command', name, '--hmp', `pmemsave 0x${HASH_FROM.toString(16)} 0x${size.toString(16)} "${file}"`]);
    // HMP reports errors as text with exit status 0; success prints nothing.
    if (out.trim() !== '') throw new Error(`pmemsave on ${daemon.name} said: ${out.trim()}`);
    const ram = createHash('sha256');
    const payload = createHash('sha256');
    const payloadStart = PAYLOAD_ADDR - HASH_FROM;
    const payloadEnd = payloadStart + payloadBytes;
    let at = 0;
    for await (const chunk of createReadStream(file, { highWaterMark: 4 * MiB })) {
      const b = chunk as Buffer;
      ram.update(b);
      const from = Math.max(payloadStart, at);
      const to = Math.min(payloadEnd, at + b.length);
      if (from < to) payload.update(b.subarray(from - at, to - at));
      at += b.length;
    }
    if (at !== size) throw new Error(`${file}: pmemsave wrote ${at} bytes, expected ${size}`);
    return { ram: ram.digest('hex'), payload: payload.digest('hex') };
  } finally {
    await rm(file, { force: true });
  }
}

export interface JobInfo {
  /** "Unbounded" while a migration runs, "None" otherwise. */
  readonly type: string;
  /** "Data processed", bytes (0 when not shown). */
  readonly dataProcessed: number;
}

const UNITS: Readonly<Record<string, number>> = { B: 1, KiB: 1024, MiB: MiB, GiB: 1024 * MiB, TiB: 1024 * 1024 * MiB };

/** `virsh domjobinfo NAME`, parsed. */
export async function jobInfo(daemon: LibvirtDaemon, name: string): Promise<JobInfo> {
  const out = await daemon.virsh(['domjobinfo', name]);
  const field = (label: string): string | undefined => new RegExp(`^${label}:\\s*(.+)$`, 'm').exec(out)?.[1]?.trim();
  const data = /^([\d.]+)\s*(\w+)$/.exec(field('Data processed') ?? '');
  const dataProcessed = data === null ? 0 : Math.round(Number(data[1]) * (UNITS[data[2] ?? ''] ?? Number.NaN));
  if (Number.isNaN(dataProcessed)) throw new Error(`domjobinfo ${name}: unreadable "Data processed" in:\n${out}`);
  return { type: field('Job type') ?? 'None', dataProcessed };
}

/**
 * Waits until the migration job of `name` on `daemon` has processed at least
 * `bytes`: the migration is really under way. Throws if `run` (the virsh
 * migrate command) ends first.
 */
export async function waitForJobData(daemon: LibvirtDaemon, name: string, bytes: number, run: VirshRun, timeoutMs: number): Promise<JobInfo> {
  let ended = false;
  void run.done.then(() => {
    ended = true;
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (ended) {
      const r = await run.done;
      throw new Error(`virsh migrate ended (exit ${r.code}) before ${(bytes / MiB).toFixed(0)} MiB were sent: slow it down further. ${r.stderr.trim()}`);
    }
    const info = await jobInfo(daemon, name);
    if (info.type === 'Unbounded' && info.dataProcessed >= bytes) return info;
    if (Date.now() > deadline) throw new Error(`migration of ${name} had sent ${info.dataProcessed} bytes after ${timeoutMs} ms (job ${info.type})`);
    await sleep(100);
  }
}
