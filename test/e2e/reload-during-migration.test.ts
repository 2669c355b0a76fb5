/**
 * An operator renews certificates while a migration runs, and the new
 * certificate file is broken. SIGHUP must not disturb the migration in
 * flight, must not leave the gateway without an identity, and must say what
 * is wrong and where.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../helpers/gateway-process.js';
import { MID_MIGRATION_BYTES, QEMU_URI, SLOW_BANDWIDTH, isChannelClose, startNetnsGateways, waitForTransferred, type NetnsGateways } from '../helpers/netns-gateways.js';
import { migrateAndWait, type MigrationPlan } from '../helpers/qemu.js';

const TIMEOUT_MS = 30_000;

describe('SIGHUP with a broken certificate during a migration', { timeout: 4 * 60_000 }, () => {
  let stage: NetnsGateways;

  before(async () => {
    stage = await startNetnsGateways({ subnet: '10.250.43.0/30', tag: 'reload', guestMiB: 256, imageMiB: 128 });
  });
  after(async () => {
    await stage?.close();
  });

  /** The identity line of `vmgate status` on host-b: subject and expiry of the certificate in use. */
  async function identityOfB(): Promise<string> {
    const r = await runCli(['status', '--socket', stage.controlB]);
    assert.equal(r.code, 0, r.stderr);
    const line = /^ {2}identity: .*$/m.exec(r.stdout)?.[0];
    assert.ok(line !== undefined, r.stdout);
    return line;
  }

  /** One paused-guest migration through the gateways: completed, all of RAM equal, both channel ends "ok". */
  async function migrate(name: string, plan: MigrationPlan, during?: () => Promise<void>): Promise<void> {
    const { gwA, gwB } = stage;
    const fromA = gwA.logs.length;
    const fromB = gwB.logs.length;
    const src = await stage.source(`src-${name}`, { plan });
    const dst = await stage.destination(`dst-${name}`, { plan });
    const srcHash = await src.ramHash();
    const migration = migrateAndWait(src, dst, QEMU_URI, plan, TIMEOUT_MS * 2);
    if (during !== undefined) {
      await waitForTransferred(src, MID_MIGRATION_BYTES, TIMEOUT_MS);
      await during();
      assert.equal((await src.qmp.queryMigrate()).status, 'active', 'the reload happened mid-migration');
    }
    const result = await migration;
    assert.equal(result.destinationState, 'prelaunch');
    assert.equal(await dst.ramHash(), srcHash, 'destination RAM differs from the source');
    const [a] = await gwA.waitForLogs(isChannelClose, 1, TIMEOUT_MS, fromA);
    const [b] = await gwB.waitForLogs(isChannelClose, 1, TIMEOUT_MS, fromB);
    assert.equal(a?.['cause'], 'ok', JSON.stringify(a));
    assert.equal(b?.['cause'], 'ok', JSON.stringify(b));
    assert.equal(a?.['bytesOut'], b?.['bytesIn'], 'every byte sent by host-a arrived at host-b');
    await Promise.all([src.kill(), dst.kill()]);
  }

  test('reload-broken-cert-during-migration: the migration completes, the old identity stays, the log says why', async () => {
    const { gwB } = stage;
    const identity = await identityOfB();
    // `vmgate status` text is what the operator reads.
    assert.match(identity, /identity: CN=host-b, valid until /);
    const certFile = join(stage.pki.hostB, 'server-cert.pem');
    const fromB = gwB.logs.length;

    await migrate('during-reload', { mode: 'precopy', maxBandwidth: SLOW_BANDWIDTH }, async () => {
      await writeFile(certFile, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
      process.kill(gwB.pid, 'SIGHUP');
      const failed = await gwB.waitForLog((l) => l.event === 'reload-failed', TIMEOUT_MS);
      assert.equal(failed['cause'], 'identity-invalid', JSON.stringify(failed));
      assert.ok(String(failed.msg).includes(certFile), `the log names the file it could not load: ${JSON.stringify(failed)}`);
      // The cause is asserted above; that the gateway keeps running on the old state is said only in the sentence.
      assert.match(String(failed.msg), /keeping the last good state/);
    });
    assert.equal(gwB.logs.slice(fromB).filter((l) => l.event === 'reloaded').length, 0, 'nothing was swapped in');
    assert.equal(await identityOfB(), identity, 'the same identity after the failed reload');

    // New channels still get the old identity: a fresh TLS handshake with host-b succeeds.
    await migrate('after-reload', { mode: 'precopy' });
  });
});
