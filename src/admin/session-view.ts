import type { ChannelEntry } from '../gateway/channel-table.js';

/** What `vmgate sessions` shows: one entry per migration session, with its channels. */
export interface SessionView {
  session: string;
  role: 'route' | 'server';
  /** Route name (source side) or target name (destination side). */
  target: string;
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
  state: 'relaying' | 'closing';
}

export function sessionViews(entries: ChannelEntry[], now = Date.now()): SessionView[] {
  const byKey = new Map<string, SessionView>();
  for (const e of entries) {
    const key = `${e.role}/${e.session}`;
    let v = byKey.get(key);
    if (!v) {
      v = { session: e.session, role: e.role, target: e.target, peer: e.peer, ageMs: 0, bytesIn: 0, bytesOut: 0, channels: [] };
      byKey.set(key, v);
    }
    const c = e.relay.counters;
    v.bytesIn += c.bytesIn;
    v.bytesOut += c.bytesOut;
    v.ageMs = Math.max(v.ageMs, now - e.startedAt);
    v.channels.push({ channel: e.channel, bytesIn: c.bytesIn, bytesOut: c.bytesOut, ageMs: now - e.startedAt, state: e.relay.closing ? 'closing' : 'relaying' });
  }
  for (const v of byKey.values()) v.channels.sort((a, b) => a.channel - b.channel);
  return [...byKey.values()].sort((a, b) => b.ageMs - a.ageMs);
}
