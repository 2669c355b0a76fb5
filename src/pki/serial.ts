/** Certificate serial numbers: 16 random bytes, positive, minimal DER, lower-case hex. */
import { randomBytes } from 'node:crypto';
import { VmgateError } from '../errors.js';

export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f; // positive: the top bit of an INTEGER is its sign
  if (b[0] === 0) b[0] = 0x01; // and minimal: no leading zero octet
  return b.toString('hex');
}

/**
 * Normalises a serial typed by a person or printed by another tool
 * (`4A:3F:...`, `0x4a3f...`, `004a3f...`) to the form the index keeps.
 */
export function normalizeSerial(input: string): string {
  let s = input.trim().toLowerCase().replace(/^0x/, '').replace(/[:\s]/g, '');
  if (!/^[0-9a-f]+$/.test(s) || s.length > 40) {
    throw new VmgateError('pki-bad-input', `serial ${JSON.stringify(input)} is not a hexadecimal certificate serial`);
  }
  s = s.replace(/^0+/, '');
  if (s.length === 0) throw new VmgateError('pki-bad-input', 'serial 0 is never issued');
  return s.length % 2 === 1 ? `0${s}` : s;
}
