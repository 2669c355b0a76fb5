/**
 * Real QEMU for `vmgate demo` and the end-to-end tests: launch a paused x86
 * guest (optionally in a network namespace), fill part of its RAM with random
 * data, migrate it, and compare guest memory by hash.
 *
 *   const image = await randomGuestImage(dir);                    // 256 MiB random file + its sha256
 *   const src = await QemuVm.launch({ name: 'src', netns: net.a, loadFile: image.path });
 *   const dst = await QemuVm.launch({ name: 'dst', netns: net.b, incoming: true });
 *   const plan = { mode: 'multifd', multifdChannels: 4 } as const;
 *   await configureMigration(src, plan);  await configureMigration(dst, plan);
 *   const port = await dst.migrateIncoming('tcp:10.250.1.2:0');   // port 0: QEMU picks, we read it back
 *   const result = await migrateAndWait(src, dst, `tcp:10.250.1.2:${port}`, plan, 60_000);
 *   assert.equal(await dst.ramHash(), await src.ramHash());
 *   await src.kill(); await dst.kill();                            // also done at process exit
 *
 * Facts of QEMU 7.2 this file works with (docs/design.md, "Facts that bite"):
 * - a destination's -incoming port takes ANY connection as the migration
 *   stream, so readiness is read from /proc/<pid>/net/tcp and QMP, never probed;
 * - max-bandwidth defaults to 128 MiB/s, so `configureMigration` raises it;
 * - postcopy together with multifd is unsupported (a MigrationPlan has one mode);
 * - "completed" precedes the statistics (QmpClient.waitForMigration waits for them).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomFill } from 'node:crypto';
import { createReadStream, rmSync } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { onProcessExit } from '../util/process-exit.js';
import { QmpClient, type MigrationInfo } from './qmp.js';

const randomFillAsync = promisify(randomFill);

/** The QEMU binary `launch` runs unless told otherwise: $VMGATE_QEMU, else qemu-system-x86_64 from PATH. */
export const QEMU_BINARY = process.env['VMGATE_QEMU'] ?? 'qemu-system-x86_64';
/** Guest-physical address where `loadFile` is placed (16 MiB, clear of BIOS and low memory). */
export const GUEST_LOAD_ADDR = 0x100_0000;
const MiB = 1024 * 1024;

export interface QemuLaunchOptions {
  /** Label used in the temp dir name, `-name` and error messages. Default "vm". */
  readonly name?: string;
  /** The QEMU binary (a path, or a name looked up on PATH). Default `QEMU_BINARY`. */
  readonly binary?: string;
  /** Run inside this network namespace (`ip netns exec`). Default: the current one. */
  readonly netns?: string;
  /** Guest RAM in MiB. Default 512. */
  readonly memMiB?: number;
  /** Raw file loaded into guest RAM at `GUEST_LOAD_ADDR` (`-device loader,force-raw=on`). */
  readonly loadFile?: string;
  /** Start with `-incoming defer`: set capabilities, then call `migrateIncoming`. */
  readonly incoming?: boolean;
  /** Accelerators in order of preference. Default ["kvm", "tcg"] (TCG when /dev/kvm does not work). */
  readonly accel?: readonly string[];
  /** Appended to the command line as is (e.g. `-object tls-creds-x509,...`). */
  readonly extraArgs?: readonly string[];
  /** Directory for the QMP socket and memory dumps. Default: a fresh temp dir, removed by `kill()`. */
  readonly workDir?: string;
  /** How long to wait for QMP to come up. Default 15 s. */
  readonly startTimeoutMs?: number;
}

export interface QemuExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** One running QEMU process and its QMP connection. */
export class QemuVm {
  readonly name: string;
  readonly netns: string | undefined;
  readonly memMiB: number;
  readonly workDir: string;
  readonly qmp: QmpClient;
  readonly pid: number;
  readonly argv: readonly string[];
  /** Settles when the process has exited. */
  readonly exited: Promise<QemuExit>;
  private readonly child: ChildProcess;
  private readonly ownsWorkDir: boolean;
  private readonly stderrChunks: string[];
  private readonly unregisterExit: () => void;
  private killed = false;

  private constructor(init: {
    name: string;
    netns: string | undefined;
    memMiB: number;
    workDir: string;
    ownsWorkDir: boolean;
    qmp: QmpClient;
    child: ChildProcess;
    argv: readonly string[];
    exited: Promise<QemuExit>;
    stderrChunks: string[];
    unregisterExit: () => void;
  }) {
    this.name = init.name;
    this.netns = init.netns;
    this.memMiB = init.memMiB;
    this.workDir = init.workDir;
    this.ownsWorkDir = init.ownsWorkDir;
    this.qmp = init.qmp;
    this.child = init.child;
    this.pid = init.child.pid ?? -1;
    this.argv = init.argv;
    this.exited = init.exited;
    this.stderrChunks = init.stderrChunks;
    this.unregisterExit = init.unregisterExit;
  }

