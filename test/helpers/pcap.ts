/**
 * Reads a classic pcap file (what `tcpdump -w` writes) far enough to answer
 * two questions about a capture: how many bytes crossed the wire, and does
 * any captured packet contain a marker.
 */

export interface PcapScan {
  readonly packets: number;
  /** Sum of the packets' original lengths: bytes on the wire, even when the capture kept less (snaplen). */
  readonly wireBytes: number;
  /** Sum of the bytes the capture kept. */
  readonly capturedBytes: number;
  /** Indexes (0-based) of packets whose captured bytes contain the marker. */
  readonly markerPackets: readonly number[];
}

const GLOBAL_HEADER = 24;
const RECORD_HEADER = 16;

/** Scans a pcap file's contents; throws on anything but a well-formed classic pcap (either byte order, µs or ns). */
export function scanPcap(file: Buffer, marker: Buffer): PcapScan {
  if (file.length < GLOBAL_HEADER) throw new Error(`not a pcap file: ${file.length} bytes`);
  const magic = file.readUInt32LE(0);
  let le: boolean;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) le = true;
  else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) le = false;
  else throw new Error(`not a pcap file: magic 0x${magic.toString(16)}`);
  const u32 = (at: number): number => (le ? file.readUInt32LE(at) : file.readUInt32BE(at));
  let packets = 0;
  let wireBytes = 0;
  let capturedBytes = 0;
  const markerPackets: number[] = [];
  let at = GLOBAL_HEADER;
  while (at < file.length) {
    // tcpdump killed mid-write can leave a truncated last record: ignore it.
    if (at + RECORD_HEADER > file.length) break;
    const inclLen = u32(at + 8);
    const origLen = u32(at + 12);
    const start = at + RECORD_HEADER;
    if (start + inclLen > file.length) break;
    if (file.subarray(start, start + inclLen).includes(marker)) markerPackets.push(packets);
    packets++;
    wireBytes += origLen;
    capturedBytes += inclLen;
    at = start + inclLen;
  }
  return { packets, wireBytes, capturedBytes, markerPackets };
}
