/**
 * Readiness for a `Type=notify` unit (deploy/vmgate.service): the daemon
 * sends READY=1 to $NOTIFY_SOCKET once it is ready, RELOADING=1 then READY=1
 * around a SIGHUP reload, and STOPPING=1 when it starts to drain. A unix
 * datagram socket stands in for systemd (no running systemd needed); the
 * messages are sent by the real systemd-notify, as under systemd.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { GatewayProcess, runCli } from '../helpers/gateway-process.js';
import { startNotifyReceiver } from '../helpers/notify-receiver.js';
import { requireTool } from '../helpers/require-tool.js';
import { writeSmallGateway } from '../helpers/small-gateway.js';

let dir: string;

before(async () => {
  requireTool('systemd-notify', 'systemd');
  dir = await mkdtemp(join(tmpdir(), 'vmgate-notify-'));
});

after(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

test('notify-ready-reload-stopping: READY=1 after ready, RELOADING=1/READY=1 on SIGHUP, STOPPING=1 on SIGTERM', { timeout: 60_000 }, async () => {
  const caseDir = await mkdtemp(join(dir, 'ok-'));
  const gwFiles = await writeSmallGateway(caseDir);
  const notify = await startNotifyReceiver(join(caseDir, 'notify.sock'));
  let gw: GatewayProcess | undefined;
  try {
    gw = await GatewayProcess.start({ configPath: gwFiles.config, name: 'notify', env: { NOTIFY_SOCKET: notify.path } });
    // start() resolved on the ready log line; READY=1 is sent only after it (src/cli/run.ts).
    const ready = await notify.waitFor('READY=1');
    assert.ok(notify.lines().includes(`MAINPID=${gw.pid}`), `the daemon names itself as the main process: ${notify.lines().join(' | ')}`);
    assert.ok(notify.lines().slice(0, ready).every((l) => !l.startsWith('RELOADING') && !l.startsWith('STOPPING')));

    process.kill(gw.pid, 'SIGHUP');
    const reloading = await notify.waitFor('RELOADING=1', ready + 1);
    await notify.waitFor('READY=1', reloading + 1);
    await gw.waitForLog((l) => l.event === 'reloaded', 10_000);

    const exit = await gw.stop(20_000);
    assert.equal(exit.code, 0, gw.diagnostics());
    await notify.waitFor('STOPPING=1', reloading + 1);
  } finally {
    await gw?.kill();
    await notify.close();
  }
});

test('notify-ready-after-refused-reload: READY=1 follows RELOADING=1 though the new files are refused', { timeout: 60_000 }, async () => {
  const caseDir = await mkdtemp(join(dir, 'refused-'));
  const gwFiles = await writeSmallGateway(caseDir);
  const notify = await startNotifyReceiver(join(caseDir, 'notify.sock'));
  let gw: GatewayProcess | undefined;
  try {
    gw = await GatewayProcess.start({ configPath: gwFiles.config, name: 'notify-refused', env: { NOTIFY_SOCKET: notify.path } });
    const ready = await notify.waitFor('READY=1');
    await writeFile(join(gwFiles.tls, 'server-cert.pem'), 'not a certificate\n');
    process.kill(gw.pid, 'SIGHUP');
    const reloading = await notify.waitFor('RELOADING=1', ready + 1);
    await notify.waitFor('READY=1', reloading + 1);
    const failed = await gw.waitForLog((l) => l.event === 'reload-failed', 10_000);
    assert.equal(failed['cause'], 'identity-invalid');
  } finally {
    await gw?.stop();
    await notify.close();
  }
});

test('notify-control-reload: vmgate reload on the control socket sends RELOADING=1 then READY=1, as SIGHUP does', { timeout: 60_000 }, async () => {
  const caseDir = await mkdtemp(join(dir, 'control-'));
  const gwFiles = await writeSmallGateway(caseDir);
  const notify = await startNotifyReceiver(join(caseDir, 'notify.sock'));
  let gw: GatewayProcess | undefined;
  try {
    gw = await GatewayProcess.start({ configPath: gwFiles.config, name: 'notify-control', env: { NOTIFY_SOCKET: notify.path } });
    const ready = await notify.waitFor('READY=1');
    const ok = await runCli(['reload', '--socket', gwFiles.control]);
    assert.equal(ok.code, 0, ok.stderr);
    const reloading = await notify.waitFor('RELOADING=1', ready + 1);
    await notify.waitFor('READY=1', reloading + 1);
    // A refused one too: the last good state serves, so READY=1 follows.
    await writeFile(join(gwFiles.tls, 'server-cert.pem'), 'not a certificate\n');
    const refused = await runCli(['reload', '--socket', gwFiles.control]);
    assert.equal(refused.code, 1, refused.stderr);
    const again = await notify.waitFor('RELOADING=1', reloading + 1);
    await notify.waitFor('READY=1', again + 1);
  } finally {
    await gw?.stop();
    await notify.close();
  }
});

test('notify-nothing-when-start-fails: no READY=1 from a gateway that cannot start', { timeout: 60_000 }, async () => {
  const caseDir = await mkdtemp(join(dir, 'fail-'));
  const gwFiles = await writeSmallGateway(caseDir);
  await writeFile(join(gwFiles.tls, 'server-key.pem'), 'not a key\n', { mode: 0o600 });
  const notify = await startNotifyReceiver(join(caseDir, 'notify.sock'));
  try {
    await assert.rejects(GatewayProcess.start({ configPath: gwFiles.config, name: 'notify-fail', env: { NOTIFY_SOCKET: notify.path } }), /exited \(code 1/);
    assert.deepEqual(notify.lines().filter((l) => l === 'READY=1'), []);
  } finally {
    await notify.close();
  }
});
