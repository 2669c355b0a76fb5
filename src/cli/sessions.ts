import { adminRequest } from '../admin/admin-client.js';
import type { RouteStatus, StatusReply } from '../admin/admin-protocol.js';
import type { PathProbeStatus } from '../route/peer-probe.js';
import type { SessionView } from '../session/session-view.js';

/** `vmgate sessions|cancel|status`: clients of a running gateway's control socket. */

export async function fetchSessions(socket: string): Promise<SessionView[]> {
  return (await adminRequest(socket, { op: 'sessions' })).sessions;
}

export function sessionsTable(sessions: SessionView[], rates?: Map<string, number>): string {
  if (sessions.length === 0) return 'no migration in progress';
  const rows = [['SESSION', 'ROLE', 'ROUTE/TARGET', 'PORT', 'PEER', 'CH', 'STATE', 'SENT', 'RECEIVED', 'RATE', 'AGE']];
  for (const s of sessions) {
    const rate = rates?.get(s.session) ?? (Math.max(s.bytesIn, s.bytesOut) / Math.max(1, s.ageMs)) * 1000;
    rows.push([s.session, s.role, s.target, s.port === undefined ? '-' : String(s.port), s.peer, String(s.channels.length), stateOf(s), size(s.bytesOut), size(s.bytesIn), `${size(rate)}/s`, `${Math.round(s.ageMs / 1000)}s`]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

/** A session's state in one word: `healing N` while N of its channels wait for their link to come back. */
function stateOf(s: SessionView): string {
  const healing = s.channels.filter((c) => c.state === 'healing').length;
  if (healing > 0) return `healing ${healing}`;
  return s.channels.every((c) => c.state === 'closing') ? 'closing' : 'relaying';
}

/**
 * Polls every second. On a terminal (`redraw`) it clears the screen and
 * redraws, with a bar per session of its current rate against its peak; into
 * a pipe or file it writes one plain table per poll, with no escape
 * sequences, so `vmgate sessions --watch | tee log` stays readable. The wait
 * between polls ends early when `signal` aborts.
 */
export async function watchSessions(socket: string, write: (s: string) => void, signal: AbortSignal, o: { redraw: boolean; intervalMs?: number } = { redraw: true }): Promise<void> {
  const last = new Map<string, { bytes: number; at: number }>();
  const peak = new Map<string, number>();
  while (!signal.aborted) {
    const sessions = await fetchSessions(socket);
    const now = Date.now();
    const rates = new Map<string, number>();
    for (const s of sessions) {
      const bytes = Math.max(s.bytesIn, s.bytesOut);
      const prev = last.get(s.session);
      const rate = prev ? ((bytes - prev.bytes) / Math.max(1, now - prev.at)) * 1000 : 0;
      last.set(s.session, { bytes, at: now });
      rates.set(s.session, rate);
      peak.set(s.session, Math.max(peak.get(s.session) ?? 0, rate));
    }
    if (o.redraw) {
      const bars = sessions.map((s) => {
        const r = rates.get(s.session) ?? 0;
        const p = peak.get(s.session) ?? 0;
        const filled = p > 0 ? Math.round((r / p) * 30) : 0;
        return `${s.session.slice(0, 8)} [${'#'.repeat(filled)}${'.'.repeat(30 - filled)}] ${size(r)}/s, ${size(Math.max(s.bytesIn, s.bytesOut))} moved`;
      });
      write(`\x1b[2J\x1b[H${new Date(now).toISOString()}  (Ctrl-C to stop)\n\n${sessionsTable(sessions, rates)}\n\n${bars.join('\n')}\n`);
    } else {
      write(`${new Date(now).toISOString()}\n${sessionsTable(sessions, rates)}\n\n`);
    }
    await abortableDelay(o.intervalMs ?? 1000, signal);
  }
}

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export async function cancelSession(socket: string, session: string, channel?: number): Promise<string> {
  const r = await adminRequest(socket, channel === undefined ? { op: 'cancel', session } : { op: 'cancel', session, channel });
  return `cancelled ${r.cancelled} channel(s) of session ${session}; QEMU on both sides sees the migration fail now`;
}

/** `vmgate reload`: the daemon reloads its files and answers whether it took them (what SIGHUP does, with an answer). */
export async function reloadGateway(socket: string): Promise<string> {
  await adminRequest(socket, { op: 'reload' });
  return 'reloaded certificates, CRL, credentials and allow-lists';
}

/** `vmgate status --json`: the daemon's status reply as it came (the fields of StatusReply in src/daemon/daemon.ts). */
export async function fetchStatus(socket: string): Promise<StatusReply> {
  return adminRequest(socket, { op: 'status' });
}

export async function statusText(socket: string): Promise<string> {
  const r = await fetchStatus(socket);
  return [
    `gateway ${r.name}: up ${r.uptimeS} s`,
    `  server: ${r.server ?? 'none'}; targets: ${r.targets.join(', ') || 'none'}`,
    ...routeLines(r.routes),
    `  ${r.sessions} session(s), ${r.channels} channel(s) open`,
    ...(r.workers ? [`  workers: ${r.workers.map((w) => `pid ${w.pid} (${w.channels} channel(s))`).join(', ') || 'none running'}`] : []),
    r.identity ? `  identity: ${r.identity.subject}, valid until ${r.identity.validTo}` : '  identity: unknown (no worker process is running)',
  ].join('\n');
}

/**
 * One line per route, with the verdict of its last peer probe; for a peer
 * with several addresses, then one line per path with its own verdict.
 */
function routeLines(routes: RouteStatus[]): string[] {
  if (routes.length === 0) return ['  routes: none'];
  return routes.flatMap((x) => {
    const p = x.peer;
    const paths = p?.paths ?? [];
    const peer = p === undefined ? '' : `; peer ${verdict(p)}`;
    const line = `  route ${x.name} (${x.listen})${peer}`;
    if (paths.length < 2) return [line];
    return [line, ...paths.map((q, i) => `    path ${i + 1} ${q.address}: ${verdict(q)}`)];
  });
}

/** A probe verdict in words: the route's, or one path's. */
function verdict(p: Pick<PathProbeStatus, 'state' | 'since' | 'lastOk' | 'cause' | 'message'>): string {
  if (p.state === 'up') return `up (last check ${p.lastOk ?? '?'})`;
  if (p.state === 'down') return `DOWN since ${p.since ?? '?'} (${p.cause ?? '?'}): ${p.message ?? ''}`;
  return 'not checked yet';
}

function size(bytes: number): string {
  if (bytes >= 1 << 30) return `${(bytes / (1 << 30)).toFixed(2)} GiB`;
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(1)} KiB`;
  return `${Math.round(bytes)} B`;
}
