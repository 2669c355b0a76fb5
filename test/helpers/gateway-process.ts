/**
 * The built vmgate CLI as a real process for the end-to-end tests, optionally
 * inside a network namespace.
 *
 *   await writeGatewayConfig(join(dir, 'b.yaml'), { name: 'host-b', tls: { dir: pki.hostB }, server: {...} });
 *   await addUser({ store: join(dir, 'users.json'), user: 'migrate', password: 'pw...' });
 *   const gw = await GatewayProcess.start({ configPath: join(dir, 'b.yaml'), netns: net.b, name: 'b' });
 *   await gw.waitForLog((l) => l.event === 'channel-close', 10_000);
 *   const exit = await gw.stop();          // SIGTERM, SIGKILL after a bounded wait
 *
 * The gateway logs pino JSON lines on stdout; `start` resolves once a line with
 * `"event":"ready"` arrives (all listeners up) and rejects if the process exits
 * or stays silent first.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { onProcessExit } from './netns.js';

/** The compiled CLI entry: dist/src/cli/main.js next to this compiled file, or $VMGATE_CLI. */
export const CLI_PATH = process.env['VMGATE_CLI'] ?? fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** One pino log line as parsed JSON. */
export interface GatewayLogLine {
  readonly level?: number;
  readonly time?: number;
  readonly msg?: string;
  readonly event?: string;
  readonly [key: string]: unknown;
}

export interface GatewayExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface GatewayStartOptions {
  /** YAML config file (see `writeGatewayConfig`). */
  readonly configPath: string;
  /** Run inside this network namespace. */
  readonly netns?: string;
  /** Label for error messages. Default "gateway". */
  readonly name?: string;
  /** How long to wait for the "ready" line. Default 15 s. */
  readonly readyTimeoutMs?: number;
  /** Extra arguments after `run --config FILE`. */
  readonly extraArgs?: readonly string[];
  /** Extra environment variables. */
  readonly env?: Readonly<Record<string, string>>;
  /** Another build's CLI entry (main.js) instead of `CLI_PATH`: the bench compares builds with it. */
  readonly cli?: string;
  /** A command that runs the gateway, e.g. `setpriv --reuid=65534 ... --` (it must exec, so the pid stays the gateway's). */
  readonly wrap?: readonly string[];
  /** Node flags before the CLI path (e.g. --cpu-prof, which NODE_OPTIONS refuses). */
  readonly nodeArgs?: readonly string[];
}

type LogWaiter = () => void;

/** A running `vmgate run --config FILE` process and its collected log lines. */
export class GatewayProcess {
  readonly name: string;
  readonly pid: number;
  /** Every JSON log line from stdout, in order. */
  readonly logs: GatewayLogLine[] = [];
  /**
   * The syslog priority each line of `logs` was led by (`<N>`, the `journal`
   * log format), or undefined for a bare JSON line; same index as `logs`.
   */
  readonly priorities: Array<number | undefined> = [];
  /** stdout lines that were not JSON (should stay empty). */
  readonly otherStdout: string[] = [];
  /** Settles when the process has exited. */
  readonly exited: Promise<GatewayExit>;
  private readonly child: ChildProcess;
  private readonly stderrChunks: string[] = [];
  private readonly waiters = new Set<LogWaiter>();
  private exit: GatewayExit | undefined;
  private readonly unregisterExit: () => void;

