import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { ConfigError, VmgateError, messageOf, type ConfigProblem } from '../errors.js';
import { describeIssue, problem } from './config-problems.js';
import type { Config, RouteConfig, ServerConfig, TargetConfig, TlsFiles } from './config.js';
import { formatEndpoint, formatHostPort, isLoopback, parseHostPort, parseLocalPorts, type HostPort, type LocalPorts } from './endpoint.js';
import { configSchema, type RawConfig } from './schema.js';

/** File names of QEMU's tls-creds-x509 directory layout. */
export const QEMU_TLS_LAYOUT = {
  ca: 'ca-cert.pem',
  cert: 'server-cert.pem',
  key: 'server-key.pem',
  clientCert: 'client-cert.pem',
  clientKey: 'client-key.pem',
  crl: 'ca-crl.pem',
} as const;

/** Reads, parses and validates a config file. Throws a ConfigError (config-invalid) listing every problem. */
export async function loadConfig(file: string): Promise<Config> {
  const path = resolve(file);
  return parseConfig(await readConfigText(path), path);
}

/** The config file's text, for a reload that is checked once and handed to worker processes as text. */
export async function readConfigText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e: unknown) {
    throw new VmgateError('config-unreadable', `cannot read config ${path}: ${messageOf(e)}`, { cause: e });
  }
}

export function parseConfig(text: string, path: string): Config {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(path, doc.errors.map((e) => problem('(top level)', 'yaml', `the file is not valid YAML: ${e.message}`)));
  }
  const root: unknown = doc.toJS() ?? {};
  const parsed = configSchema.safeParse(root);
  if (!parsed.success) {
    throw new ConfigError(path, parsed.error.issues.flatMap((i) => describeIssue(i, root, configSchema)));
  }
  const problems: ConfigProblem[] = [];
  const config = resolveConfig(parsed.data, path, problems);
  if (problems.length > 0) throw new ConfigError(path, problems);
  return config;
}

function resolveConfig(raw: RawConfig, path: string, problems: ConfigProblem[]): Config {
  const base = dirname(path);
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const tls = resolveTls(raw.tls, abs, problems);
  const server = raw.server ? resolveServer(raw.server, abs, base, problems) : undefined;
  const routes = Object.entries(raw.routes).map(([name, r]) => resolveRoute(name, r, abs, base, problems));
  checkPortOverlaps(server, routes, problems);
  return {
    file: path,
    name: raw.name ?? hostname(),
    tls,
    server,
    routes,
    channel: raw.channel,
    control: raw.control ? { socket: abs(raw.control.socket), group: raw.control.group } : undefined,
    metrics: raw.metrics ? resolveMetrics(raw.metrics, problems) : undefined,
    workers: raw.workers,
    log: raw.log,
  };
}

function resolveTls(raw: RawConfig['tls'], abs: (p: string) => string, problems: ConfigProblem[]): TlsFiles {
  const pick = (key: keyof typeof QEMU_TLS_LAYOUT): string | undefined => {
    const explicit = raw[key];
    if (explicit !== undefined) return abs(explicit);
    return raw.dir !== undefined ? resolve(abs(raw.dir), QEMU_TLS_LAYOUT[key]) : undefined;
  };
  const need = (key: Exclude<keyof typeof QEMU_TLS_LAYOUT, 'crl'>): string => {
    const p = pick(key);
    if (p === undefined) problems.push(problem(`tls.${key}`, 'missing', `tls.${key} is missing; give a file path, or set tls.dir to a QEMU tls-creds-x509 directory.`));
    return p ?? '';
  };
  const cert = need('cert');
  const key = need('key');
  // The client identity defaults to the server one: a host certificate from
  // certs/ carries both serverAuth and clientAuth.
  const clientCert = pick('clientCert') ?? cert;
  const clientKey = pick('clientKey') ?? key;
  let crl = pick('crl');
  if (crl !== undefined && raw.crl === undefined && !existsSync(crl)) crl = undefined; // optional in a dir
  return {
    ca: need('ca'), cert, key, clientCert, clientKey, crl,
    ...(raw.keyGroup !== undefined ? { keyGroup: raw.keyGroup } : {}),
    ...(raw.keyPassphraseFile !== undefined ? { keyPassphraseFile: abs(raw.keyPassphraseFile) } : {}),
  };
}

function localEndpoint(key: string, text: string, base: string, unsafe: boolean, problems: ConfigProblem[], listener: boolean): LocalPorts {
  const e = parseLocalPorts(text, base, listener);
  if (typeof e === 'string') {
    problems.push(problem(key, 'bad-value', `${key} is ${JSON.stringify(text)}; it must be ${e}.`));
    return { kind: 'unix', path: '' };
  }
  if (e.kind !== 'unix' && !isLoopback(e.host) && !unsafe) {
    problems.push(problem(
      key,
      'bad-value',
      `${key} is ${JSON.stringify(formatEndpoint(e))}, not on loopback; it must be a loopback address (127.0.0.1, ::1) or a unix socket, ` +
        'because migration streams are plain text on this leg. Set unsafeAllowNonLoopback: true beside it only if that network is trusted.',
    ));
  }
  return e;
}

/**
 * No two route listeners, and no route listener and target, may claim one
 * TCP port on one address: the gateway and QEMU (or two routes) would fight
 * over it. Different loopback addresses (127.0.0.1, 127.0.0.2, ...) do not
 * overlap, which is how one host keeps a route per peer and its own
 * incoming QEMUs apart.
 */
