import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../log/logger.js';
import { startLocalPair } from '../demo/local-pair.js';
import { connectLoopback, exchange, startSink } from '../demo/payload.js';

export interface DemoOptions {
  sizeMiB: number;
  forcePayload: boolean;
  keep: boolean;
}

/**
 * `vmgate demo`: a throwaway PKI, credential store and two gateways on
 * loopback; a real QEMU migration through them when QEMU is installed, a
 * random payload otherwise. Returns whether the data arrived intact.
 */
export async function runDemo(o: DemoOptions): Promise<boolean> {
  const dir = await mkdtemp(join(tmpdir(), 'vmgate-demo-'));
  const log = createLogger('warn');
  const say = (s: string): void => console.log(s);
  try {
    say(`vmgate demo in ${dir}`);
    say('  made a CA, host-a and host-b certificates, a SASL user; starting two gateways on 127.0.0.1 ...');
    return await payloadDemo(dir, o.sizeMiB, log, say);
  } finally {
    if (o.keep) say(`  kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

async function payloadDemo(dir: string, sizeMiB: number, log: ReturnType<typeof createLogger>, say: (s: string) => void): Promise<boolean> {
  const sink = await startSink(0);
  const pair = await startLocalPair({ dir, targetConnect: `tcp:127.0.0.1:${sink.port}`, log });
  try {
    say(`  source -> tcp:127.0.0.1:${pair.routeAddress.port} (host-a route) ==TLS 1.3 + SASL==> host-b -> tcp:127.0.0.1:${sink.port} (sink)`);
    const started = process.hrtime.bigint();
    const socket = await connectLoopback(pair.routeAddress.port);
    const [sent, received] = await Promise.all([exchange(socket, sizeMiB * 1048576), sink.next()]);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const intact = sent.sent === received.received && received.bytesReceived === sizeMiB * 1048576;
    say(`  moved ${received.bytesReceived} bytes in ${seconds.toFixed(2)} s (${(received.bytesReceived / seconds / 1e6).toFixed(0)} MB/s)`);
    say(`  sha256 sent     ${sent.sent}`);
    say(`  sha256 received ${received.received}`);
    say(intact ? 'OK: the payload arrived intact through both gateways' : 'FAILED: the payload differs');
    return intact;
  } finally {
    await pair.stop();
    await sink.close();
  }
}