  private constructor(name: string, child: ChildProcess) {
    this.name = name;
    this.child = child;
    this.pid = child.pid ?? -1;
    let partial = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      partial += chunk;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        this.onLine(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
      }
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.stderrChunks.push(chunk);
    });
    this.exited = new Promise<GatewayExit>((resolve) => {
      const settle = (x: GatewayExit): void => {
        if (this.exit !== undefined) return;
        if (partial.trim() !== '') this.onLine(partial);
        this.exit = x;
        this.unregisterExit();
        for (const w of [...this.waiters]) w();
        resolve(x);
      };
      // 'close' (not 'exit'): all of stdout has been read by then.
      child.once('close', (code, signal) => settle({ code, signal }));
      child.once('error', () => settle({ code: null, signal: null }));
    });
    this.unregisterExit = onProcessExit(() => this.signalGroup('SIGKILL'));
  }

  /** Spawns the gateway and waits for its "ready" log line. On failure the process is killed. */
  static async start(options: GatewayStartOptions): Promise<GatewayProcess> {
    const name = options.name ?? 'gateway';
    const cliArgs = [...(options.wrap ?? []), process.execPath, ...(options.nodeArgs ?? []), options.cli ?? CLI_PATH, 'run', '--config', options.configPath, ...(options.extraArgs ?? [])];
    const argv = options.netns === undefined ? cliArgs : ['ip', 'netns', 'exec', options.netns, ...cliArgs];
    const [command, ...args] = argv as [string, ...string[]];
    const child = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: { ...process.env, ...options.env },
    });
    const gw = new GatewayProcess(name, child);
    try {
      await gw.waitForLog((l) => l.event === 'ready', options.readyTimeoutMs ?? 15_000);
    } catch (e: unknown) {
      await gw.kill();
      throw e;
    }
    return gw;
  }

  /** Exit code once exited (null while running or when killed by a signal). */
  get exitCode(): number | null {
    return this.exit?.code ?? null;
  }

  /** The exit, once the process has exited. */
  get exitStatus(): GatewayExit | undefined {
    return this.exit;
  }

  /** Everything the process wrote to stderr. */
  stderr(): string {
    return this.stderrChunks.join('');
  }

  /** Log lines matching `predicate`. */
  logsWhere(predicate: (line: GatewayLogLine) => boolean): GatewayLogLine[] {
    return this.logs.filter(predicate);
  }

  /**
   * Resolves with the first log line (already collected or still to come)
   * matching `predicate`; rejects on timeout or when the process exits first,
   * with the last lines and stderr in the message.
   */
  waitForLog(predicate: (line: GatewayLogLine) => boolean, timeoutMs: number): Promise<GatewayLogLine> {
    return this.waitUntil(() => this.logs.find(predicate), timeoutMs, 'the awaited log line');
  }

  /**
   * Resolves with the matching log lines once there are at least `count` of
   * them from index `fromIndex` on (pass `gw.logs.length` taken before an
   * action to look only at what the action caused). Rejects like `waitForLog`.
   */
  waitForLogs(predicate: (line: GatewayLogLine) => boolean, count: number, timeoutMs: number, fromIndex = 0): Promise<GatewayLogLine[]> {
    return this.waitUntil(
      () => {
        const matches = this.logs.slice(fromIndex).filter(predicate);
        return matches.length >= count ? matches : undefined;
      },
      timeoutMs,
      `${count} awaited log lines (have ${this.logs.slice(fromIndex).filter(predicate).length})`,
    );
  }

  /** Re-evaluates `probe` on every new log line until it returns a value; rejects on timeout or exit. */
  private waitUntil<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const now = probe();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise<T>((resolve, reject) => {
      const check: LogWaiter = () => {
        const value = probe();
        if (value !== undefined) {
          done();
          resolve(value);
        } else if (this.exit !== undefined) {
          done();
          reject(new Error(`gateway ${this.name} exited (code ${this.exit.code}, signal ${this.exit.signal}) before ${what}\n${this.diagnostics()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`gateway ${this.name}: ${what} not seen within ${timeoutMs} ms\n${this.diagnostics()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** The last log lines and stderr, for assertion messages. */
  diagnostics(lines = 20): string {
    const tail = this.logs.slice(-lines).map((l) => JSON.stringify(l)).join('\n');
    return `--- last log lines of ${this.name}:\n${tail}\n--- stderr:\n${this.stderr().slice(-4000)}`;
  }

  /**
   * SIGTERM, then SIGKILL to the whole process group if it has not exited
   * within `graceMs`. Resolves with the exit. Idempotent.
   */
  async stop(graceMs = 5_000): Promise<GatewayExit> {
    if (this.exit !== undefined) return this.exit;
    try {
      process.kill(this.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    let timer: NodeJS.Timeout | undefined;
    const forced = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([this.exited, forced]);
    clearTimeout(timer);
    if (this.exit === undefined) this.signalGroup('SIGKILL');
    return this.exited;
  }

  /** SIGKILL to the process group; resolves with the exit. */
  async kill(): Promise<GatewayExit> {
    this.signalGroup('SIGKILL');
    return this.exited;
  }

  private signalGroup(signal: NodeJS.Signals): void {
    if (this.exit !== undefined || this.pid <= 0) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      // already gone
    }
  }

  private onLine(raw: string): void {
    let line = raw.trim();
    if (line === '') return;
    const prefix = /^<([0-7])>/.exec(line);
    if (prefix) line = line.slice(prefix[0].length);
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      this.otherStdout.push(line);
      return;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      this.otherStdout.push(line);
      return;
    }
    this.logs.push(parsed as GatewayLogLine);
    this.priorities.push(prefix ? Number(prefix[1]) : undefined);
    for (const w of [...this.waiters]) w();
  }
}

// ---------------------------------------------------------------------------
// Config and credential files.

/** The gateway's YAML config (docs: the config section of README / src/config). Paths may be relative to the file. */
export interface GatewayConfig {
  readonly name: string;
  readonly tls: { readonly dir: string; readonly [key: string]: unknown };
  readonly server?: {
    readonly listen: string;
    readonly credentials: string;
    readonly targets: Readonly<
      Record<string, { readonly connect: string; readonly allow: ReadonlyArray<{ readonly peer: string; readonly user: string }>; readonly [key: string]: unknown }>
    >;
    readonly [key: string]: unknown;
  };
  readonly routes?: Readonly<
    Record<
      string,
      {
        readonly listen: string;
        readonly peer: string;
        readonly peerName: string;
        readonly target: string;
        readonly user: string;
        readonly passwordFile: string;
        readonly [key: string]: unknown;
      }
    >
  >;
  readonly [key: string]: unknown;
}

/** Writes `config` as YAML to `path`. */
export async function writeGatewayConfig(path: string, config: GatewayConfig): Promise<void> {
  await writeFile(path, stringify(config), { mode: 0o600 });
}

/** Writes a secret (password) file with mode 0600, as the gateway requires. */
export async function writeSecretFile(path: string, secret: string): Promise<void> {
  await writeFile(path, secret, { mode: 0o600 });
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the built CLI once (`node dist/src/cli/main.js ...args`) and collects its output; never rejects on exit code. */
export function runCli(args: readonly string[], options: { readonly netns?: string; readonly timeoutMs?: number } = {}): Promise<CliResult> {
  const cliArgs = [process.execPath, CLI_PATH, ...args];
  const argv = options.netns === undefined ? cliArgs : ['ip', 'netns', 'exec', options.netns, ...cliArgs];
  const [command, ...rest] = argv as [string, ...string[]];
  return new Promise<CliResult>((resolve) => {
    execFile(command, rest, { timeout: options.timeoutMs ?? 30_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Adds `user` with `password` to the credential store `store` through the CLI
 * (`users add USER --store STORE --password-file FILE`), using a 0600 password
 * file at `passwordFile` (default `<store>.<user>.password`). Throws with the
 * CLI's output if it fails. Returns the password file's path.
 */
export async function addUser(options: {
  readonly store: string;
  readonly user: string;
  readonly password: string;
  readonly passwordFile?: string;
}): Promise<string> {
  const passwordFile = options.passwordFile ?? `${options.store}.${options.user}.password`;
  await writeSecretFile(passwordFile, options.password);
  const r = await runCli(['users', 'add', options.user, '--store', options.store, '--password-file', passwordFile]);
  if (r.code !== 0) throw new Error(`vmgate users add ${options.user} failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  return passwordFile;
}
