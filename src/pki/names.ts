/**
 * Validation of the names that go into certificates: the subject CN and the
 * subject alternative names (DNS names per RFC 1123, no wildcards; IPv4 and
 * IPv6 literals). Everything is checked before any key is generated.
 */
import { isIP } from 'node:net';
import { VmgateError } from '../errors.js';

const CN_MAX = 64; // ub-common-name, RFC 5280
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export function checkCommonName(cn: string): string {
  if (cn.length === 0 || cn.length > CN_MAX) {
    throw new VmgateError('pki-bad-input', `common name must be 1 to ${CN_MAX} characters, got ${cn.length}`);
  }
  if (!/^[\x20-\x7e]+$/.test(cn) || cn !== cn.trim()) {
    throw new VmgateError('pki-bad-input', `common name ${JSON.stringify(cn)} must be printable ASCII without leading or trailing spaces`);
  }
  return cn;
}

/** RFC 1123 host name, lower-cased; wildcards, trailing dots and IP-looking names are refused. */
export function checkDnsName(name: string): string {
  const n = name.toLowerCase();
  const bad = (why: string): VmgateError => new VmgateError('pki-bad-san', `DNS name ${JSON.stringify(name)} is not valid: ${why}`);
  if (n.length === 0) throw bad('it is empty');
  if (n.length > 253) throw bad('it is longer than 253 characters');
  if (n.includes('*')) throw bad('wildcards are not issued');
  if (isIP(n) !== 0) throw bad('it is an IP address (use --ip / ips)');
  if (n.endsWith('.')) throw bad('remove the trailing dot');
  const labels = n.split('.');
  for (const label of labels) {
    if (!LABEL.test(label)) throw bad(`label ${JSON.stringify(label)} must be 1-63 letters, digits or inner hyphens`);
  }
  if (labels.length > 1 && /^[0-9]+$/.test(labels[labels.length - 1] ?? '')) throw bad('the top-level label is all digits');
  return n;
}

/** An IPv4 or IPv6 literal (no zone id, no prefix length), in canonical text form. */
export function checkIp(ip: string): string {
  if (ip.includes('%') || ip.includes('/') || isIP(ip) === 0) {
    throw new VmgateError('pki-bad-san', `IP address ${JSON.stringify(ip)} is not a plain IPv4 or IPv6 literal`);
  }
  return formatIp(ipToBytes(ip));
}

export function checkSans(dns: readonly string[] | undefined, ips: readonly string[] | undefined): { dns: string[]; ips: string[] } {
  return {
    dns: [...new Set((dns ?? []).map(checkDnsName))],
    ips: [...new Set((ips ?? []).map(checkIp))],
  };
}

/** The 4 or 16 bytes of an IP literal, as a SAN iPAddress carries them. */
export function ipToBytes(ip: string): Buffer {
  const family = isIP(ip);
  if (family === 4) return Buffer.from(ip.split('.').map((p) => Number.parseInt(p, 10)));
  if (family !== 6) throw new VmgateError('pki-bad-san', `IP address ${JSON.stringify(ip)} is not valid`);
  let text = ip;
  const tail: number[] = [];
  const dotted = /:(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1] !== undefined) {
    const v4 = dotted[1].split('.').map((p) => Number.parseInt(p, 10));
    tail.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
    text = text.slice(0, text.length - dotted[1].length); // keeps the colon before it
  }
  const [head = '', rest] = text.split('::');
  const parse = (s: string): number[] => (s.length === 0 ? [] : s.split(':').filter((g) => g.length > 0).map((g) => Number.parseInt(g, 16)));
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  const groups = rest === undefined ? [...left, ...tail] : [...left, ...new Array<number>(8 - left.length - right.length - tail.length).fill(0), ...right, ...tail];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  // compress the longest run of zero groups (RFC 5952)
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}
