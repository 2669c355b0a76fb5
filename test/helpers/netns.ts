/**
 * Two "hosts" for the end-to-end tests: two network namespaces joined by a
 * veth pair, each with `lo` up and one address on a /30 that the test picks
 * inside 10.250.0.0/16 (the project's own test range; nothing is routed to the
 * root namespace or anywhere else).
 *
 *   const net = await createNetnsPair({ subnet: '10.250.1.0/30' });
 *   // net.a / net.b: namespace names; net.addrA = 10.250.1.1, net.addrB = 10.250.1.2
 *   const child = net.spawnIn(net.b, ['qemu-system-x86_64', ...]);
 *   await net.linkDown();  ...  await net.linkUp();
 *   await net.destroy();   // also runs from a process exit handler
 *
 * Requires root and iproute2. Namespace names are unique per run
 * (`vmg-a-<pid>-<rand>`), so concurrent runs do not collide.
 */
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { onProcessExit } from '../../src/util/process-exit.js';

/** Exit-time cleanup shared by all helpers (netns, QEMU, gateway processes); it lives in src/util now. */
export { onProcessExit };

const execFileAsync = promisify(execFile);

/** Prefix of every namespace these helpers create; `leftoverNamespaces()` looks for it. */
const NETNS_PREFIX = 'vmg-';
/** Name of the veth end inside each namespace (both namespaces use the same name). */
const VETH_NAME = 'vmg0';
/** The second path's veth ends (`secondSubnet`). */
const SECOND_VETH_NAME = 'vmg1';

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `argv` inside namespace `ns` (`ip netns exec`), resolves with its output, rejects on non-zero exit. */
async function netnsExec(ns: string, argv: readonly string[], timeoutMs = 10_000): Promise<ExecResult> {
  const { stdout, stderr } = await execFileAsync('ip', ['netns', 'exec', ns, ...argv], {
    timeout: timeoutMs,
    maxBuffer: 16 * 1024 * 1024,
  });
  return { stdout, stderr };
}

/**
 * Spawns `argv` inside namespace `ns`. `ip netns exec` execs the program, so
 * the child's pid is the program's pid. The child gets its own process group
 * (`detached`) so that a kill of `-pid` takes its whole tree.
 */
function netnsSpawn(ns: string, argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...options });
}

/** Namespaces with the helpers' prefix that exist now (for a "nothing left over" check). */
export function leftoverNamespaces(prefix = NETNS_PREFIX): string[] {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(prefix));
}

export interface NetnsPairOptions {
  /** A /30 inside 10.250.0.0/16, e.g. "10.250.1.0/30": A gets .1, B gets .2. */
  readonly subnet: string;
  /**
   * A second veth pair between the same namespaces, on its own /30 (same
   * rules as `subnet`, and not overlapping it): path 1, for a route that
   * names two peer addresses. Each path has its own connected route, so
   * taking one down leaves the other working.
   */
  readonly secondSubnet?: string;
}

/** One veth pair between A and B. */
export interface NetnsPath {
  readonly subnet: string;
  /** Interface name on both sides: vmg0 for path 0, vmg1 for path 1. */
  readonly ifname: string;
  readonly addrA: string;
  readonly addrB: string;
}

/** Which TCP sockets `killConnections` destroys; every field given must match (at least one). */
export interface ConnectionFilter {
  readonly dst?: string;
  readonly dport?: number;
  readonly src?: string;
  readonly sport?: number;
}

/** A TCP socket that `ss -K` destroyed, as ss printed it. */
export interface KilledConnection {
  /** ADDR:PORT on the namespace's side. */
  readonly local: string;
  readonly peer: string;
}

export interface NetnsPair {
  /** Namespace name of host A. */
  readonly a: string;
  /** Namespace name of host B. */
  readonly b: string;
  /** Host A's address on the link (first usable of the /30). */
  readonly addrA: string;
  /** Host B's address on the link (second usable of the /30). */
  readonly addrB: string;
  /** Interface name on both sides (path 0). */
  readonly ifname: string;
  /** Path 0 (`subnet`: addrA, addrB, ifname above), then path 1 when `secondSubnet` was given. */
  readonly paths: readonly NetnsPath[];
  exec(ns: string, argv: readonly string[], timeoutMs?: number): Promise<ExecResult>;
  spawnIn(ns: string, argv: readonly string[], options?: SpawnOptions): ChildProcess;
  /**
   * Takes the link down on both ends. Nobody sends a RST or FIN: established
   * connections see silence (their retransmits are dropped) until `linkUp`;
   * new connects fail at once with ENETUNREACH (the /30's route goes away).
   */
  linkDown(path?: number): Promise<void>;
  /** Brings both ends of `path` (default 0) back up. */
  linkUp(path?: number): Promise<void>;
  /**
   * An outage of `ms` on `path` (default 0): down on both ends, `ms` later up
   * again (the outage's length is the fault, not a wait for an event).
   * Resolves once the link is up, with when it went down and came up (epoch ms).
   */
  linkDownFor(ms: number, path?: number): Promise<{ downAt: number; upAt: number }>;
  /**
   * Destroys the TCP sockets in `ns` that match `filter` (`ss -K`, which needs
   * a kernel with CONFIG_INET_DIAG_DESTROY): each gets ECONNABORTED, and the
   * kernel sends its peer a RST (ECONNRESET there), as a NAT or firewall
   * that loses its state does. Listening sockets are never matched.
   * Resolves with what was destroyed (possibly nothing).
   */
  killConnections(ns: string, filter: ConnectionFilter): Promise<KilledConnection[]>;
  /** Deletes both namespaces (the veth pair goes with them). Idempotent. */
  destroy(): Promise<void>;
}

