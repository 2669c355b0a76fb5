/**
 * tcpdump on an interface inside a network namespace, for claims about what
 * crossed the link between the test "hosts":
 *
 *   const cap = await startCapture({ netns: net.a, ifname: net.ifname, file: join(dir, 'hop.pcap') });
 *   ... migrate ...
 *   const scan = await cap.stop(QEMU_STREAM_HEADER);   // packets, wireBytes, markerPackets
 *
 * The capture keeps only the first SNAPLEN bytes of each packet: enough for
 * the headers and the start of each TCP segment's payload, where a plain QEMU
 * migration stream shows its header, and small enough that hundreds of MiB of
 * migration traffic make a capture of a few MiB.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { onProcessExit } from './netns.js';
import { scanPcap, type PcapScan } from './pcap.js';

/** Ethernet 14 + IPv4 up to 60 + TCP up to 60 leave at least 122 bytes of payload. */
const SNAPLEN = 256;

/**
 * What every QEMU migration stream starts with: the magic "QEVM" and file
 * format version 3 (migration/savevm.c). Looking for all 8 bytes rather than
 * the 4-byte magic alone: 4 given bytes turn up by chance about once per
 * 4 GiB of random data (TLS records), 8 bytes practically never.
 */
export const QEMU_STREAM_HEADER = Buffer.from([0x51, 0x45, 0x56, 0x4d, 0x00, 0x00, 0x00, 0x03]);

export interface CaptureOptions {
  readonly netns: string;
  readonly ifname: string;
  /** pcap file to write (its folder must exist). Name it *.pcap: Debian's AppArmor profile for tcpdump lets it write only such names. */
  readonly file: string;
  /** How long to wait for tcpdump to say it is listening. Default 10 s. */
  readonly startTimeoutMs?: number;
}

export interface Capture {
  /** Stops tcpdump (SIGINT, so it flushes), then scans the file for `marker`. */
  stop(marker: Buffer): Promise<PcapScan>;
  /** Kills tcpdump without reading anything. Idempotent. */
  kill(): Promise<void>;
}

export async function startCapture(o: CaptureOptions): Promise<Capture> {
  // -Z root: Debian's tcpdump otherwise drops to user tcpdump, which cannot write in a 0700 test folder.
  // -U: write each packet as it comes, so nothing waits in a buffer when it stops.
  const child: ChildProcess = spawn('ip', ['netns', 'exec', o.netns, 'tcpdump', '-i', o.ifname, '-s', String(SNAPLEN), '-U', '-n', '-Z', 'root', '-w', o.file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const stderr: string[] = [];
  const exited = new Promise<number | null>((resolve) => {
    child.once('close', (code) => resolve(code));
    child.once('error', (e) => {
      stderr.push(String(e));
      resolve(null);
    });
  });
  let done = false;
  void exited.then(() => {
    done = true;
  });
  const forget = onProcessExit(() => {
    if (!done) child.kill('SIGKILL');
  });
  const kill = async (): Promise<void> => {
    if (!done) child.kill('SIGKILL');
    await exited;
    forget();
  };
  // tcpdump says "listening on IFNAME" on stderr once the capture is open.
  child.stderr?.setEncoding('utf8');
  const listening = new Promise<void>((resolve, reject) => {
    child.stderr?.on('data', (c: string) => {
      stderr.push(c);
      if (stderr.join('').includes('listening on')) resolve();
    });
    void exited.then((code) => reject(new Error(`tcpdump exited (code ${code}) before it was listening: ${stderr.join('').trim()}`)));
  });
  const timeoutMs = o.startTimeoutMs ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`tcpdump not listening after ${timeoutMs} ms: ${stderr.join('').trim()}`)), timeoutMs);
  });
  try {
    await Promise.race([listening, timedOut]);
  } catch (e: unknown) {
    await kill();
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return {
    kill,
    stop: async (marker) => {
      if (!done) child.kill('SIGINT');
      const code = await exited;
      forget();
      if (code !== 0) throw new Error(`tcpdump exited with code ${code}: ${stderr.join('').trim()}`);
      return scanPcap(await readFile(o.file), marker);
    },
  };
}
