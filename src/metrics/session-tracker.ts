import type { ObservedChannel, Outcome, Role } from './gateway-metrics.js';

interface OpenSession {
  role: Role;
  /** Route or target name. */
  target: string;
  channels: number;
  /** The first abnormal end among its channels; `ok` while all ended normally. */
  outcome: Outcome;
}

/**
 * Which migration sessions are in flight, and how each one ended. A session
 * is the set of channels QEMU opens for one migration (main, multifd,
 * preempt); it is over when its last channel's end is recorded, and it ended
 * `ok` only if every channel did. A channel counts from the moment it enters
 * its data phase until its end record (after the causes were exchanged with
 * the peer), so a session cannot look over while a sibling's cause is still
 * being asked for.
 */
export class SessionTracker {
  private readonly open = new Map<string, OpenSession>();

  channelStarted(c: ObservedChannel): void {
    const k = key(c);
    const s = this.open.get(k);
    if (s) s.channels += 1;
    else this.open.set(k, { role: c.role, target: c.target, channels: 1, outcome: 'ok' });
  }

  /** Records a channel end; returns the session's outcome when this was its last channel. */
  channelEnded(c: ObservedChannel, outcome: Outcome): Outcome | undefined {
    const k = key(c);
    const s = this.open.get(k);
    if (!s) return undefined;
    if (s.outcome === 'ok') s.outcome = outcome;
    s.channels -= 1;
    if (s.channels > 0) return undefined;
    this.open.delete(k);
    return s.outcome;
  }

  /** Sessions and channels in flight, per role, and of one route or target when `target` is given. */
  active(role: Role, target?: string): { sessions: number; channels: number } {
    let sessions = 0;
    let channels = 0;
    for (const s of this.open.values()) {
      if (s.role !== role || (target !== undefined && s.target !== target)) continue;
      sessions += 1;
      channels += s.channels;
    }
    return { sessions, channels };
  }
}

function key(c: ObservedChannel): string {
  return `${c.role}/${c.owner}/${c.session}`;
}
