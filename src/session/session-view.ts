import type { ChannelEntry } from './channel-table.js';

/**
 * One channel as plain data: what a process can tell another about its
 * channels (a worker answering the primary, see src/workers) and what the
 * views below are built from.
 */
export type ChannelSnapshot = Omit<ChannelEntry, 'relay'> & {
  bytesIn: number;
  bytesOut: number;
  closing: boolean;
  /** The link to the peer gateway is lost and being replaced. */
  healing: boolean;
  /** The process that carries the channel (a worker when `workers` > 1). */
  pid: number;
};

export function snapshotOf(e: ChannelEntry): ChannelSnapshot {
  const { relay, ...rest } = e;
  return { ...rest, bytesIn: relay.counters.bytesIn, bytesOut: relay.counters.bytesOut, closing: relay.closing, healing: relay.state === 'healing', pid: process.pid };
}

/** What `vmgate sessions` shows: one entry per migration session, with its channels. */
export interface SessionView {
  session: string;
  role: 'route' | 'server';
  /** Route name (source side) or target name (destination side). */
  target: string;
  /** On a port-range route or target: this migration's port. */
  port?: number | undefined;
  peer: string;
  ageMs: number;
  bytesIn: number;
  bytesOut: number;
  channels: ChannelView[];
}

export interface ChannelView {
  channel: number;
  bytesIn: number;
  bytesOut: number;
  ageMs: number;
  state: 'relaying' | 'closing' | 'healing';
  /** The process that carries the channel. */
  pid: number;
}

export function sessionViews(channels: ChannelSnapshot[], now = Date.now()): SessionView[] {
  const byKey = new Map<string, SessionView>();
  for (const e of channels) {
    const key = `${e.role}/${e.session}`;
    let v = byKey.get(key);
    if (!v) {
      v = { session: e.session, role: e.role, target: e.target, port: e.port, peer: e.peer, ageMs: 0, bytesIn: 0, bytesOut: 0, channels: [] };
      byKey.set(key, v);
    }
    v.bytesIn += e.bytesIn;
    v.bytesOut += e.bytesOut;
    v.ageMs = Math.max(v.ageMs, now - e.startedAt);
    v.channels.push({ channel: e.channel, bytesIn: e.bytesIn, bytesOut: e.bytesOut, ageMs: now - e.startedAt, state: e.healing ? 'healing' : e.closing ? 'closing' : 'relaying', pid: e.pid });
  }
  for (const v of byKey.values()) v.channels.sort((a, b) => a.channel - b.channel);
  return [...byKey.values()].sort((a, b) => b.ageMs - a.ageMs);
}
