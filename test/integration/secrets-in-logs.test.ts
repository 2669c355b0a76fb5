/**
 * No secret reaches a log line, an error or CLI output (SECURITY.md). A full
 * run with real gateway processes at log level trace: `users add`, a
 * successful transfer, a wrong password, a certificate from another CA, a
 * gateway that refuses to start on a world-readable key, and check-config on
 * it. Everything they wrote is searched for the password, the wrong password
 * and every line of every private key's PEM body. The test also checks that
 * those outputs hold the events it provoked, so an empty log cannot pass.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, cp, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connectLoopback, exchange, startSink, type PayloadSink } from '../../src/demo/payload.js';
import { GatewayProcess, runCli, writeGatewayConfig, writeSecretFile, type CliResult } from '../helpers/gateway-process.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { startProcessPair, type ProcessPair } from '../helpers/process-pair.js';
import { cliCode } from '../helpers/assert-code.js';

const PASSWORD = `Pw-${randomBytes(18).toString('base64url')}`;
const WRONG_PASSWORD = `Wrong-${randomBytes(18).toString('base64url')}`;

/** Everything a gateway process wrote. */
function outputOf(gw: GatewayProcess): string {
  return [...gw.logs.map((l) => JSON.stringify(l)), ...gw.otherStdout, gw.stderr()].join('\n');
}

/** Every base64 line of a PEM private key (the key material), and the whole body joined. */
async function keyMaterial(file: string): Promise<string[]> {
  const lines = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '' && !l.startsWith('-----'));
  return [...lines, lines.join('')];
}