  /** Starts QEMU paused (`-S`) and connects QMP. On any failure the process is killed. */
  static async launch(options: QemuLaunchOptions = {}): Promise<QemuVm> {
    const name = options.name ?? 'vm';
    const memMiB = options.memMiB ?? 512;
    const ownsWorkDir = options.workDir === undefined;
    const workDir = options.workDir ?? (await mkdtemp(join(tmpdir(), `vmg-qemu-${name}-`)));
    const qmpPath = join(workDir, 'qmp.sock');
    const binary = options.binary ?? QEMU_BINARY;
    const args = [
      '-name', qemuOptValue(name),
      ...(options.accel ?? ['kvm', 'tcg']).flatMap((a) => ['-accel', a]),
      '-machine', 'pc',
      '-m', String(memMiB),
      '-S',
      '-nodefaults',
      '-display', 'none',
      '-serial', 'none',
      '-mem-prealloc',
      '-qmp', `unix:${qemuOptValue(qmpPath)},server=on,wait=off`,
    ];
    if (options.loadFile !== undefined) {
      args.push('-device', `loader,file=${qemuOptValue(options.loadFile)},addr=0x${GUEST_LOAD_ADDR.toString(16)},force-raw=on`);
    }
    if (options.incoming === true) args.push('-incoming', 'defer');
    args.push(...(options.extraArgs ?? []));

    const argv = options.netns === undefined ? [binary, ...args] : ['ip', 'netns', 'exec', options.netns, binary, ...args];
    const [command, ...commandArgs] = argv as [string, ...string[]];
    // Own process group, so that kill(-pid) takes everything `ip netns exec` started.
    const child = spawn(command, commandArgs, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    const stderrChunks: string[] = [];
    let stderrSize = 0;
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderrChunks.push(chunk);
      stderrSize += chunk.length;
      while (stderrSize > 64 * 1024 && stderrChunks.length > 1) stderrSize -= stderrChunks.shift()?.length ?? 0;
    });
    let spawnError: Error | undefined;
    const exited = new Promise<QemuExit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', (e) => {
        spawnError = e;
        resolve({ code: null, signal: null });
      });
    });
    const killGroup = (): void => {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const unregisterExit = onProcessExit(() => {
      killGroup();
      if (ownsWorkDir) rmSync(workDir, { recursive: true, force: true });
    });

    let qmp: QmpClient;
    try {
      const timeoutMs = options.startTimeoutMs ?? 15_000;
      const early = exited.then((x) => {
        if (spawnError !== undefined) throw new Error(`QEMU ${name}: could not run ${argv[0] ?? binary}: ${spawnError.message}`, { cause: spawnError });
        throw new Error(`QEMU ${name} exited during start (code ${x.code}, signal ${x.signal}): ${stderrChunks.join('').trim()}`);
      });
      qmp = await Promise.race([QmpClient.connect(qmpPath, { timeoutMs }), early]);
      early.catch(() => undefined);
    } catch (e: unknown) {
      killGroup();
      await exited;
      unregisterExit();
      if (ownsWorkDir) await rm(workDir, { recursive: true, force: true });
      throw e;
    }
    return new QemuVm({ name, netns: options.netns, memMiB, workDir, ownsWorkDir, qmp, child, argv, exited, stderrChunks, unregisterExit });
  }

  /** What QEMU wrote to stderr (last 64 KiB); useful in assertion messages. */
  stderr(): string {
    return this.stderrChunks.join('');
  }

  /** `migrate-set-capabilities` for the named capabilities, e.g. `{ multifd: true, events: true }`. */
  async setCapabilities(capabilities: Readonly<Record<string, boolean>>): Promise<void> {
    await this.qmp.execute('migrate-set-capabilities', {
      capabilities: Object.entries(capabilities).map(([capability, state]) => ({ capability, state })),
    });
  }

  /** `migrate-set-parameters`, e.g. `{ 'max-bandwidth': 8 * 1024 ** 3, 'multifd-channels': 4 }`. */
  async setParameters(parameters: Readonly<Record<string, unknown>>): Promise<void> {
    await this.qmp.execute('migrate-set-parameters', { ...parameters });
  }

  /**
   * Destination side (`incoming: true`): `migrate-incoming uri`, then waits until
   * the port is in LISTEN state (read from /proc/<pid>/net/tcp{,6}, never by
   * connecting). For `tcp:HOST:0` QEMU picks the port; the actual port is
   * returned (read back from query-migrate's socket-address). For unix URIs
   * returns undefined once the socket file exists.
   */
  async migrateIncoming(uri: string, timeoutMs = 10_000): Promise<number | undefined> {
    await this.qmp.execute('migrate-incoming', { uri });
    if (!uri.startsWith('tcp:')) return undefined;
    const info = await this.qmp.queryMigrate();
    const addresses = (info['socket-address'] ?? []) as ReadonlyArray<{ type?: string; port?: string }>;
    const port = Number(addresses.find((a) => a.type === 'inet')?.port ?? uri.slice(uri.lastIndexOf(':') + 1));
    if (!Number.isInteger(port) || port <= 0) throw new Error(`QEMU ${this.name}: no listening port for ${uri}: ${JSON.stringify(info)}`);
    await this.waitListening(port, timeoutMs);
    return port;
  }

  /** Resolves when this QEMU's network namespace has a TCP socket listening on `port`. */
  async waitListening(port: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await this.isListening(port)) return;
      if (Date.now() > deadline) throw new Error(`QEMU ${this.name}: nothing listening on port ${port} after ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  /** Reads /proc/<qemu pid>/net/tcp{,6}: they show the process's own network namespace. */
  private async isListening(port: number): Promise<boolean> {
    const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
    for (const table of ['tcp', 'tcp6']) {
      let text: string;
      try {
        text = await readFile(`/proc/${this.pid}/net/${table}`, 'utf8');
      } catch {
        continue;
      }
      for (const line of text.split('\n').slice(1)) {
        const fields = line.trim().split(/\s+/);
        // fields: sl local_address rem_address st ...; LISTEN is state 0A
        if (fields[1]?.endsWith(`:${hexPort}`) === true && fields[3] === '0A') return true;
      }
    }
    return false;
  }

  /** Source side: `migrate uri` (returns as soon as QEMU has started the migration). */
  async migrate(uri: string): Promise<void> {
    await this.qmp.execute('migrate', { uri });
  }

  /** Source side: `migrate-start-postcopy` (needs the postcopy-ram capability on both sides). */
  async startPostcopy(): Promise<void> {
    await this.qmp.execute('migrate-start-postcopy');
  }

  /** `migrate_cancel`. */
  async cancelMigration(): Promise<void> {
    await this.qmp.execute('migrate_cancel');
  }

  /** See `QmpClient.waitForMigration`. */
  waitForMigration(statuses: Iterable<string>, timeoutMs: number): Promise<MigrationInfo> {
    return this.qmp.waitForMigration(statuses, timeoutMs);
  }

  /** The accelerator in use: "kvm" when KVM is enabled (`query-kvm`), else "tcg". */
  async accelerator(): Promise<'kvm' | 'tcg'> {
    const kvm = await this.qmp.execute<{ enabled?: boolean }>('query-kvm');
    return kvm.enabled === true ? 'kvm' : 'tcg';
  }

  /** Current run state (`query-status`). */
  runState(): Promise<string> {
    return this.qmp.runState();
  }

  /** `pmemsave` of guest-physical memory [addr, addr+size) to `file`. Default: all of RAM from 0. */
  async pmemsave(file: string, addr = 0, size = this.memMiB * MiB): Promise<void> {
    await this.qmp.execute('pmemsave', { val: addr, size, filename: file });
  }

  /**
   * sha256 (hex) of guest-physical memory [addr, addr+size), default all of RAM:
   * pmemsave to the work dir, hash streaming, delete the dump.
   */
  async ramHash(addr = 0, size = this.memMiB * MiB): Promise<string> {
    const file = join(this.workDir, `ram-${addr.toString(16)}-${size}-${Date.now()}.bin`);
    try {
      await this.pmemsave(file, addr, size);
      return await sha256File(file);
    } finally {
      await rm(file, { force: true });
    }
  }

  /** Kills the process group (SIGKILL), waits for exit, closes QMP, removes an owned work dir. Idempotent. */
  async kill(): Promise<QemuExit> {
    if (!this.killed) {
      this.killed = true;
      this.qmp.close();
      if (this.child.exitCode === null && this.child.signalCode === null) {
        try {
          process.kill(-this.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    const result = await this.exited;
    this.unregisterExit();
    if (this.ownsWorkDir) await rm(this.workDir, { recursive: true, force: true });
    return result;
  }
}

/** Streaming sha256 (hex) of a file. */
async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path, { highWaterMark: 4 * MiB }), hash);
  return hash.digest('hex');
}

export interface RandomImage {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

/** Writes `sizeMiB` MiB of random bytes to `dir/guest-random.bin` (default 256 MiB) and returns its hash. */
export async function randomGuestImage(dir: string, sizeMiB = 256): Promise<RandomImage> {
  if (!Number.isInteger(sizeMiB) || sizeMiB <= 0) throw new RangeError(`randomGuestImage: sizeMiB must be a positive integer, got ${sizeMiB}`);
  const path = join(dir, 'guest-random.bin');
  const size = sizeMiB * MiB;
  const hash = createHash('sha256');
  const file = await open(path, 'w', 0o600);
  try {
    const buffer = Buffer.allocUnsafe(4 * MiB);
    for (let written = 0; written < size; ) {
      const chunk = buffer.subarray(0, Math.min(buffer.length, size - written));
      await randomFillAsync(chunk);
      hash.update(chunk);
      await file.write(chunk);
      written += chunk.length;
    }
  } finally {
    await file.close();
  }
  return { path, size, sha256: hash.digest('hex') };
}

/**
 * Escapes a value for QEMU's `key=value,key=value` option syntax, where a
 * comma inside a value is written as two (a path like `/tmp/a,b` would
 * otherwise end the value and start a bogus option).
 */
function qemuOptValue(value: string): string {
  return value.replaceAll(',', ',,');
}

// ---------------------------------------------------------------------------
// Migration set-up shared by the demo and the tests.

export type MigrationMode = 'precopy' | 'multifd' | 'postcopy';

export interface MigrationPlan {
  readonly mode: MigrationMode;
  /** multifd only. Default 4. */
  readonly multifdChannels?: number;
  /** Source max-bandwidth in bytes/s. Default 64 GiB/s (QEMU's own default, 128 MiB/s, throttles everything). */
  readonly maxBandwidth?: number;
}

export const DEFAULT_MAX_BANDWIDTH = 64 * 1024 ** 3;

/**
 * Sets capabilities and parameters for `plan` on one side (call it for both
 * source and destination, before `migrate-incoming` / `migrate`). Always turns
 * on the `events` capability so MIGRATION events land in `vm.qmp.events`.
 */
export async function configureMigration(vm: QemuVm, plan: MigrationPlan): Promise<void> {
  const capabilities: Record<string, boolean> = { events: true };
  if (plan.mode === 'multifd') capabilities['multifd'] = true;
  if (plan.mode === 'postcopy') capabilities['postcopy-ram'] = true;
  await vm.setCapabilities(capabilities);
  const parameters: Record<string, unknown> = { 'max-bandwidth': plan.maxBandwidth ?? DEFAULT_MAX_BANDWIDTH };
  if (plan.mode === 'multifd') parameters['multifd-channels'] = plan.multifdChannels ?? 4;
  await vm.setParameters(parameters);
}

export interface MigrationResult {
  /** The source's final query-migrate (status "completed", statistics filled in). */
  readonly source: MigrationInfo;
  /** The destination's run state at the end: "prelaunch" (precopy/multifd) or "paused" (postcopy). */
  readonly destinationState: string;
  /** Wall time from `migrate` to both sides done. */
  readonly elapsedMs: number;
  /** Every status the source's MIGRATION events went through, in order. */
  readonly sourceStatuses: readonly string[];
}

/**
 * Runs one migration of a paused guest from `src` to `dst` (both configured
 * with `configureMigration`, `dst.migrateIncoming` already done): `migrate uri`,
 * for postcopy `migrate-start-postcopy` straight away (a paused guest's precopy
 * would otherwise converge before postcopy starts), then waits for the source
 * to complete and for the destination to reach its final run state.
 */
export async function migrateAndWait(
  src: QemuVm,
  dst: QemuVm,
  uri: string,
  plan: MigrationPlan,
  timeoutMs: number,
): Promise<MigrationResult> {
  const started = Date.now();
  await src.migrate(uri);
  if (plan.mode === 'postcopy') await src.startPostcopy();
  const source = await src.waitForMigration(['completed'], timeoutMs);
  const left = Math.max(1_000, timeoutMs - (Date.now() - started));
  const finalState = plan.mode === 'postcopy' ? 'paused' : 'prelaunch';
  await dst.waitForMigration(['completed'], left);
  const destinationState = await dst.qmp.waitForRunState([finalState], left);
  const sourceStatuses = src.qmp.events
    .filter((e) => e.event === 'MIGRATION')
    .map((e) => String(e.data['status']));
  return { source, destinationState, elapsedMs: Date.now() - started, sourceStatuses };
}
