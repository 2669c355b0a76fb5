import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VmgateError } from '../errors.js';
import { createLogger, type Logger } from '../log/logger.js';
import { startLocalPair } from '../demo/local-pair.js';
import { connectLoopback, exchange, startSink } from '../demo/payload.js';
import { findQemu, runQemuDemo } from '../demo/qemu-demo.js';
import { onProcessExit } from '../util/process-exit.js';

export interface DemoOptions {
  sizeMiB: number;
  forcePayload: boolean;
  keep: boolean;
}

/** Largest --size-mib: 64 GiB of guest RAM or payload is more than any demo needs. */
const MAX_SIZE_MIB = 65_536;

/**
 * `vmgate demo`: a throwaway PKI, credential store and two gateways on
 * loopback; a real QEMU migration through them when QEMU is installed, a
 * random payload otherwise. Returns whether the data arrived intact. The temp
 * dir (and any QEMU) is gone when it settles, and also when the process is
 * interrupted (SIGINT/SIGTERM/SIGHUP), unless `keep`.
 */
export async function runDemo(o: DemoOptions): Promise<boolean> {
  if (!Number.isInteger(o.sizeMiB) || o.sizeMiB < 1 || o.sizeMiB > MAX_SIZE_MIB) {
    throw new VmgateError('usage', `--size-mib must be a whole number of MiB from 1 to ${MAX_SIZE_MIB}, got ${JSON.stringify(String(o.sizeMiB))}`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'vmgate-demo-'));
  const forgetDir = o.keep ? () => undefined : onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
  // Gateway log lines (warnings and errors only) go to stderr; stdout is the operator's summary.
  const log = createLogger('warn', process.stderr);
  const say = (s: string): void => console.log(s);
  try {
    const qemu = o.forcePayload ? undefined : await findQemu();
    if (qemu !== undefined) {
      say(`vmgate demo: live-migrating a real QEMU guest through two gateways on this host (work dir ${dir})`);
      return await runQemuDemo({ dir, qemu, sizeMiB: o.sizeMiB, log, say });
    }
    say(`vmgate demo: streaming a ${o.sizeMiB} MiB random payload through two gateways on this host (work dir ${dir})`);
    if (!o.forcePayload) {
      const wanted = process.env['VMGATE_QEMU'] ? `$VMGATE_QEMU (${process.env['VMGATE_QEMU']})` : 'qemu-system-x86_64 on PATH';
      say(`  (no QEMU: found no ${wanted}; \`apt-get install qemu-system-x86\` to see a real guest migrate)`);
    }
    return await payloadDemo(dir, o.sizeMiB, log, say);
  } finally {
    if (o.keep) say(`  kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
    forgetDir();
  }
}

async function payloadDemo(dir: string, sizeMiB: number, log: Logger, say: (s: string) => void): Promise<boolean> {
  const sink = await startSink(0);
  say('  gateways  host-a and host-b with certificates from a fresh CA and a SASL user, on 127.0.0.1 ...');
  const pair = await startLocalPair({ dir, targetConnect: `tcp:127.0.0.1:${sink.port}`, log });
  try {
    say(`  path      sender -> 127.0.0.1:${pair.routeAddress.port} (host-a route) ==TLS 1.3 + SASL==> host-b -> 127.0.0.1:${sink.port} (receiver)`);
    const started = process.hrtime.bigint();
    const socket = await connectLoopback(pair.routeAddress.port);
    const [sent, received] = await Promise.all([exchange(socket, sizeMiB * 1048576), sink.next()]);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const intact = sent.sent === received.received && received.bytesReceived === sizeMiB * 1048576;
    say(`  moved     ${received.bytesReceived} bytes in ${seconds.toFixed(2)} s, ${(received.bytesReceived / seconds / 1e6).toFixed(0)} MB/s`);
    say(`  sha256    sent      ${sent.sent}`);
    say(`            received  ${received.received}`);
    say(intact ? 'OK: the payload arrived intact through both gateways' : 'FAILED: the payload differs');
    return intact;
  } finally {
    await pair.stop();
    await sink.close();
  }
}
