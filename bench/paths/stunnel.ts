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
import type { PathSpec, RunningPath } from './path.js';

export const STUNNEL = 'stunnel4';
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

export function stunnelPath(fx: Fixture): PathSpec {
  let count = 0;
  return {
    name: 'stunnel',
    kind: 'stunnel',
    async start(targetPort: number): Promise<RunningPath> {
      const n = count++;
      const [portA, portB] = [await freePort(), await freePort()];
      const files = (dir: string, role: 'client' | 'server'): string[] => [
        `cert = ${join(dir, `${role}-cert.pem`)}`,
        `key = ${join(dir, `${role}-key.pem`)}`,
        `CAfile = ${join(dir, 'ca-cert.pem')}`,
        `CRLfile = ${join(dir, 'ca-crl.pem')}`,
        'verifyChain = yes',
        'sslVersionMin = TLSv1.3',
        'sslVersionMax = TLSv1.3',
      ];
      const b = await startStunnel(join(fx.dir, `stunnel-${n}-b.conf`), [
        `accept = 127.0.0.1:${portB}`,
        `connect = 127.0.0.1:${targetPort}`,
        ...files(fx.pki.hostB, 'server'),
      ]);
      let a: ChildProcess;
      try {
        a = await startStunnel(join(fx.dir, `stunnel-${n}-a.conf`), [
          'client = yes',
          `accept = 127.0.0.1:${portA}`,
          `connect = 127.0.0.1:${portB}`,
          'checkHost = host-b',
          ...files(fx.pki.hostA, 'client'),
        ]);
      } catch (e: unknown) {
        await stopProcess(b);
        throw e;
      }
      return {
        port: portA,
        gateways: [{ side: 'A', pid: a.pid ?? -1 }, { side: 'B', pid: b.pid ?? -1 }],
        stop: async () => {
          await Promise.all([stopProcess(a), stopProcess(b)]);
        },
      };
    },
  };
}

/** Writes the config and starts stunnel in the foreground; resolves once it says its configuration is loaded. */
async function startStunnel(configFile: string, service: string[]): Promise<ChildProcess> {
  await writeFile(configFile, ['foreground = yes', 'pid =', 'debug = notice', '[relay]', ...service, ''].join('\n'), { mode: 0o600 });
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
