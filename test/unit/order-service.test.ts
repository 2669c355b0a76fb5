import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OrderService } from '../../src/session/order-service.js';
import { code } from '../helpers/assert-code.js';

const OWNER = 'AA:BB';
const S = 'f'.repeat(32);

test('workers-take-turns-in-channel-order-across-workers', async () => {
  const o = new OrderService(5_000);
  const order: number[] = [];
  // Channel 1 (worker 2) asks before channel 0 (worker 1): it must wait.
  const late = o.turn(2, OWNER, S, 1).then(() => order.push(1));
  await o.turn(1, OWNER, S, 0);
  order.push(0);
  o.release(1, OWNER, S, 0);
  await late;
  o.release(2, OWNER, S, 1);
  assert.deepEqual(order, [0, 1]);
  o.closed(1, OWNER, S);
  o.closed(2, OWNER, S);
  assert.equal(o.size, 0, 'a finished session is forgotten');
});

test('a-dead-worker-holding-its-turn-lets-the-next-channel-go', async () => {
  const o = new OrderService(5_000);
  await o.turn(1, OWNER, S, 0); // worker 1 dies while connecting channel 0
  const next = o.turn(2, OWNER, S, 1);
  o.forget(1);
  await next;
  o.release(2, OWNER, S, 1);
  o.closed(2, OWNER, S);
  assert.equal(o.size, 0, 'the dead worker\'s channel is closed too');
});

test('a-worker-that-dies-while-waiting-passes-its-turn-on', async () => {
  const o = new OrderService(5_000);
  await o.turn(1, OWNER, S, 0);
  const waiting = o.turn(2, OWNER, S, 1); // worker 2 waits for channel 0, then dies
  o.forget(2);
  const third = o.turn(1, OWNER, S, 2);
  o.release(1, OWNER, S, 0);
  await assert.rejects(waiting, code('worker-exited'));
  await third;
  o.release(1, OWNER, S, 2);
  o.closed(1, OWNER, S);
  o.closed(1, OWNER, S);
  assert.equal(o.size, 0);
});
