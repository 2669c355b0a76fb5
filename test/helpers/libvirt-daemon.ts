/**
 * One real libvirtd (Debian 12's libvirt 9.0) per test "host", beside others
 * on the same machine, without systemd:
 *
 *   const d = await LibvirtDaemon.start({ name: 'host-a', netns: net.a, dir: join(stageDir, 'libvirt-a') });
 *   await d.virsh(['create', xmlFile]);          // virsh -c qemu+unix:///system?socket=... create ...
 *   ... d.uri is what another daemon migrates to (--p2p)
 *   await d.stop();                              // domains destroyed, QEMUs and libvirtd gone
 *
 * The daemon runs in the network namespace `netns` (`ip netns exec`), so the
 * QEMUs it starts live there too, and in its own private mount namespace
 * (`unshare -m --propagation private`) where /etc/libvirt, /run/libvirt,
 * /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt are bind mounts
 * of folders under `dir`: two daemons never see each other's state, pid
 * files, domain definitions or configs. Its sockets sit in `dir`/sock, a path
 * every namespace sees (virsh from the test, the other daemon for --p2p).
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { libvirtdConf, qemuConf, type QemuConfOptions } from './libvirt-config.js';
import { PRIVATE_DIRS, acquireMountPoints, type PrivateDir } from './libvirt-private-dirs.js';
import { onProcessExit } from './netns.js';

export interface LibvirtDaemonOptions {
  /** Label for messages ("host-a"). */
  readonly name: string;
  /** Network namespace the daemon (and so every QEMU it starts) runs in. */
  readonly netns: string;
  /** An empty folder for this daemon's private folders, sockets and logs. */
  readonly dir: string;
  /** qemu.conf options. */
  readonly qemu?: QemuConfOptions;
  /** How long to wait for the daemon to answer. Default 30 s. */
  readonly startTimeoutMs?: number;
}

export interface VirshResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly elapsedMs: number;
}

/** A running `virsh` command (e.g. a migration) that the test acts on while it runs. */
export interface VirshRun {
  readonly pid: number;
  /** Settles (never rejects) when virsh has exited. */
  readonly done: Promise<VirshResult>;
  /** SIGKILL to virsh. */
  kill(): void;
}

export class LibvirtDaemon {
  readonly name: string;
  readonly netns: string;
  readonly dir: string;
  /** Real paths of the folders mounted over /etc/libvirt, /run/libvirt, ... inside the daemon's namespace. */
  readonly dirs: Readonly<Record<PrivateDir, string>>;
  readonly socket: string;
  /** The URI virsh and the other daemon use: qemu+unix:///system?socket=... (plain qemu:/// would be "the same host" for --p2p). */
  readonly uri: string;
  readonly logFile: string;
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly stderrChunks: string[] = [];
  private readonly unregisterExit: () => void;
  private readonly running = new Set<ChildProcess>();

