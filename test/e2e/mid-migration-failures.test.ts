/**
 * Things that go wrong in the middle of a real migration, and what each side
 * must learn: the destination QEMU dies, or the link between the hosts is cut.
 * In both cases the source QEMU's migration must end "failed" (not hang in
 * "active"), its VM keeps running, and both gateways log why, with the byte
 * counts at that moment.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MID_MIGRATION_BYTES, QEMU_PORT, QEMU_URI, RELAYED_AT_LEAST, SLOW_BANDWIDTH, isChannelClose, startNetnsGateways, waitForTransferred, type NetnsGateways } from '../helpers/netns-gateways.js';

/** Short, so that the cut link is noticed quickly; far above QEMU's rate-limit pauses (100 ms). */
const STALL_TIMEOUT_MS = 2_000;
const TIMEOUT_MS = 30_000;
const plan = { mode: 'precopy', maxBandwidth: SLOW_BANDWIDTH } as const;

describe('failures in the middle of a migration', { timeout: 4 * 60_000 }, () => {
  let stage: NetnsGateways;

  before(async () => {
    stage = await startNetnsGateways({ subnet: '10.250.41.0/30', tag: 'midfail', guestMiB: 256, imageMiB: 128, channel: { stallTimeoutMs: STALL_TIMEOUT_MS } });
  });
  after(async () => {
    await stage?.close();
  });

  test('destination-killed: the source gateway logs the destination\'s cause; the source fails and keeps running', async () => {
    const { gwA, gwB } = stage;
    const src = await stage.source('src-dstkill', { plan, running: true });
    const dst = await stage.destination('dst-killed', { plan });
    const fromA = gwA.logs.length;
    const fromB = gwB.logs.length;
    await src.migrate(QEMU_URI);
    await waitForTransferred(src, MID_MIGRATION_BYTES, TIMEOUT_MS);
    assert.deepEqual(await dst.kill(), { code: null, signal: 'SIGKILL' });

    const [b] = await gwB.waitForLogs(isChannelClose, 1, TIMEOUT_MS, fromB);
    const [a] = await gwA.waitForLogs(isChannelClose, 1, TIMEOUT_MS, fromA);
    assert.ok(a !== undefined && b !== undefined);
    assert.equal(b['cause'], 'target-closed', JSON.stringify(b));
    // The target's address and how far the channel got are in the sentences the operators read (the byte fields are checked below).
    assert.match(String(b['msg']), new RegExp(`target tcp:127\\.0\\.0\\.1:${QEMU_PORT}: `));
    // The source gateway only saw its TLS leg reset; the cause is the destination's, and says so.
    assert.equal(a['cause'], 'target-closed', `host-a logs the destination's cause: ${JSON.stringify(a)}`);
    assert.match(String(a['msg']), new RegExp(`destination: target tcp:127\\.0\\.0\\.1:${QEMU_PORT}: .*\\(after [0-9.]+ MiB received, [0-9.]+ MiB sent there\\)`));
    assert.ok(Number(a['bytesOut']) >= RELAYED_AT_LEAST, JSON.stringify(a));
    assert.ok(Number(b['bytesIn']) > 0 && Number(b['bytesIn']) <= Number(a['bytesOut']), JSON.stringify(b));

    const info = await src.qmp.waitForMigration(['failed'], TIMEOUT_MS);
    assert.equal(info.status, 'failed');
    assert.equal(await src.runState(), 'running', 'the source VM keeps running');
    await src.kill();
  });

  test('link-down-mid-migration: both gateways end the session as stalled; both QEMUs fail instead of hanging', async () => {
    const { gwA, gwB, net } = stage;
    const src = await stage.source('src-linkdown', { plan, running: true });
    const dst = await stage.destination('dst-linkdown', { plan });
    const fromA = gwA.logs.length;
    const fromB = gwB.logs.length;
    await src.migrate(QEMU_URI);
    await waitForTransferred(src, MID_MIGRATION_BYTES, TIMEOUT_MS);
    // No RST or FIN crosses a downed link: each gateway only sees silence.
    await net.linkDown();
    try {
      const [a] = await gwA.waitForLogs(isChannelClose, 1, TIMEOUT_MS, fromA);
      const [b] = await gwB.waitForLogs(isChannelClose, 1, TIMEOUT_MS, fromB);
      assert.ok(a !== undefined && b !== undefined);
      assert.equal(a['cause'], 'stalled', JSON.stringify(a));
      assert.equal(b['cause'], 'stalled', JSON.stringify(b));
      for (const [gw, line] of [[gwA, a], [gwB, b]] as const) {
        // The sentence names the key to tune (channel.stallTimeoutMs): no field carries it.
        assert.match(String(line['msg']), new RegExp(`no bytes moved .* \\(channel\\.stallTimeoutMs=${STALL_TIMEOUT_MS}\\)`), `${gw.name}: ${JSON.stringify(line)}`);
      }
      assert.ok(Number(a['bytesOut']) >= RELAYED_AT_LEAST, `host-a logs the bytes it had sent: ${JSON.stringify(a)}`);
      assert.ok(Number(b['bytesIn']) > 0 && Number(b['bytesIn']) <= Number(a['bytesOut']), `host-b logs what arrived: ${JSON.stringify(b)}`);
      // The source gateway tries to tell the peer, and says that it could not.
      const announce = await gwA.waitForLog((l) => l.event === 'abort-announce-failed' && l['session'] === a['session'], TIMEOUT_MS);
      // The announce line has no cause field: the code it failed to announce is in the sentence.
      assert.match(String(announce.msg), /could not tell the peer that the session ended \(stalled\)/);

      assert.equal((await src.qmp.waitForMigration(['failed'], TIMEOUT_MS)).status, 'failed');
      assert.equal(await src.runState(), 'running', 'the source VM keeps running');
      // A destination QEMU whose incoming migration fails exits with status 1.
      assert.deepEqual(await dst.exited, { code: 1, signal: null }, `the destination QEMU learns of it too: ${dst.stderr()}`);
      // QEMU's own report: third-party text, no code.
      assert.match(dst.stderr(), /load of migration failed/);
    } finally {
      await net.linkUp();
    }
    await Promise.all([src.kill(), dst.kill()]);
  });
});
