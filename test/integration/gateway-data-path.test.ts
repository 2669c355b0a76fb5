import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startLocalPair } from '../../src/demo/local-pair.js';
import { connectLoopback, exchange, receiveAll, startSink, type PayloadSink } from '../../src/demo/payload.js';
import { captureLogs } from '../helpers/log-capture.js';
import { makeTestPki } from '../helpers/pki.js';
import { createServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { quietFor, within } from '../helpers/wait-for.js';

const GiB = 1 << 30;
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmgate-data-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function pairTo(sink: { port: number }, name: string) {
  const pki = await makeTestPki(join(dir, `${name}-pki`));
  const logs = captureLogs('info');
  const pair = await startLocalPair({ dir: join(dir, name), targetConnect: `tcp:127.0.0.1:${sink.port}`, log: logs.log, pkiA: pki.hostA, pkiB: pki.hostB });
  return { pair, logs };
}

test('bulk-both-directions: 1 GiB each way at once arrives intact', async () => {
  const sink: PayloadSink = await startSink(GiB);
  const { pair, logs } = await pairTo(sink, 'bulk');
  try {
    const client = await connectLoopback(pair.routeAddress.port);
    const [mine, theirs] = await Promise.all([exchange(client, GiB), sink.next()]);
    assert.equal(theirs.bytesReceived, GiB);
    assert.equal(mine.bytesReceived, GiB);
    assert.equal(theirs.received, mine.sent, 'source -> destination digest');
    assert.equal(mine.received, theirs.sent, 'destination -> source digest');
    const closeA = await logs.waitFor({ gateway: 'host-a', event: 'channel-close' });
    const closeB = await logs.waitFor({ gateway: 'host-b', event: 'channel-close' });
    assert.equal(closeA['cause'], 'ok');
    assert.equal(closeB['cause'], 'ok');
    assert.equal(closeA['bytesOut'], GiB);
    assert.equal(closeA['bytesIn'], GiB);
    assert.equal(closeB['bytesIn'], GiB);
  } finally {
    await pair.stop();
    await sink.close();
  }
});

test('half-close-return-traffic: the destination answers after the source has finished sending', async () => {
  // A target that reads until EOF, then replies with what it counted.
  const target = createServer({ allowHalfOpen: true }, (s: Socket) => {
    let n = 0;
    s.on('data', (d: Buffer) => (n += d.length));
    // It answers late on purpose: a gateway that tore the return path down at
    // the source's EOF would lose the answer. The 200 ms are the claim "the
    // return path is NOT closed within 200 ms of EOF".
    s.on('end', () => void quietFor(200).then(() => s.end(`got ${n} bytes`)));
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  const port = (target.address() as { port: number }).port;
  const { pair, logs } = await pairTo({ port }, 'halfclose');
  try {
    const client = await connectLoopback(pair.routeAddress.port);
    const reply = new Promise<string>((resolve) => {
      const parts: Buffer[] = [];
      client.on('data', (d: Buffer) => parts.push(d));
      client.on('end', () => resolve(Buffer.concat(parts).toString()));
    });
    client.end(Buffer.alloc(100_000, 7));
    assert.equal(await reply, 'got 100000 bytes');
    const closeA = await logs.waitFor({ gateway: 'host-a', event: 'channel-close' });
    assert.equal(closeA['cause'], 'ok');
  } finally {
    await pair.stop();
    await new Promise((r) => target.close(r));
  }
});

test('early-target-bytes: data the destination sends at once reaches the source', async () => {
  // QEMU's return path can speak first; the bytes must not be lost in the control phase.
  const target = createServer({ allowHalfOpen: true }, (s: Socket) => {
    s.write('hello from the destination');
    s.resume();
    s.on('end', () => s.end());
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  const port = (target.address() as { port: number }).port;
  const { pair } = await pairTo({ port }, 'early');
  try {
    const client = await connectLoopback(pair.routeAddress.port);
    const got = receiveAll(client);
    await within(once(client, 'data'), 10_000, "the destination's first bytes at the source");
    client.end();
    const r = await got;
    assert.equal(r.bytes, 'hello from the destination'.length);
  } finally {
    await pair.stop();
    await new Promise((r) => target.close(r));
  }
});
