import type { Config } from '../config/config.js';
import { formatEndpoint, formatHostPort } from '../config/endpoint.js';
import { loadConfig } from '../config/load.js';
import { VmgateError, messageOf } from '../errors.js';
import { loadReloadable, type Reloadable } from '../daemon/reloadable.js';
import { PeerClient } from '../route/peer-client.js';
import { expiringSoon } from '../tls/identity.js';
import { DISK_FILES, type FileSource } from '../util/file-source.js';
import { checkFilesAs, checkSocketGroups, type NamedFile } from './check-as-user.js';
import { daemonAccount } from './daemon-account.js';

export interface CheckConfigOptions {
  /** Also PROBE each route's peer. */
  peers?: boolean;
  /** Check files and socket groups as this user (default: root checks as the unit's user, others as themselves). */
  as?: string | undefined;
  /** The unit file and drop-ins to take User= and SupplementaryGroups= from (default: where systemd looks for vmgate.service). */
  unit?: string[] | undefined;
}

/**
 * `vmgate check-config`: loads everything `run` would load (config, identity,
 * CRL, credential store, password files) and explains what the gateway will
 * do, without opening any socket. Throws the first coded error.
 *
 * With `peers`, it then asks each route's peer once whether it would open
 * the route's target (PROBE, docs/protocol.md: TLS, login, allow-list; the
 * target is not connected): the report has every verdict, and `failure` the
 * first refusal. A setup can be checked end to end before the daemon runs.
 *
 * It also checks as the user the daemon will run as (check-as-user.ts):
 * every file readable by that user, every socket group there and in reach.
 */
export async function checkConfig(file: string, o: CheckConfigOptions = {}): Promise<{ report: string; failure?: VmgateError }> {
  const config = await loadConfig(file);
  const read: NamedFile[] = [{ path: config.file, what: 'config', secret: false }];
  const recording: FileSource = {
    secret: (path, what) => (read.push({ path, what, secret: true }), DISK_FILES.secret(path, what)),
    public: (path, what) => (read.push({ path, what, secret: false }), DISK_FILES.public(path, what)),
  };
  const state = await loadReloadable(config, undefined, recording);
  const { identity } = state;
  const lines = [`config ${config.file} is valid.`, ...explain(config)];
  lines.push(`identity: ${identity.server.cert.subject.replace(/\n/g, ', ')} (valid until ${identity.server.cert.validTo})`);
  lines.push(`CA: ${identity.caCert.subject.replace(/\n/g, ', ')}; CRL: ${config.tls.crl ?? 'none (revoked certificates would be accepted)'}`);
  if (config.server) lines.push(`credential store: ${state.credentials.users().length} user(s)`);
  for (const w of expiringSoon(identity, 30)) lines.push(`warning: ${w.file} expires in ${w.daysLeft} day(s)`);
  const { account, note } = await daemonAccount(o.as, o.unit);
  if (account) {
    const extra = account.unitGroups.length > 0 ? ` (with ${account.unitGroups.join(', ')} from the unit's SupplementaryGroups=)` : '';
    lines.push(`checked as user ${account.name} (uid ${account.uid})${extra}: ${read.length} file(s), socket groups`);
  }
  if (note) lines.push(`note: ${note}`);
  const asUser = [...(account ? await checkFilesAs(account, read) : []), ...(await checkSocketGroups(config, account))];
  for (const r of asUser) lines.push(`refused (${r.code}): ${r.message}`);
  const refusals = o.peers ? await probePeers(config, state, lines) : [];
  const firstAsUser = asUser[0];
  if (firstAsUser) return { report: lines.join('\n'), failure: asUser.length === 1 ? firstAsUser : new VmgateError(firstAsUser.code, `${asUser.length} problem(s) as the daemon's user; the first: ${firstAsUser.message}`) };
  const first = refusals[0];
  if (first === undefined) return { report: lines.join('\n') };
  return { report: lines.join('\n'), failure: new VmgateError(first.code, `a channel could not be opened over ${refusals.length} path(s); the first: ${first.message}`) };
}

/**
 * One PROBE per path of each route (each address of its peer), one after
 * the other; adds a line per path and returns the refusals. Every path is
 * checked, not just the first that answers: a second network that does not
 * work is found now, not when the first one fails.
 */
async function probePeers(config: Config, state: Reloadable, lines: string[]): Promise<VmgateError[]> {
  const refusals: VmgateError[] = [];
  for (const r of config.routes) {
    const client = new PeerClient(r, () => state.identity, () => state.passwords.get(r.name) ?? '');
    for (let i = 0; i < r.peers.length; i += 1) {
      const which = r.peers.length > 1 ? ` path ${i + 1} of ${r.peers.length}` : '';
      const who = `route ${r.name}: peer ${r.peerName}${which} (${client.pathName(i)}) target ${r.target}`;
      const started = Date.now();
      try {
        await client.probePath(i);
        lines.push(`${who}: reachable, authenticated and allowed (${Date.now() - started} ms)`);
      } catch (e: unknown) {
        const err = e instanceof VmgateError ? e : new VmgateError('internal', messageOf(e), { cause: e });
        const verdict = r.peers.length > 1 ? 'a channel over this path would fail now' : 'a migration on this route would fail now';
        lines.push(`${who}: ${verdict} (${err.code}): ${err.message}`);
        refusals.push(new VmgateError(err.code, `${who}: ${err.message}`));
      }
    }
  }
  return refusals;
}

function explain(c: Config): string[] {
  const out: string[] = [];
  if (c.server) {
    out.push(`server: accepts TLS 1.3 on ${formatHostPort(c.server.listen)}`);
    for (const t of c.server.targets.values()) {
      const who = t.allow.map((a) => `${a.peer}/${a.user}`).join(', ');
      out.push(`  target ${t.name} -> ${formatEndpoint(t.connect)} for ${who}`);
      if (t.connect.kind === 'tcp-range') out.push(`    a channel the source accepted on port P connects to port P of ${formatEndpoint(t.connect)}; other ports are refused (target-port-mismatch)`);
    }
  }
  for (const r of c.routes) {
    out.push(`route ${r.name}: QEMU migrates to ${formatEndpoint(r.listen)} -> ${r.peers.map(formatHostPort).join(', else ')} (${r.peerName}) target ${r.target} as ${r.user}`);
    if (r.listen.kind === 'tcp-range') {
      out.push(`  each port P of ${r.listen.first}-${r.listen.last} carries its own migrations to port P of target ${r.target} on ${r.peerName} (its range must hold ${r.listen.first}-${r.listen.last}); set migration_port_min = ${r.listen.first} and migration_port_max = ${r.listen.last} in qemu.conf on both hosts`);
    }
  }
  out.push(c.workers > 1 ? `processes: a primary (listeners, channel order) and ${c.workers} workers carrying the channels` : 'processes: one (workers: 1)');
  if (c.metrics) out.push(`metrics: Prometheus /metrics, /healthz, /readyz on http://${formatHostPort(c.metrics.listen)}`);
  if (!c.server && c.routes.length === 0) out.push('warning: no server and no routes: this gateway would do nothing');
  return out;
}