function checkPortOverlaps(server: ServerConfig | undefined, routes: RouteConfig[], problems: ConfigProblem[]): void {
  const listeners: Array<{ key: string; e: LocalPorts }> = [];
  const check = (key: string, e: LocalPorts, listens: boolean): void => {
    const clash = listeners.find((l) => overlap(l.e, e));
    if (clash) {
      problems.push(problem(
        key,
        'bad-value',
        `${key} is ${JSON.stringify(formatEndpoint(e))}, which overlaps ${clash.key} (${formatEndpoint(clash.e)}); give each its own ports, or its own loopback address (127.0.0.2, ...).`,
      ));
    }
    if (listens) listeners.push({ key, e });
  };
  for (const r of routes) check(`routes.${r.name}.listen`, r.listen, true);
  // Two targets may name one QEMU port; a target on a route's port would meet the gateway, not QEMU.
  for (const t of server?.targets.values() ?? []) check(`server.targets.${t.name}.connect`, t.connect, false);
}

function overlap(a: LocalPorts, b: LocalPorts): boolean {
  if (a.kind === 'unix' || b.kind === 'unix') return a.kind === 'unix' && b.kind === 'unix' && a.path === b.path;
  const [a0, a1] = a.kind === 'tcp-range' ? [a.first, a.last] : [a.port, a.port];
  const [b0, b1] = b.kind === 'tcp-range' ? [b.first, b.last] : [b.port, b.port];
  // Port 0: the kernel picks a free one.
  return a.host === b.host && a0 !== 0 && b0 !== 0 && a0 <= b1 && b0 <= a1;
}

function resolveServer(raw: NonNullable<RawConfig['server']>, abs: (p: string) => string, base: string, problems: ConfigProblem[]): ServerConfig {
  const listen = parseHostPort(raw.listen, true);
  if (typeof listen === 'string') problems.push(problem('server.listen', 'bad-value', `server.listen is ${JSON.stringify(raw.listen)}; it must be ${listen}.`));
  const targets = new Map<string, TargetConfig>();
  for (const [name, t] of Object.entries(raw.targets)) {
    const key = `server.targets.${name}`;
    if (t.allow.length === 0) {
      problems.push(problem(`${key}.allow`, 'bad-value', `${key}.allow is empty, so it admits no one; add { peer: <certificate name>, user: <SASL user> }.`));
    }
    targets.set(name, { name, connect: localEndpoint(`${key}.connect`, t.connect, base, t.unsafeAllowNonLoopback, problems, false), allow: t.allow });
  }
  return {
    listen: typeof listen === 'string' ? { host: '', port: 0 } : listen,
    credentials: abs(raw.credentials),
    targets,
    handshakeTimeoutMs: raw.handshakeTimeoutMs,
    maxHandshakes: raw.maxHandshakes,
    maxHandshakesPerAddress: raw.maxHandshakesPerAddress,
    maxChannels: raw.maxChannels,
    channelOrderTimeoutMs: raw.channelOrderTimeoutMs,
  };
}

function resolveMetrics(raw: NonNullable<RawConfig['metrics']>, problems: ConfigProblem[]): NonNullable<Config['metrics']> {
  const listen = parseHostPort(raw.listen, true);
  if (typeof listen === 'string') {
    problems.push(problem('metrics.listen', 'bad-value', `metrics.listen is ${JSON.stringify(raw.listen)}; it must be ${listen}.`));
    return { listen: { host: '', port: 0 } };
  }
  if (!isLoopback(listen.host) && !raw.unsafeAllowNonLoopback) {
    problems.push(problem(
      'metrics.listen',
      'bad-value',
      `metrics.listen is ${JSON.stringify(raw.listen)}, not on loopback; it must be a loopback address (127.0.0.1, ::1), because the endpoints are ` +
        'plain HTTP without authentication and show session, peer and certificate details. Scrape through a local agent or proxy, or set ' +
        'metrics.unsafeAllowNonLoopback: true only if that network is trusted.',
    ));
  }
  return { listen };
}

function resolveRoute(name: string, raw: RawConfig['routes'][string], abs: (p: string) => string, base: string, problems: ConfigProblem[]): RouteConfig {
  const key = `routes.${name}`;
  return {
    name,
    listen: localEndpoint(`${key}.listen`, raw.listen, base, raw.unsafeAllowNonLoopback, problems, true),
    peers: peerPaths(`${key}.peer`, raw.peer, problems),
    peerName: raw.peerName,
    target: raw.target,
    user: raw.user,
    passwordFile: abs(raw.passwordFile),
    connectTimeoutMs: raw.connectTimeoutMs,
    probeIntervalMs: raw.probeIntervalMs,
    socketGroup: raw.socketGroup,
  };
}

/**
 * `routes.NAME.peer`: one address, or a list of them in order of preference
 * (each a path to the same peer gateway). A list entry's problems name its
 * index (`routes.to-b.peer[1]`). The same address twice is refused: the
 * second path would fail whenever the first does, which is not what a
 * second path is for.
 */
function peerPaths(key: string, raw: string | string[], problems: ConfigProblem[]): HostPort[] {
  const list = typeof raw === 'string' ? [raw] : raw;
  const seen = new Map<string, string>();
  return list.map((text, i) => {
    const at = typeof raw === 'string' ? key : `${key}[${i}]`;
    const hp = parseHostPort(text);
    if (typeof hp === 'string') {
      problems.push(problem(at, 'bad-value', `${at} is ${JSON.stringify(text)}; it must be ${hp}.`));
      return { host: '', port: 0 };
    }
    const name = formatHostPort(hp).toLowerCase();
    const first = seen.get(name);
    if (first !== undefined) {
      problems.push(problem(at, 'bad-value', `${at} is ${JSON.stringify(text)}, the same address as ${first}; each path must be another address of the peer gateway (another network), so drop the duplicate.`));
    } else {
      seen.set(name, at);
    }
    return hp;
  });
}
