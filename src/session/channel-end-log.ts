import type { Logger } from '../log/logger.js';
import type { RelayResult } from '../relay/relay.js';

/**
 * The one line per channel end that an operator reads at 3 a.m.: what ended,
 * why (cause class), how far it got (bytes each way), how long and how fast.
 */
export function logChannelEnd(log: Logger, r: RelayResult): void {
  const seconds = r.durationMs / 1000;
  const moved = Math.max(r.bytesIn, r.bytesOut);
  const fields = {
    event: 'channel-close',
    cause: r.cause,
    bytesOut: r.bytesOut,
    bytesIn: r.bytesIn,
    durationMs: r.durationMs,
    rateMBps: seconds > 0 ? Math.round((moved / seconds / 1e6) * 10) / 10 : 0,
  };
  if (r.cause === 'ok') log.info(fields, `channel closed normally: ${describe(r)}`);
  else log.warn(fields, `channel failed (${r.cause}): ${r.message}; ${describe(r)}`);
}

function describe(r: RelayResult): string {
  return `${mib(r.bytesOut)} sent to peer, ${mib(r.bytesIn)} received from peer in ${(r.durationMs / 1000).toFixed(1)} s`;
}

export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}
