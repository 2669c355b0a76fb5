/**
 * Certificates minted per test run by the project's own PKI code. Every field
 * but `root` and `caDir` is a host directory in QEMU's tls-creds-x509 layout
 * (ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem,
 * client-key.pem, ca-crl.pem). 2048-bit keys, for speed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { createCa, createSelfSignedHost, issueCertificate, publishCrl, revokeCertificate, type IssueOptions, type IssueResult } from '../../src/pki/index.js';

export interface TestPki {
  root: string;
  /** The main CA (ca-cert.pem, ca-key.pem unencrypted, ca-crl.pem, index.json). */
  caDir: string;
  /** CN/DNS host-a, IP 127.0.0.1, server+client usage. */
  hostA: string;
  /** CN/DNS host-b, IP 127.0.0.1, server+client usage. */
  hostB: string;
  /** CN/DNS host-revoked, IP 127.0.0.1: revoked in the main CA's CRL. */
  revoked: string;
  /** CN/DNS host-a, IP 127.0.0.1, issued by a different CA (its ca-cert.pem is that CA). */
  otherCaHost: string;
  /** CN/DNS host-expired, IP 127.0.0.1: notAfter yesterday. */
  expired: string;
  /** CN/DNS host-server-only, IP 127.0.0.1: EKU serverAuth only, so unusable as a client. */
  serverOnly: string;
  /** CN host-client: client-cert.pem / client-key.pem only, EKU clientAuth. */
  clientOnly: string;
  /** A self-signed host-a (DNS host-a, IP 127.0.0.1); ca-cert.pem is itself; no ca-crl.pem. */
  selfSigned: string;
}

export const TEST_KEY_BITS = 2048;
const DAY = 86_400_000;

/**
 * Builds the whole set under `root` (which should be an empty per-test
 * directory). Every main-CA directory ends up with the CRL that revokes
 * `revoked`.
 */
export async function makeTestPki(root: string): Promise<TestPki> {
  const caDir = join(root, 'ca');
  const otherCaDir = join(root, 'other-ca');
  const weak = { keyBits: TEST_KEY_BITS, allowWeakKeyForTests: true } as const;
  await Promise.all([
    createCa({ dir: caDir, commonName: 'vmgate test CA', ...weak }),
    createCa({ dir: otherCaDir, commonName: 'vmgate other test CA', ...weak }),
  ]);
  const dir = (name: string): string => join(root, name);
  const host = (name: string, cn: string, extra: Partial<IssueOptions> = {}): Promise<IssueResult> =>
    issueCertificate({ caDir, outDir: dir(name), commonName: cn, dns: [cn], ips: ['127.0.0.1'], ...weak, ...extra });
  const now = Date.now();
  const [, , revoked] = await Promise.all([
    host('host-a', 'host-a'),
    host('host-b', 'host-b'),
    host('revoked', 'host-revoked'),
    host('expired', 'host-expired', { notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - DAY) }),
    host('server-only', 'host-server-only', { extKeyUsage: ['serverAuth'] }),
    issueCertificate({ caDir, outDir: dir('client-only'), commonName: 'host-client', kind: 'client', ...weak }),
    issueCertificate({ caDir: otherCaDir, outDir: dir('other-ca-host'), commonName: 'host-a', dns: ['host-a'], ips: ['127.0.0.1'], ...weak }),
    createSelfSignedHost({ outDir: dir('self-signed'), commonName: 'host-a', dns: ['host-a'], ips: ['127.0.0.1'], ...weak }),
  ]);
  await revokeCertificate({ caDir, serial: revoked.serial, reason: 'keyCompromise' });
  const mainCaHosts = ['host-a', 'host-b', 'revoked', 'expired', 'server-only', 'client-only'].map(dir);
  await publishCrl({ caDir, to: mainCaHosts });
  return {
    root,
    caDir,
    hostA: dir('host-a'),
    hostB: dir('host-b'),
    revoked: dir('revoked'),
    otherCaHost: dir('other-ca-host'),
    expired: dir('expired'),
    serverOnly: dir('server-only'),
    clientOnly: dir('client-only'),
    selfSigned: dir('self-signed'),
  };
}

/**
 * A renewed host certificate from the main CA into `outDir` (CN/DNS `cn`,
 * IP 127.0.0.1) that ends at `notAfter`, whole seconds as in the certificate.
 */
export async function renewHost(pki: TestPki, outDir: string, cn: string, notAfter: Date): Promise<IssueResult> {
  return issueCertificate({ caDir: pki.caDir, outDir, commonName: cn, dns: [cn], ips: ['127.0.0.1'], keyBits: TEST_KEY_BITS, allowWeakKeyForTests: true, notAfter });
}

/**
 * The usual set-up of a test file that runs gateways: before its tests, a
 * fresh temp directory with a test PKI in `pki/` under it (handed to `use`);
 * after them, the directory is removed.
 */
export function withTestPki(prefix: string, use: (dir: string, pki: TestPki) => void): void {
  let dir: string | undefined;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
    use(dir, await makeTestPki(join(dir, 'pki')));
  });
  after(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });
}
