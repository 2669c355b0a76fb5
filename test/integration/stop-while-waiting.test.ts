/**
 * A channel that waits for its turn (channel order, kept by the primary when
 * there are workers) must not hold a stopping daemon up until the order
 * timeout: systemd would wait, then kill it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ControlChannel } from '../../src/control/control-channel.js';
import { MessageType } from '../../src/control/messages.js';
import { classifyPeerError } from '../../src/tls/tls-errors.js';
import { GatewayProcess, addUser, writeGatewayConfig } from '../helpers/gateway-process.js';
import { logIn, tlsDial } from '../helpers/hostile-client.js';
import { withTestPki, type TestPki } from '../helpers/pki.js';
import { quietFor } from '../helpers/wait-for.js';

const ORDER_TIMEOUT_MS = 120_000;
const STOP_WITHIN_MS = 10_000;

let dir = '';
let pki: TestPki;
withTestPki('vmgate-stop-wait-', (d, p) => {
  dir = d;
  pki = p;
});

const targetSockets: Socket[] = [];
const target = createServer((s) => targetSockets.push(s));
after(async () => {
  for (const s of targetSockets) s.destroy();
  await new Promise((r) => target.close(r));
});

for (const workers of [1, 2]) {
  test(`stop-while-a-channel-waits-its-turn (workers ${workers}): SIGTERM ends the gateway at once, not after the order timeout`, async () => {
    await stopsWhileAChannelWaits(workers);
  });
}

async function stopsWhileAChannelWaits(workers: number): Promise<void> {
  if (!target.listening) await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  const targetPort = (target.address() as { port: number }).port;
  const password = randomBytes(18).toString('base64url');
  await addUser({ store: join(dir, `users-${workers}.json`), user: 'migrate', password });
  await writeGatewayConfig(join(dir, `b-${workers}.yaml`), {
    name: 'host-b',
    workers,
    tls: { dir: pki.hostB },
    server: {
      listen: '127.0.0.1:0',
      credentials: `./users-${workers}.json`,
      channelOrderTimeoutMs: ORDER_TIMEOUT_MS,
      targets: { incoming: { connect: `tcp:127.0.0.1:${targetPort}`, allow: [{ peer: 'host-a', user: 'migrate' }] } },
    },
  });
  const gw = await GatewayProcess.start({ configPath: join(dir, `b-${workers}.yaml`), name: 'host-b' });
  try {
    const ready = await gw.waitForLog((l) => l.event === 'ready', 1);
    const port = Number(/:(\d+)$/.exec(String(ready['server']))?.[1]);

    // Channel 1 of a session whose channel 0 never comes: it waits in the primary's order.
    const tls = await tlsDial({ port, dir: pki.hostA });
    tls.on('error', () => undefined);
    const ctrl = new ControlChannel(tls, classifyPeerError, [MessageType.OPENED]);
    await logIn({ tls, ctrl }, 'migrate', password);
    ctrl.send({ type: MessageType.OPEN, target: 'incoming', session: randomBytes(16).toString('hex'), channel: 1 });
    const answer = ctrl.expect(MessageType.OPENED).then(() => 'opened', (e: unknown) => (e as { code?: string }).code ?? 'error');
    // Channel 1 must NOT connect the target while channel 0 is missing: give it
    // a second to do so wrongly. (No event marks "the OPEN reached the order
    // wait" from outside the process; this second covers that too.)
    await quietFor(1_000);
    assert.equal(targetSockets.length, 0, 'channel 1 must wait for channel 0, not connect the target');

    const started = Date.now();
    const exit = await gw.stop(STOP_WITHIN_MS);
    assert.deepEqual(exit, { code: 0, signal: null }, `the gateway did not stop cleanly within ${STOP_WITHIN_MS} ms\n${gw.diagnostics()}`);
    assert.ok(Date.now() - started < STOP_WITHIN_MS);
    assert.notEqual(await answer, 'opened', 'the waiting channel must not be opened by a stopping gateway');
    const refused = gw.logs.filter((l) => l.event === 'channel-refused');
    assert.deepEqual(refused.map((l) => [l['cause'], l['channel']]), [['shutdown', 1]], 'the log says the channel was refused because the gateway stopped');
    tls.destroy();
  } finally {
    await gw.stop(1_000);
  }
}
