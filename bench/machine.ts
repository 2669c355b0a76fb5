/** The machine a run was measured on, for the report. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  openssl: string;
  stunnel: string | undefined;
  qemu: string | undefined;
}

export function describeMachine(o: { stunnel: string | undefined; qemuBinary: string | undefined }): Machine {
  let model = cpus()[0]?.model ?? 'unknown';
  try {
    model = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? model;
  } catch {
    // keep os.cpus()'s
  }
  const qemu = o.qemuBinary === undefined ? undefined : spawnSync(o.qemuBinary, ['--version'], { encoding: 'utf8' }).stdout?.split('\n')[0]?.trim();
  return {
    cpu: model.trim(),
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    openssl: process.versions.openssl ?? 'unknown',
    stunnel: o.stunnel,
    qemu,
  };
}
