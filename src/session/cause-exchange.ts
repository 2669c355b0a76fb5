import { VmgateError, messageOf, type ErrorCode } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { RelayResult } from '../relay/relay.js';
import { mib } from './channel-end-log.js';
import type { ChannelTable } from './channel-table.js';
import { EndRecords, type EndRecord } from './end-records.js';

/**
 * Causes from both ends. A reset carries no reason, and a gateway whose
 * reading is paused by backpressure (a stopped destination QEMU) cannot even
 * see one. So the two gateways exchange causes in the control protocol, on a
 * short extra connection (docs/protocol.md):
 * - the source gateway that ends a channel tells the destination (ABORT),
 *   which ends its legs with the same cause at once;
 * - a source gateway that sees a reset asks the destination how the channel
 *   ended there (REPORT) and logs that cause.
 * The destination keeps recent ends (EndRecords) to answer REPORT, and
 * briefly waits for the ABORT that explains a reset it saw.
 */

/** Channel ends of one session collected for a single ABORT to the peer. */
const ABORT_BATCH_MS = 20;
/** How long the source waits for the peer's account of a reset before logging without it. */
const REPORT_TIMEOUT_MS = 3_000;
/** After a reset from the source gateway, how long the destination waits for its ABORT saying why. */
const NOTICE_WAIT_MS = 1_000;

/** What the source side needs of its peer: the two requests, each on its own connection. */
export interface CausePeer {
  abort(session: string, channels: number[], code: ErrorCode, message: string): Promise<number>;
  report(session: string, channel: number): Promise<{ code: ErrorCode | 'ok'; message: string; bytesIn: number; bytesOut: number }>;
}

/** The source side (a route): ends that started here are announced; a reset from the peer is explained by asking it. */
export class SourceCauses {
  private readonly pendingAborts = new Map<string, { channels: number[]; code: ErrorCode; message: string }>();

  constructor(private readonly peer: CausePeer) {}

  /** The result to log for a channel that ended with `r`. */
  async afterEnd(session: string, channel: number, r: RelayResult, log: Logger): Promise<RelayResult> {
    // An ABORT record from the peer already said why, and the peer knows.
    if (r.cause === 'ok' || r.fromPeer === true) return r;
    if (r.cause !== 'peer-reset') {
      this.announce(session, channel, r.cause, r.message, log);
      return r;
    }
    try {
      const report = await withTimeout(this.peer.report(session, channel), REPORT_TIMEOUT_MS);
      if (report.code === 'ok') return r;
      const peerEnd = `destination: ${report.message} (after ${mib(report.bytesIn)} received, ${mib(report.bytesOut)} sent there)`;
      return { ...r, cause: report.code, message: peerEnd };
    } catch (e: unknown) {
      log.debug({ event: 'report-failed' }, `could not ask the peer why channel ${channel} ended: ${messageOf(e)}`);
      return r;
    }
  }

  /** ABORT, batched per session: QEMU's channels of one migration end together. */
  private announce(session: string, channel: number, code: ErrorCode, message: string, log: Logger): void {
    const pending = this.pendingAborts.get(session);
    if (pending) {
      pending.channels.push(channel);
      return;
    }
    this.pendingAborts.set(session, { channels: [channel], code, message });
    setTimeout(() => {
      const batch = this.pendingAborts.get(session);
      this.pendingAborts.delete(session);
      if (!batch) return;
      this.peer.abort(session, batch.channels, batch.code, batch.message).then(
        (n) => log.debug({ event: 'abort-announced', channels: batch.channels, ended: n }, `told the peer to end ${n} channel(s) (${batch.code})`),
        (e: unknown) => log.warn({ event: 'abort-announce-failed', channels: batch.channels }, `could not tell the peer that the session ended (${batch.code}): ${messageOf(e)}; it will notice by reset or stall`),
      );
    }, ABORT_BATCH_MS).unref();
  }
}

/**
 * Where the destination's ABORT and REPORT look for channels. In one
 * process that is this process; with `workers` > 1 the request may land in
 * another worker than the channels it names, so a worker passes an
 * implementation that asks every worker through the primary (src/workers).
 */
export interface PeerNotices {
  /** Ends these channels of the owner's session wherever they run; returns how many ended. */
  abort(owner: string, session: string, channels: number[], code: ErrorCode, message: string): Promise<number>;
  /** How a channel of the owner's session ended, wherever it ran. */
  report(owner: string, session: string, channel: number): Promise<EndRecord | undefined>;
}

/** The destination side (the server role) of the exchange, for the channels of this process. */
export class DestinationCauses {
  private readonly ends = new EndRecords();

  constructor(private readonly channels: ChannelTable) {}

  /** ABORT: ends these channels of the owner's session that run here, and keeps the cause for a relay about to end. */
  endChannels(owner: string, session: string, channels: number[], code: ErrorCode, message: string): number {
    let count = 0;
    for (const channel of channels) {
      const entry = this.channels.find(owner, session, channel);
      if (entry) {
        entry.relay.abort(code, `source gateway: ${message}`);
        count += 1;
      }
      this.ends.notice(owner, session, channel, { code, message });
    }
    return count;
  }

  /** REPORT: how a channel of the owner's session ended here, if it ran here. */
  lookupEnd(owner: string, session: string, channel: number): EndRecord | undefined {
    return this.ends.lookup(owner, session, channel);
  }

  /** Keeps a channel's end for REPORT; a reset is explained by the source's ABORT when it comes soon. Returns the result to log. */
  async afterEnd(owner: string, session: string, channel: number, r: RelayResult): Promise<RelayResult> {
    this.ends.record(owner, session, channel, { cause: r.cause, message: r.message, bytesIn: r.bytesIn, bytesOut: r.bytesOut });
    if (r.cause !== 'peer-reset') return r;
    // The source gateway's reset usually races ahead of its ABORT saying why.
    const notice = await this.ends.waitForNotice(owner, session, channel, NOTICE_WAIT_MS);
    return notice ? { ...r, cause: notice.code, message: `source gateway: ${notice.message}` } : r;
  }

  /** This process as the place ABORT and REPORT look (one process, no workers). */
  local(): PeerNotices {
    return {
      abort: (owner, session, channels, code, message) => Promise.resolve(this.endChannels(owner, session, channels, code, message)),
      report: (owner, session, channel) => Promise.resolve(this.lookupEnd(owner, session, channel)),
    };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new VmgateError('report-timeout', `no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
