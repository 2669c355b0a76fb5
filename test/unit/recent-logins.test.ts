import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RecentLogins } from '../../src/auth/recent-logins.js';

/** A clock the test moves by hand. */
function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

test('recent-hit: a remembered login is recognised', () => {
  const r = new RecentLogins();
  r.remember('alice', r.mac('alice', 'pw'));
  assert.equal(r.has('alice', r.mac('alice', 'pw')), true);
});

test('recent-miss-other-password: another password of the same user is not recognised', () => {
  const r = new RecentLogins();
  r.remember('alice', r.mac('alice', 'pw'));
  assert.equal(r.has('alice', r.mac('alice', 'pw2')), false);
  assert.equal(r.has('alice', r.mac('alice', '')), false);
});

test('recent-miss-other-user: the same password for another user is not recognised', () => {
  const r = new RecentLogins();
  r.remember('alice', r.mac('alice', 'pw'));
  assert.equal(r.has('bob', r.mac('bob', 'pw')), false);
  assert.equal(r.has('bob', r.mac('alice', 'pw')), false, 'an entry is only looked up under its own user');
});

test('recent-mac-binds-lengths: moving bytes between user and password changes the MAC', () => {
  const r = new RecentLogins();
  assert.notDeepEqual(r.mac('ab', 'c'), r.mac('a', 'bc'));
  assert.notDeepEqual(r.mac('1:a', 'b'), r.mac('1', ':ab'));
});

test('recent-key-per-instance: a new cache (a reloaded store) recognises nothing of the old one', () => {
  const old = new RecentLogins();
  const fresh = new RecentLogins();
  const mac = old.mac('alice', 'pw');
  old.remember('alice', mac);
  assert.notDeepEqual(fresh.mac('alice', 'pw'), mac, 'the HMAC key is drawn per instance');
  fresh.remember('alice', fresh.mac('alice', 'pw'));
  assert.equal(fresh.has('alice', mac), false);
});

test('recent-expiry: an entry is not recognised once its TTL has passed, and is dropped', () => {
  const c = clock();
  const r = new RecentLogins(60_000, c.now);
  const mac = r.mac('alice', 'pw');
  r.remember('alice', mac);
  c.advance(59_999);
  assert.equal(r.has('alice', mac), true);
  c.advance(1);
  assert.equal(r.has('alice', mac), false);
  assert.equal(r.size, 0);
});

test('recent-forget: a forgotten user is not recognised', () => {
  const r = new RecentLogins();
  const mac = r.mac('alice', 'pw');
  r.remember('alice', mac);
  r.forget('alice');
  assert.equal(r.has('alice', mac), false);
});

test('recent-in-flight: a running check is shared only with the same login, and only while it runs', async () => {
  const r = new RecentLogins();
  const mac = r.mac('alice', 'pw');
  let finish: (v: boolean) => void = () => undefined;
  const running = new Promise<boolean>((resolve) => (finish = resolve));
  r.track('alice', mac, running);
  assert.equal(r.inFlight('alice', mac), running);
  assert.equal(r.inFlight('alice', r.mac('alice', 'other')), undefined);
  assert.equal(r.inFlight('bob', r.mac('bob', 'pw')), undefined);
  finish(true);
  await running;
  await Promise.resolve();
  assert.equal(r.inFlight('alice', mac), undefined);
});