describe('secrets never reach logs, errors or CLI output', { timeout: 180_000 }, () => {
  let dir: string;
  let pki: TestPki;
  let sink: PayloadSink;
  let pair: ProcessPair;
  const extra: GatewayProcess[] = [];
  const cli: Array<{ what: string; r: CliResult }> = [];
  /** What the refused start wrote (the helper's error carries its log lines and stderr). */
  let failedStart = '';

  /** A second client gateway with one route to host-b, using `pkiDir` and `password`. */
  async function clientGateway(name: string, pkiDir: string, password: string): Promise<GatewayProcess> {
    const d = join(dir, name);
    await mkdir(d, { mode: 0o700 });
    await writeSecretFile(join(d, 'pw'), password);
    await writeGatewayConfig(join(d, 'gateway.yaml'), {
      name,
      tls: { dir: pkiDir },
      log: { level: 'trace' },
      routes: { 'to-b': { listen: 'tcp:127.0.0.1:0', peer: `127.0.0.1:${pair.serverPort}`, peerName: 'host-b', target: 'incoming', user: 'migrate', passwordFile: './pw' } },
    });
    const gw = await GatewayProcess.start({ configPath: join(d, 'gateway.yaml'), name });
    extra.push(gw);
    return gw;
  }

  /** Sends a few bytes through `gw`'s route; the channel is expected to be refused. */
  async function refusedThrough(gw: GatewayProcess): Promise<void> {
    const ready = await gw.waitForLog((l) => l.event === 'ready', 1_000);
    const port = Number(/:(\d+)$/.exec((ready['routes'] as Array<{ listen: string }>)[0]?.listen ?? '')?.[1]);
    const s = await connectLoopback(port);
    s.on('error', () => undefined);
    s.end('QEVM');
    await gw.waitForLog((l) => l.event === 'channel-refused', 10_000);
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmgate-secrets-'));
    pki = await makeTestPki(join(dir, 'pki'));
    sink = await startSink(1 << 20);
    pair = await startProcessPair({ dir, pki, password: PASSWORD, targetPort: sink.port, logLevel: 'trace' });

    // The operator CLI with the password: add, update, list.
    const pwFile = join(dir, 'cli.password');
    await writeSecretFile(pwFile, PASSWORD);
    const store = join(dir, 'cli-users.json');
    for (const args of [['users', 'add', 'migrate'], ['users', 'add', 'migrate'], ['users', 'list']]) {
      cli.push({ what: args.join(' '), r: await runCli([...args, '--store', store, ...(args[1] === 'add' ? ['--password-file', pwFile] : [])]) });
    }

    // Success: a transfer through the pair.
    const client = await connectLoopback(pair.routePort);
    await Promise.all([exchange(client, 1 << 20), sink.next()]);
    await pair.b.waitForLog((l) => l.event === 'channel-close', 10_000);

    // Failures: wrong password, certificate from another CA.
    await refusedThrough(await clientGateway('host-wrong-pw', pki.hostA, WRONG_PASSWORD));
    await refusedThrough(await clientGateway('host-other-ca', pki.otherCaHost, PASSWORD));

    // A gateway that must refuse to start: its key is world-readable.
    const loose = join(dir, 'loose-pki');
    await cp(pki.hostA, loose, { recursive: true });
    await chmod(join(loose, 'server-key.pem'), 0o644);
    const looseConfig = join(dir, 'loose.yaml');
    await writeGatewayConfig(looseConfig, { name: 'host-loose', tls: { dir: loose }, log: { level: 'trace' }, routes: { 'to-b': { listen: 'tcp:127.0.0.1:0', peer: `127.0.0.1:${pair.serverPort}`, peerName: 'host-b', target: 'incoming', user: 'migrate', passwordFile: join(dir, 'a', 'to-b.password') } } });
    await assert.rejects(GatewayProcess.start({ configPath: looseConfig, name: 'host-loose' }), (e: unknown) => {
      failedStart = String(e);
      return true;
    });
    cli.push({ what: 'check-config (loose key)', r: await runCli(['check-config', looseConfig]) });
  });

  after(async () => {
    await Promise.all(extra.map((g) => g.stop()));
    await pair?.stop();
    await sink?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test('the-run-logged-what-it-did: outputs are not empty and hold the provoked events', () => {
    const b = pair.b.logs;
    assert.ok(b.some((l) => l.event === 'channel-close' && l['cause'] === 'ok'), 'host-b: no successful channel');
    assert.ok(b.some((l) => l.event === 'auth-rejected' && l['reason'] === 'bad-credentials'), 'host-b: no wrong-password line');
    assert.ok(b.some((l) => l.event === 'channel-refused' && l['cause'] === 'tls-verify-failed'), 'host-b: no other-CA refusal');
    assert.ok(pair.a.logs.some((l) => l.event === 'channel-close'), 'host-a: no channel line');
    assert.ok(extra[0]?.logs.some((l) => l.event === 'channel-refused' && l['cause'] === 'auth-failed'), 'wrong-password gateway: no auth-failed');
    assert.ok(extra[1]?.logs.some((l) => l.event === 'channel-refused' && l['cause'] === 'tls-verify-failed'), 'other-CA gateway: no tls-verify-failed');
    // The user tool's confirmations are its product: text for the operator.
    assert.match(cli[0]?.r.stdout ?? '', /added user migrate/);
    assert.match(cli[1]?.r.stdout ?? '', /updated user migrate/);
    assert.match(cli[2]?.r.stdout ?? '', /^migrate$/m);
    const check = cli[3]?.r;
    assert.notEqual(check?.code, 0);
    assert.equal(cliCode(check?.stderr ?? ''), 'file-insecure', `${check?.stdout}${check?.stderr}`);
    // The refused start is only seen through the process's output (stderr and log tail).
    assert.match(failedStart, /file-insecure.*server-key\.pem/s, 'the refused start names the code and the file');
  });

  test('no-password-no-key-material-anywhere', async () => {
    const outputs: Array<[string, string]> = [
      ...[pair.a, pair.b, ...extra].map((g): [string, string] => [`gateway ${g.name}`, outputOf(g)]),
      ...cli.map(({ what, r }): [string, string] => [`vmgate ${what}`, `${r.stdout}\n${r.stderr}`]),
    ];
    outputs.push(['refused start of host-loose', failedStart]);
    const keys: string[] = [];
    for (const d of [pki.hostA, pki.hostB, pki.otherCaHost]) {
      for (const f of ['server-key.pem', 'client-key.pem']) keys.push(...(await keyMaterial(join(d, f))));
    }
    assert.ok(keys.length > 20);
    for (const [what, text] of outputs) {
      assert.ok(text.length > 0, `${what} wrote nothing`);
      assert.ok(!text.includes(PASSWORD), `${what} wrote the password`);
      assert.ok(!text.includes(WRONG_PASSWORD), `${what} wrote the wrong password`);
      assert.ok(!text.includes(Buffer.from(PASSWORD).toString('base64')), `${what} wrote the password in base64`);
      for (const k of keys) assert.ok(!text.includes(k), `${what} wrote key material (${k.slice(0, 16)}...)`);
    }
  });
});
