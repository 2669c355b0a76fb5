import { CredentialStore } from '../auth/credential-store.js';
import type { Config } from '../config/config.js';
import { formatEndpoint, formatHostPort } from '../config/endpoint.js';
import { loadConfig } from '../config/load.js';
import { expiringSoon, loadIdentity } from '../tls/identity.js';
import { readSecretFile } from '../util/secret-file.js';

/**
 * `vmgate check-config`: loads everything `run` would load (config, identity,
 * CRL, credential store, password files) and explains what the gateway will
 * do, without opening any socket. Throws the first coded error.
 */
export async function checkConfig(file: string): Promise<string> {
  const config = await loadConfig(file);
  const identity = await loadIdentity(config.tls);
  const store = config.server ? await CredentialStore.load(config.server.credentials) : undefined;
  for (const r of config.routes) await readSecretFile(r.passwordFile, `password file of route ${r.name}`);
  const lines = [`config ${config.file} is valid.`, ...explain(config)];
  lines.push(`identity: ${identity.server.cert.subject.replace(/\n/g, ', ')} (valid until ${identity.server.cert.validTo})`);
  lines.push(`CA: ${identity.caCert.subject.replace(/\n/g, ', ')}; CRL: ${config.tls.crl ?? 'none (revoked certificates would be accepted)'}`);
  if (store) lines.push(`credential store: ${store.users().length} user(s)`);
  for (const w of expiringSoon(identity, 30)) lines.push(`warning: ${w.file} expires in ${w.daysLeft} day(s)`);
  return lines.join('\n');
}

function explain(c: Config): string[] {
  const out: string[] = [];
  if (c.server) {
    out.push(`server: accepts TLS 1.3 on ${formatHostPort(c.server.listen)}`);
    for (const t of c.server.targets.values()) {
      const who = t.allow.map((a) => `${a.peer}/${a.user}`).join(', ');
      out.push(`  target ${t.name} -> ${formatEndpoint(t.connect)} for ${who}`);
    }
  }
  for (const r of c.routes) {
    out.push(`route ${r.name}: QEMU migrates to ${formatEndpoint(r.listen)} -> ${formatHostPort(r.peer)} (${r.peerName}) target ${r.target} as ${r.user}`);
  }
  out.push(c.workers > 1 ? `processes: a primary (listeners, channel order) and ${c.workers} workers carrying the channels` : 'processes: one (workers: 1)');
  if (c.metrics) out.push(`metrics: Prometheus /metrics, /healthz, /readyz on http://${formatHostPort(c.metrics.listen)}`);
  if (!c.server && c.routes.length === 0) out.push('warning: no server and no routes: this gateway would do nothing');
  return out;
}
