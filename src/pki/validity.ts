/** Validity periods: days checked, dates derived, clocks allowed to disagree a little. */
import { VmgateError } from '../errors.js';

export const DAY_MS = 86_400_000;
/** notBefore / thisUpdate are set this far in the past so a host whose clock is behind still accepts them. */
export const BACKDATE_MS = 3_600_000;
const MAX_DAYS = 36_500;

export function checkDays(days: number | undefined, fallback: number, what: string): number {
  const d = days ?? fallback;
  if (!Number.isInteger(d) || d < 1 || d > MAX_DAYS) {
    throw new VmgateError('pki-bad-input', `${what} must be a whole number of days from 1 to ${MAX_DAYS}, got ${String(d)}`);
  }
  return d;
}

export interface Period { notBefore: Date; notAfter: Date }

/** Explicit dates (test knobs) win; otherwise [now - backdate, now + days]. */
export function period(now: Date, days: number, notBefore: Date | undefined, notAfter: Date | undefined): Period {
  const p = {
    notBefore: notBefore ?? new Date(now.getTime() - BACKDATE_MS),
    notAfter: notAfter ?? new Date(now.getTime() + days * DAY_MS),
  };
  if (Number.isNaN(p.notBefore.getTime()) || Number.isNaN(p.notAfter.getTime()) || p.notAfter <= p.notBefore) {
    throw new VmgateError('pki-bad-input', `validity period is empty or invalid: ${String(p.notBefore)} .. ${String(p.notAfter)}`);
  }
  return p;
}

export function daysLeft(notAfter: Date, now: Date): number {
  return Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS);
}