/** Parses and checks a /30 inside 10.250.0.0/16; returns the two host addresses. */
function hostsOfSubnet(subnet: string): { addrA: string; addrB: string } {
  const m = /^10\.250\.(\d{1,3})\.(\d{1,3})\/30$/.exec(subnet);
  const third = Number(m?.[1]);
  const fourth = Number(m?.[2]);
  if (m === null || third > 255 || fourth > 252 || fourth % 4 !== 0) {
    throw new Error(`subnet must be an aligned /30 inside 10.250.0.0/16, got ${JSON.stringify(subnet)}`);
  }
  return { addrA: `10.250.${third}.${fourth + 1}`, addrB: `10.250.${third}.${fourth + 2}` };
}

async function ip(args: readonly string[]): Promise<void> {
  await execFileAsync('ip', [...args], { timeout: 10_000 });
}

function ipSync(args: readonly string[]): void {
  execFileSync('ip', [...args], { stdio: 'ignore', timeout: 10_000 });
}

/** Creates the two namespaces, the veth pair between them and the addresses. */
/** `ss` filter words for `f`: `dst ADDR dport = :PORT ...`, all ANDed. */
function ssFilter(f: ConnectionFilter): string[] {
  const out: string[] = [];
  if (f.dst !== undefined) out.push('dst', f.dst);
  if (f.dport !== undefined) out.push('dport', '=', `:${f.dport}`);
  if (f.src !== undefined) out.push('src', f.src);
  if (f.sport !== undefined) out.push('sport', '=', `:${f.sport}`);
  if (out.length === 0) throw new Error('killConnections needs at least one of dst, dport, src, sport');
  return out;
}

/** ss prints each destroyed socket as `STATE RECVQ SENDQ LOCAL PEER`; `ss -K` exits 0 whether or not it destroyed anything. */
function parseKilled(stdout: string): KilledConnection[] {
  const out: KilledConnection[] = [];
  for (const line of stdout.split('\n')) {
    const [local, peer] = line.trim().split(/\s+/).filter((w) => /:\d+$/.test(w));
    if (local !== undefined && peer !== undefined) out.push({ local, peer });
  }
  return out;
}

export async function createNetnsPair(options: NetnsPairOptions): Promise<NetnsPair> {
  const paths: NetnsPath[] = [{ subnet: options.subnet, ifname: VETH_NAME, ...hostsOfSubnet(options.subnet) }];
  if (options.secondSubnet !== undefined) {
    if (options.secondSubnet === options.subnet) throw new Error('secondSubnet must differ from subnet');
    paths.push({ subnet: options.secondSubnet, ifname: SECOND_VETH_NAME, ...hostsOfSubnet(options.secondSubnet) });
  }
  const { addrA, addrB } = paths[0] as NetnsPath;
  const tag = `${process.pid}-${randomBytes(3).toString('hex')}`;
  const a = `${NETNS_PREFIX}a-${tag}`;
  const b = `${NETNS_PREFIX}b-${tag}`;
  const ifname = VETH_NAME;
  let destroyed = false;

  const destroySync = (): void => {
    if (destroyed) return;
    destroyed = true;
    for (const ns of [a, b]) {
      try {
        ipSync(['netns', 'del', ns]);
      } catch {
        // not created, or already gone
      }
    }
  };
  const unregister = onProcessExit(destroySync);

  try {
    await ip(['netns', 'add', a]);
    await ip(['netns', 'add', b]);
    await ip(['-n', a, 'link', 'set', 'lo', 'up']);
    await ip(['-n', b, 'link', 'set', 'lo', 'up']);
    for (const path of paths) {
      // Both ends are created directly inside their namespaces: nothing touches the root namespace.
      await ip(['link', 'add', path.ifname, 'netns', a, 'type', 'veth', 'peer', 'name', path.ifname, 'netns', b]);
      for (const [ns, addr] of [[a, path.addrA], [b, path.addrB]] as const) {
        await ip(['-n', ns, 'addr', 'add', `${addr}/30`, 'dev', path.ifname]);
        await ip(['-n', ns, 'link', 'set', path.ifname, 'up']);
      }
    }
  } catch (e: unknown) {
    destroySync();
    unregister();
    throw e;
  }

  const setLink = async (state: 'up' | 'down', path = 0): Promise<void> => {
    const p = paths[path];
    if (p === undefined) throw new Error(`no path ${path}: this pair has ${paths.length}`);
    await ip(['-n', a, 'link', 'set', p.ifname, state]);
    await ip(['-n', b, 'link', 'set', p.ifname, state]);
  };

  return {
    a,
    b,
    addrA,
    addrB,
    ifname,
    paths,
    exec: (ns, argv, timeoutMs) => netnsExec(ns, argv, timeoutMs),
    spawnIn: (ns, argv, spawnOptions) => netnsSpawn(ns, argv, spawnOptions),
    linkDown: (path) => setLink('down', path),
    linkUp: (path) => setLink('up', path),
    linkDownFor: async (ms, path) => {
      await setLink('down', path);
      const downAt = Date.now();
      await sleep(ms);
      await setLink('up', path);
      return { downAt, upAt: Date.now() };
    },
    killConnections: async (ns, filter) => {
      const { stdout } = await netnsExec(ns, ['ss', '-K', '-t', '-n', '-H', ...ssFilter(filter)]);
      return parseKilled(stdout);
    },
    destroy: () => {
      destroySync();
      unregister();
      return Promise.resolve();
    },
  };
}
