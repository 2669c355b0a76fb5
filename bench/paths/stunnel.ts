/**
 * The baseline: a stunnel pair with mutual TLS 1.3 from the same test PKI as
 * vmgate (chain and CRL checked both ways, the server's name checked by the
 * client), in front of the same plain target.
 *
 *   sender -> stunnel A (client=yes) ==TLS 1.3, mutual x509==> stunnel B -> target
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { onProcessExit } from '../../src/util/process-exit.js';
import type { Fixture } from '../fixture.js';
import { freePort } from './free-port.js';
import { RANGE_GATEWAY_HOST, type PathSpec, type RunningPath, type RunningRange } from './path.js';

const STUNNEL = 'stunnel4';
const READY_TIMEOUT_MS = 10_000;

/** Undefined when stunnel is installed, else why the stunnel path is left out. */
export function stunnelMissing(): string | undefined {
  const r = spawnSync(STUNNEL, ['-version'], { encoding: 'utf8' });
  return r.error === undefined ? undefined : `${STUNNEL} is not installed (Debian package stunnel4; sudo .ci/install-deps installs it)`;
}

/** stunnel's version line, e.g. "stunnel 5.68 on x86_64-pc-linux-gnu platform". */
export function stunnelVersion(): string {
  const r = spawnSync(STUNNEL, ['-version'], { encoding: 'utf8' });
  return /stunnel \S+/.exec(`${r.stdout}${r.stderr}`)?.[0] ?? 'unknown';
}

/** The TLS lines of one side's services: the test PKI, chain and CRL checked, TLS 1.3 only. */
function tlsLines(dir: string, role: 'client' | 'server'): string[] {
  return [
    `cert = ${join(dir, `${role}-cert.pem`)}`,
    `key = ${join(dir, `${role}-key.pem`)}`,
    `CAfile = ${join(dir, 'ca-cert.pem')}`,
    `CRLfile = ${join(dir, 'ca-crl.pem')}`,
    'verifyChain = yes',
    'sslVersionMin = TLSv1.3',
    'sslVersionMax = TLSv1.3',
  ];
}

type Service = { name: string; lines: string[] };

/** Starts B (servers), then A (clients) with one service per entry of `pairs`; stops B again if A fails. */
async function startPair(fx: Fixture, tag: string, pairs: ReadonlyArray<{ accept: string; target: string; portB: number }>): Promise<{ a: ChildProcess; b: ChildProcess }> {
  const b = await startStunnel(join(fx.dir, `stunnel-${tag}-b.conf`), pairs.map((p, i): Service => ({
    name: `relay-${i}`,
    lines: [`accept = 127.0.0.1:${p.portB}`, `connect = ${p.target}`, ...tlsLines(fx.pki.hostB, 'server')],
  })));
  try {
    const a = await startStunnel(join(fx.dir, `stunnel-${tag}-a.conf`), pairs.map((p, i): Service => ({
      name: `relay-${i}`,
      lines: ['client = yes', `accept = ${p.accept}`, `connect = 127.0.0.1:${p.portB}`, 'checkHost = host-b', ...tlsLines(fx.pki.hostA, 'client')],
    })));
    return { a, b };
  } catch (e: unknown) {
    await stopProcess(b);
    throw e;
  }
}

function sides(a: ChildProcess, b: ChildProcess): RunningPath['gateways'] {
  return [{ side: 'A', pid: a.pid ?? -1 }, { side: 'B', pid: b.pid ?? -1 }];
}

export function stunnelPath(fx: Fixture): PathSpec {
  let count = 0;
  return {
    name: 'stunnel',
    kind: 'stunnel',
    async start(targetPort: number): Promise<RunningPath> {
      const [portA, portB] = [await freePort(), await freePort()];
      const { a, b } = await startPair(fx, String(count++), [{ accept: `127.0.0.1:${portA}`, target: `127.0.0.1:${targetPort}`, portB }]);
      return { port: portA, gateways: sides(a, b), stop: () => Promise.all([stopProcess(a), stopProcess(b)]).then(() => undefined) };
    },
    /**
     * stunnel has no port ranges: an operator writes one service per port of
     * libvirt's range on each side, which is what this does (one process per
     * side, `count` services in it).
     */
    async startRange(first: number, n: number): Promise<RunningRange> {
      const pairs = [];
      for (let i = 0; i < n; i++) pairs.push({ accept: `${RANGE_GATEWAY_HOST}:${first + i}`, target: `127.0.0.1:${first + i}`, portB: await freePort() });
      const { a, b } = await startPair(fx, `range-${count++}`, pairs);
      return { host: RANGE_GATEWAY_HOST, gateways: sides(a, b), stop: () => Promise.all([stopProcess(a), stopProcess(b)]).then(() => undefined) };
    },
  };
}

/** Writes the config and starts stunnel in the foreground; resolves once it says its configuration is loaded. */
async function startStunnel(configFile: string, services: readonly Service[]): Promise<ChildProcess> {
  const body = services.flatMap((s) => [`[${s.name}]`, ...s.lines]);
  await writeFile(configFile, ['foreground = yes', 'pid =', 'debug = notice', ...body, ''].join('\n'), { mode: 0o600 });
  const child = spawn(STUNNEL, [configFile], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  const forget = onProcessExit(() => kill(child, 'SIGKILL'));
  child.once('exit', forget);
  let said = '';
  child.stderr?.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(`not ready within ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
    const fail = (why: string): void => {
      clearTimeout(timer);
      kill(child, 'SIGKILL');
      reject(new Error(`stunnel ${configFile}: ${why}\n${said.slice(-2000)}`));
    };
    child.stderr?.on('data', (chunk: string) => {
      if (said.length < 64 * 1024) said += chunk;
      if (said.includes('Configuration successful')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code, signal) => fail(`exited during start (code ${code}, signal ${signal})`));
    child.once('error', (e) => fail(e.message));
  });
  return child;
}

function kill(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  kill(child, 'SIGTERM');
  const timer = setTimeout(() => kill(child, 'SIGKILL'), 3_000);
  await exited;
  clearTimeout(timer);
}
