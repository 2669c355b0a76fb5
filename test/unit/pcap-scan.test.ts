import assert from 'node:assert/strict';
import { test } from 'node:test';
import { scanPcap } from '../helpers/pcap.js';
import { QEMU_STREAM_HEADER } from '../helpers/packet-capture.js';

/** A classic little-endian pcap (what tcpdump -w writes on x86) with these packets, each cut to `snaplen`. */
function pcap(packets: readonly Buffer[], snaplen: number): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(snaplen, 16);
  header.writeUInt32LE(1, 20); // Ethernet
  const records = packets.map((p) => {
    const kept = p.subarray(0, snaplen);
    const r = Buffer.alloc(16);
    r.writeUInt32LE(kept.length, 8);
    r.writeUInt32LE(p.length, 12);
    return Buffer.concat([r, kept]);
  });
  return Buffer.concat([header, ...records]);
}

const frame = (payload: Buffer, size: number): Buffer => Buffer.concat([Buffer.alloc(66, 0x11), payload, Buffer.alloc(Math.max(0, size - 66 - payload.length), 0x22)]);

test('pcap scan: finds a plain QEMU stream header at the start of a segment and sums wire bytes past the snaplen', () => {
  const file = pcap([frame(Buffer.alloc(0), 1500), frame(Buffer.concat([QEMU_STREAM_HEADER, Buffer.from('rest')]), 9000), frame(Buffer.alloc(0), 64)], 256);
  const scan = scanPcap(file, QEMU_STREAM_HEADER);
  assert.deepEqual(scan.markerPackets, [1]);
  assert.equal(scan.packets, 3);
  assert.equal(scan.wireBytes, 1500 + 9000 + 66);
  assert.equal(scan.capturedBytes, 256 + 256 + 66);
});

test('pcap scan: the magic without the version (or beyond the snaplen) is not a stream header', () => {
  const magicOnly = frame(Buffer.from('QEVM\x00\x00\x00\x04', 'latin1'), 200);
  const late = frame(Buffer.concat([Buffer.alloc(300), QEMU_STREAM_HEADER]), 1000);
  const scan = scanPcap(pcap([magicOnly, late], 256), QEMU_STREAM_HEADER);
  assert.deepEqual(scan.markerPackets, []);
  assert.equal(scan.packets, 2);
});

test('pcap scan: a truncated last record is ignored, a non-pcap file is refused', () => {
  const file = pcap([frame(Buffer.alloc(0), 100), frame(QEMU_STREAM_HEADER, 100)], 256);
  const scan = scanPcap(file.subarray(0, file.length - 10), QEMU_STREAM_HEADER);
  assert.equal(scan.packets, 1);
  assert.throws(() => scanPcap(Buffer.alloc(40, 0x41), QEMU_STREAM_HEADER), /not a pcap file/);
});
