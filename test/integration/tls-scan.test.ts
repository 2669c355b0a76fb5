/**
 * The gateway's TLS port as an outside scanner sees it (SECURITY.md, "TLS
 * configuration"): sslscan must find TLS 1.3 only, no weak, NULL or
 * anonymous cipher, no renegotiation; and a client without a certificate is
 * asked for one and refused before anything else happens. The verdict of a
 * run is recorded in docs/security/sslscan.md.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startLocalPair, type LocalPair } from '../../src/demo/local-pair.js';
import { captureLogs, type CapturedLogs } from '../helpers/log-capture.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { requireTool } from '../helpers/require-tool.js';
import { errorFrameCode } from '../helpers/assert-code.js';

/** The TLS 1.3 suites OpenSSL enables by default: all AEAD with forward secrecy. */
const EXPECTED_SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];

/** Runs a tool without blocking: the gateway under test lives in this process. */
function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<{ failed: boolean; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => resolve({ failed: error !== null, stdout, stderr }));
    child.stdin?.end();
  });
}

/** The attributes of every `<tag .../>` element in sslscan's XML. */
function elements(xml: string, tag: string): Array<Record<string, string>> {
  return [...xml.matchAll(new RegExp(`<${tag} ([^>]*?)/?>`, 'g'))].map((m) => Object.fromEntries([...(m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((a) => [a[1] ?? '', a[2] ?? ''])));
}

describe('TLS port under sslscan', { timeout: 240_000 }, () => {
  let dir: string;
  let pki: TestPki;
  let pair: LocalPair;
  let logs: CapturedLogs;
  let port: number;
  let xml = '';

  before(async () => {
    requireTool('sslscan', 'sslscan');
    requireTool('openssl', 'openssl');
    dir = await mkdtemp(join(tmpdir(), 'vmgate-sslscan-'));
    pki = await makeTestPki(join(dir, 'pki'));
    logs = captureLogs('info');
    // Defaults for everything TLS: the scan judges the configuration an operator gets.
    pair = await startLocalPair({ dir: join(dir, 'pair'), targetConnect: 'tcp:127.0.0.1:9', log: logs.log, pkiA: pki.hostA, pkiB: pki.hostB });
    port = pair.b.serverAddress()?.port ?? 0;
    const scan = await run('sslscan', ['--no-colour', '--show-client-cas', '--xml=-', `127.0.0.1:${port}`]);
    assert.equal(scan.failed, false, `sslscan failed: ${scan.stderr}`);
    xml = scan.stdout;
  });

  after(async () => {
    await pair?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test('sslscan-tls13-only: SSLv2, SSLv3, TLS 1.0, 1.1 and 1.2 disabled; TLS 1.3 enabled', () => {
    const protocols = Object.fromEntries(elements(xml, 'protocol').map((p) => [`${p['type']}${p['version']}`, p['enabled']]));
    assert.deepEqual(protocols, { ssl2: '0', ssl3: '0', 'tls1.0': '0', 'tls1.1': '0', 'tls1.2': '0', 'tls1.3': '1' }, xml);
  });

  test('sslscan-no-weak-cipher: only the three TLS 1.3 AEAD suites, none rated weak, NULL or anonymous', () => {
    const ciphers = elements(xml, 'cipher');
    assert.deepEqual(ciphers.map((c) => c['cipher']).sort(), EXPECTED_SUITES, xml);
    for (const c of ciphers) {
      assert.equal(c['sslversion'], 'TLSv1.3');
      assert.ok(!['weak', 'medium', 'null', 'anonymous', 'insecure'].includes(c['strength'] ?? ''), `${c['cipher']} rated ${c['strength']}`);
      assert.ok(Number(c['bits']) >= 128, `${c['cipher']}: ${c['bits']} bits`);
    }
  });

  test('sslscan-no-renegotiation-no-heartbleed', () => {
    assert.equal(elements(xml, 'renegotiation')[0]?.['supported'], '0');
    for (const h of elements(xml, 'heartbleed')) assert.equal(h['vulnerable'], '0');
  });

  test('sslscan-server-asks-for-a-client-certificate-from-our-ca', () => {
    // The CertificateRequest names the acceptable issuers: our CA only.
    const cas = /<ca>\s*([^<]*?)\s*<\/ca>/.exec(xml)?.[1];
    assert.equal(cas, '/CN=vmgate test CA', xml);
  });

  test('no-client-cert-refused-before-anything-else: openssl s_client without a certificate gets ERROR tls-no-client-cert and a close', async () => {
    const from = logs.mark();
    const r = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-alpn', 'vmgate/1', '-servername', 'host-b', '-ign_eof'], 30_000);
    const out = r.stdout + r.stderr;
    // OpenSSL's own report: third-party text, no code to assert.
    assert.match(out, /Acceptable client certificate CA names\s+CN ?= ?vmgate test CA/, out);
    // The ERROR frame arrives as application data: `{"code":"tls-no-client-cert",...}`.
    assert.equal(errorFrameCode(out), 'tls-no-client-cert', out);
    // The log line's cause is the assertion: the wait matches on it.
    await logs.waitFor({ gateway: 'host-b', event: 'channel-refused', cause: 'tls-no-client-cert' }, 10_000, from);
  });
});
