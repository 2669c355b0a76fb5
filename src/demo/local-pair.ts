import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CredentialStore } from '../auth/credential-store.js';
import { loadConfig } from '../config/load.js';
import { Gateway } from '../daemon/gateway.js';
import type { Logger } from '../log/logger.js';
import { createCa, issueCertificate } from '../pki/index.js';

/**
 * Two gateways on loopback, "host-a" (a route) and "host-b" (a server with one
 * target), built exactly as an operator would: a CA and host certificates
 * from the PKI library, a credential store, a password file and two YAML
 * config files on disk. Used by `vmgate demo` and by the integration tests.
 */
export interface LocalPair {
  dir: string;
  a: Gateway;
  b: Gateway;
  /** Where the source QEMU (or any sender) connects: the route's listener. */
  routeAddress: { host: string; port: number };
  configFiles: { a: string; b: string };
  /** Stops both; channels get `graceMs` to finish on their own first. */
  stop(graceMs?: number): Promise<void>;
}

export interface LocalPairOptions {
  dir: string;
  /** The target host-b connects to, e.g. `tcp:127.0.0.1:49152`. */
  targetConnect: string;
  log: Logger;
  /** Host dirs in QEMU layout to use instead of fresh ones. */
  pkiA?: string;
  pkiB?: string;
  user?: string;
  password?: string;
  /** host-a's routes.to-b.probeIntervalMs (default: the config default); 0 keeps the path cold for tests that count logins and refusals. */
  probeIntervalMs?: number;
  /** Given host-b's TLS port on 127.0.0.1, the loopback port host-a's route should dial instead (a test's proxy on the hop). */
  hop?: (bPort: number) => Promise<number>;
  /** Extra keys merged into each config (tests use this to break things). */
  tweakA?: (c: Record<string, unknown>) => void;
  tweakB?: (c: Record<string, unknown>) => void;
}

export async function makeLocalPki(dir: string, keyBits = 3072): Promise<{ caDir: string; hostA: string; hostB: string }> {
  const caDir = join(dir, 'ca');
  const weak = keyBits < 3072 ? { allowWeakKeyForTests: true } : {};
  await createCa({ dir: caDir, commonName: 'vmgate demo CA', keyBits, ...weak });
  const hostA = join(dir, 'pki-a');
  const hostB = join(dir, 'pki-b');
  await issueCertificate({ caDir, outDir: hostA, commonName: 'host-a', dns: ['host-a'], ips: ['127.0.0.1'], keyBits, ...weak });
  await issueCertificate({ caDir, outDir: hostB, commonName: 'host-b', dns: ['host-b'], ips: ['127.0.0.1'], keyBits, ...weak });
  return { caDir, hostA, hostB };
}

/** The files of a local pair on disk, before any gateway runs. */
export interface PairFiles {
  /** host-b's config (the server with target `incoming`). */
  fileB: string;
  /** Writes host-a's config (route `to-b`) once host-b's TLS port is known; returns its path. */
  writeA(bPort: number): Promise<string>;
}

/**
 * Writes everything an operator would for the pair: PKI (unless given),
 * credential store, route password file and host-b's config. Used by
 * `startLocalPair` (gateways in this process) and by the handshake probe
 * (gateways as separate `vmgate run` processes).
 */
export async function writePairFiles(o: Omit<LocalPairOptions, 'log'>): Promise<PairFiles> {
  await mkdir(o.dir, { recursive: true, mode: 0o700 });
  const user = o.user ?? 'migrate';
  const password = o.password ?? randomBytes(18).toString('base64url');
  let pkiA = o.pkiA;
  let pkiB = o.pkiB;
  if (pkiA === undefined || pkiB === undefined) {
    const pki = await makeLocalPki(o.dir, 2048);
    pkiA ??= pki.hostA;
    pkiB ??= pki.hostB;
  }
  const store = CredentialStore.empty();
  await store.setPassword(user, password);
  await store.save(join(o.dir, 'users.json'));
  await writeFile(join(o.dir, 'to-b.password'), `${password}\n`, { mode: 0o600 });

  const configB: Record<string, unknown> = {
    name: 'host-b',
    tls: { dir: pkiB },
    server: {
      listen: '127.0.0.1:0',
      credentials: './users.json',
      targets: { incoming: { connect: o.targetConnect, allow: [{ peer: 'host-a', user }] } },
    },
  };
  o.tweakB?.(configB);
  const fileB = join(o.dir, 'host-b.yaml');
  await writeFile(fileB, stringify(configB));
  const routeA = pkiA;
  return {
    fileB,
    async writeA(bPort: number): Promise<string> {
      const configA: Record<string, unknown> = {
        name: 'host-a',
        tls: { dir: routeA },
        routes: {
          'to-b': {
            listen: 'tcp:127.0.0.1:0', peer: `127.0.0.1:${bPort}`, peerName: 'host-b', target: 'incoming', user, passwordFile: './to-b.password',
            ...(o.probeIntervalMs === undefined ? {} : { probeIntervalMs: o.probeIntervalMs }),
          },
        },
      };
      o.tweakA?.(configA);
      const fileA = join(o.dir, 'host-a.yaml');
      await writeFile(fileA, stringify(configA));
      return fileA;
    },
  };
}

export async function startLocalPair(o: LocalPairOptions): Promise<LocalPair> {
  const files = await writePairFiles(o);
  const fileB = files.fileB;
  const b = await Gateway.start(await loadConfig(fileB), o.log.child({ gateway: 'host-b' }));
  const bPort = b.serverAddress()?.port ?? 0;
  let a: Gateway;
  let fileA: string;
  try {
    fileA = await files.writeA(o.hop ? await o.hop(bPort) : bPort);
    a = await Gateway.start(await loadConfig(fileA), o.log.child({ gateway: 'host-a' }));
  } catch (e: unknown) {
    await b.stop();
    throw e;
  }
  const addr = /^tcp:(.+):(\d+)$/.exec(a.routeAddress('to-b') ?? '');
  return {
    dir: o.dir,
    a,
    b,
    routeAddress: { host: addr?.[1] ?? '127.0.0.1', port: Number(addr?.[2] ?? 0) },
    configFiles: { a: fileA, b: fileB },
    async stop(graceMs = 2_000) {
      await Promise.all([a.stop(graceMs), b.stop(graceMs)]);
    },
  };
}
