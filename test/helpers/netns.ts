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
import { promisify } from 'node:util';
import { onProcessExit } from '../../src/util/process-exit.js';

/** Exit-time cleanup shared by all helpers (netns, QEMU, gateway processes); it lives in src/util now. */
export { onProcessExit };

const execFileAsync = promisify(execFile);

/** Prefix of every namespace these helpers create; `leftoverNamespaces()` looks for it. */
const NETNS_PREFIX = 'vmg-';
/** Name of the veth end inside each namespace (both namespaces use the same name). */
const VETH_NAME = 'vmg0';

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
  /** Interface name on both sides. */
  readonly ifname: string;
  exec(ns: string, argv: readonly string[], timeoutMs?: number): Promise<ExecResult>;
  spawnIn(ns: string, argv: readonly string[], options?: SpawnOptions): ChildProcess;
  /**
   * Takes the link down on both ends. Nobody sends a RST or FIN: established
   * connections see silence (their retransmits are dropped) until `linkUp`;
   * new connects fail at once with ENETUNREACH (the /30's route goes away).
   */
  linkDown(): Promise<void>;
  /** Brings both ends back up. */
  linkUp(): Promise<void>;
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
export async function createNetnsPair(options: NetnsPairOptions): Promise<NetnsPair> {
  const { addrA, addrB } = hostsOfSubnet(options.subnet);
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
    // Both ends are created directly inside their namespaces: nothing touches the root namespace.
    await ip(['link', 'add', ifname, 'netns', a, 'type', 'veth', 'peer', 'name', ifname, 'netns', b]);
    for (const [ns, addr] of [[a, addrA], [b, addrB]] as const) {
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      await ip(['-n', ns, 'addr', 'add', `${addr}/30`, 'dev', ifname]);
      await ip(['-n', ns, 'link', 'set', ifname, 'up']);
    }
  } catch (e: unknown) {
    destroySync();
    unregister();
    throw e;
  }

  const setLink = async (state: 'up' | 'down'): Promise<void> => {
    await ip(['-n', a, 'link', 'set', ifname, state]);
    await ip(['-n', b, 'link', 'set', ifname, state]);
  };

  return {
    a,
    b,
    addrA,
    addrB,
    ifname,
    exec: (ns, argv, timeoutMs) => netnsExec(ns, argv, timeoutMs),
    spawnIn: (ns, argv, spawnOptions) => netnsSpawn(ns, argv, spawnOptions),
    linkDown: () => setLink('down'),
    linkUp: () => setLink('up'),
    destroy: () => {
      destroySync();
      unregister();
      return Promise.resolve();
    },
  };
}
