import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HandshakeSlots } from '../../src/handshake/handshake-slots.js';

test('one-address-cannot-take-every-slot', () => {
  const slots = new HandshakeSlots(4, 2);
  assert.equal(slots.take('10.0.0.9'), undefined);
  assert.equal(slots.take('10.0.0.9'), undefined);
  assert.equal(slots.take('10.0.0.9'), 'address');
  // An honest peer still gets in while the flooder is at its cap.
  assert.equal(slots.take('10.0.0.1'), undefined);
  assert.equal(slots.inUse(), 3);
  assert.equal(slots.inUse('10.0.0.9'), 2);
});

test('total-cap-holds-across-addresses', () => {
  const slots = new HandshakeSlots(3, 2);
  assert.equal(slots.take('a'), undefined);
  assert.equal(slots.take('b'), undefined);
  assert.equal(slots.take('c'), undefined);
  assert.equal(slots.take('d'), 'total');
  assert.equal(slots.inUse(), 3);
});

test('release-frees-the-slot-and-extra-releases-change-nothing', () => {
  const slots = new HandshakeSlots(1, 1);
  assert.equal(slots.take('a'), undefined);
  slots.release('a');
  slots.release('a');
  slots.release('never-took');
  assert.equal(slots.inUse(), 0);
  assert.equal(slots.take('b'), undefined);
  assert.equal(slots.take('a'), 'total');
});