  private constructor(o: LibvirtDaemonOptions, dirs: Record<PrivateDir, string>, socketDir: string, logFile: string, child: ChildProcess) {
    this.name = o.name;
    this.netns = o.netns;
    this.dir = o.dir;
    this.dirs = dirs;
    this.socket = join(socketDir, 'libvirt-sock');
    this.uri = `qemu+unix:///system?socket=${this.socket}`;
    this.logFile = logFile;
    this.child = child;
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (c: string) => this.stderrChunks.push(c));
    child.stdout?.resume();
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve();
      });
      child.once('error', () => {
        this.exit = { code: null, signal: null };
        resolve();
      });
    });
    this.unregisterExit = onProcessExit(() => this.killSync());
  }

  /** Writes the configs, starts libvirtd and waits until its QEMU driver answers. */
  static async start(o: LibvirtDaemonOptions): Promise<LibvirtDaemon> {
    requireAccounts();
    const dirs = Object.fromEntries(Object.keys(PRIVATE_DIRS).map((k) => [k, join(o.dir, k)])) as Record<PrivateDir, string>;
    const socketDir = join(o.dir, 'sock');
    for (const d of [...Object.values(dirs), socketDir]) await mkdir(d, { recursive: true, mode: 0o700 });
    const logFile = join(dirs.log, 'libvirtd.log');
    await writeFile(join(dirs.etc, 'libvirtd.conf'), libvirtdConf({ socketDir, hostUuid: randomUUID(), logFile }));
    await writeFile(join(dirs.etc, 'qemu.conf'), qemuConf(o.qemu));
    const releaseMountPoints = acquireMountPoints();

    // sh binds each private folder over its system path, then becomes libvirtd:
    // `ip netns exec` -> unshare -> sh -> libvirtd all exec, so the pid is libvirtd's.
    const binds = (Object.keys(PRIVATE_DIRS) as PrivateDir[]).map((k, i) => `mount --bind "$${i + 1}" ${PRIVATE_DIRS[k]}`).join(' && ');
    const script = `${binds} && exec libvirtd -f ${PRIVATE_DIRS.etc}/libvirtd.conf -p ${PRIVATE_DIRS.run}/libvirtd.pid`;
    const argv = ['netns', 'exec', o.netns, 'unshare', '-m', '--propagation', 'private', 'sh', '-c', script, 'sh', ...(Object.keys(PRIVATE_DIRS) as PrivateDir[]).map((k) => dirs[k])];
    const child = spawn('ip', argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const daemon = new LibvirtDaemon(o, dirs, socketDir, logFile, child);
    void daemon.exited.then(releaseMountPoints);
    try {
      await daemon.waitUntilAnswering(o.startTimeoutMs ?? 30_000);
    } catch (e: unknown) {
      await daemon.stop();
      throw e;
    }
    return daemon;
  }

  /** Polls `virsh version` (it needs the QEMU driver) until it works; fails early if libvirtd exits. */
  private async waitUntilAnswering(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: VirshResult | undefined;
    while (Date.now() < deadline) {
      if (this.exit !== undefined) throw new Error(`libvirtd ${this.name} exited during start (code ${this.exit.code}, signal ${this.exit.signal})\n${await this.diagnostics()}`);
      if (existsSync(this.socket)) {
        last = await this.virshRaw(['version'], 10_000);
        if (last.code === 0) return;
      }
      await sleep(100);
    }
    throw new Error(`libvirtd ${this.name} did not answer within ${timeoutMs} ms: ${last?.stderr ?? 'no socket'}\n${await this.diagnostics()}`);
  }

  /** Runs `virsh -c URI ...args`; never rejects on exit code. */
  virshRaw(args: readonly string[], timeoutMs = 60_000): Promise<VirshResult> {
    const t0 = Date.now();
    return new Promise((resolve) => {
      execFile('virsh', ['-q', '-c', this.uri, ...args], { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        resolve({ code, stdout, stderr, elapsedMs: Date.now() - t0 });
      });
    });
  }

  /** Runs `virsh -c URI ...args`; resolves with stdout, rejects with virsh's error and the daemon log when it fails. */
  async virsh(args: readonly string[], timeoutMs = 60_000): Promise<string> {
    const r = await this.virshRaw(args, timeoutMs);
    if (r.code !== 0) throw new Error(`virsh ${args.join(' ')} on ${this.name} failed (exit ${r.code}): ${r.stderr.trim()}\n${await this.diagnostics()}`);
    return r.stdout;
  }

  /**
   * Starts `virsh -c URI ...args` and returns at once (for commands the test
   * acts on while they run). `onStdout` sees stdout as it comes.
   */
  spawnVirsh(args: readonly string[], onStdout?: (chunk: string) => void): VirshRun {
    const t0 = Date.now();
    const child = spawn('virsh', ['-q', '-c', this.uri, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.running.add(child);
    const out: string[] = [];
    const err: string[] = [];
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      out.push(c);
      onStdout?.(c);
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => err.push(c));
    const done = new Promise<VirshResult>((resolve) => {
      const settle = (code: number | null): void => {
        this.running.delete(child);
        resolve({ code, stdout: out.join(''), stderr: err.join(''), elapsedMs: Date.now() - t0 });
      };
      child.once('close', (code) => settle(code));
      child.once('error', (e) => {
        err.push(String(e));
        settle(null);
      });
    });
    return { pid: child.pid ?? -1, done, kill: () => child.kill('SIGKILL') };
  }

  /** Names of the domains this daemon runs now. */
  async domains(): Promise<string[]> {
    const out = await this.virsh(['list', '--name']);
    return out.split('\n').map((s) => s.trim()).filter((s) => s !== '');
  }

  /** The last lines of the daemon's log and stderr, for failure messages. */
  async diagnostics(lines = 15): Promise<string> {
    let log: string;
    try {
      log = (await readFile(this.logFile, 'utf8')).split('\n').slice(-lines).join('\n');
    } catch {
      log = '(no log file)';
    }
    return `--- libvirtd ${this.name} log (${this.logFile}):\n${log}\n--- stderr:\n${this.stderrChunks.join('').slice(-2000)}`;
  }

  /** Domain log of QEMU `domain` (what QEMU printed, its command line). */
  async qemuLog(domain: string): Promise<string> {
    try {
      return await readFile(join(this.dirs.log, 'qemu', `${domain}.log`), 'utf8');
    } catch {
      return '(no QEMU log)';
    }
  }

  /**
   * Destroys every domain, stops libvirtd (SIGTERM, SIGKILL after 5 s), then
   * kills any QEMU still alive (libvirtd leaves its QEMUs running when it
   * exits). Idempotent; never throws.
   */
  async stop(): Promise<void> {
    for (const child of this.running) child.kill('SIGKILL');
    if (this.exit === undefined) {
      const listed = await this.virshRaw(['list', '--name'], 10_000);
      const names = listed.code === 0 ? listed.stdout.split('\n').map((s) => s.trim()).filter((s) => s !== '') : [];
      await Promise.all(names.map((n) => this.virshRaw(['destroy', n], 15_000)));
      this.signal('SIGTERM');
      await Promise.race([this.exited, sleep(5_000)]);
    }
    this.killSync();
    await this.exited;
    this.unregisterExit();
  }

  /** SIGKILL to libvirtd's process group and to every QEMU whose pid file is in this daemon's /run/libvirt/qemu. */
  private killSync(): void {
    this.signal('SIGKILL');
    for (const pid of qemuPids(join(this.dirs.run, 'qemu'))) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  private signal(signal: NodeJS.Signals): void {
    if (this.exit !== undefined || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // already gone
    }
  }
}

/**
 * libvirt's QEMU driver does not load without the accounts Debian builds it
 * for (libvirt-daemon-system would create them); say so up front rather than
 * leave it to a line in libvirtd's log.
 */
function requireAccounts(): void {
  const missing = [
    ['passwd', 'libvirt-qemu'],
    ['group', 'libvirt-qemu'],
    ['group', 'kvm'],
  ].filter(([db, name]) => spawnSync('getent', [db ?? '', name ?? '']).status !== 0);
  if (missing.length > 0) {
    throw new Error(`libvirt's QEMU driver needs ${missing.map(([db, n]) => `${db === 'passwd' ? 'user' : 'group'} ${n}`).join(', ')}: run .ci/install-deps as root, it creates them`);
  }
}

/** Pids from `<dir>/*.pid` (libvirt's QEMU pid files) whose process still runs QEMU. */
function qemuPids(dir: string): number[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.pid'));
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const n of names) {
    try {
      const pid = Number(readFileSync(join(dir, n), 'utf8').trim());
      // The pid file stays after QEMU exits: check the pid is still a QEMU before killing it.
      if (Number.isInteger(pid) && pid > 0 && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('qemu-system')) pids.push(pid);
    } catch {
      // gone
    }
  }
  return pids;
}
