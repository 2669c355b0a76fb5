/**
 * Port ranges in the config (`tcp:HOST:FIRST-LAST` for a route's listen and a
 * target's connect) and on the wire (OPEN's port, PROBE's ports).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { endpointsOf, parseLocalPorts } from '../../src/config/endpoint.js';
import { parseConfig } from '../../src/config/load.js';
import { decodeMessage, encodeMessage, MessageType, type Message } from '../../src/control/messages.js';
import { FrameDecoder } from '../../src/control/frame-codec.js';
import { ConfigError, VmgateError } from '../../src/errors.js';

const FILE = '/etc/vmgate/host-a.yaml';

function config(routeListen: string, targetConnect = 'tcp:127.0.0.1:7000', extraRoute = ''): string {
  return `
tls: { dir: ./pki }
server:
  listen: 0.0.0.0:7443
  credentials: ./users.json
  targets:
    incoming: { connect: "${targetConnect}", allow: [{ peer: host-b, user: migrate }] }
routes:
  to-b: { listen: "${routeListen}", peer: "10.0.0.2:7443", peerName: host-b, target: incoming, user: migrate, passwordFile: ./pw }
${extraRoute}`;
}

/** The keys of the config-invalid problems (that key is what the operator must find). */
function problemKeys(text: string): string[] {
  try {
    parseConfig(text, FILE);
  } catch (e: unknown) {
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.code, 'config-invalid');
    return e.problems.map((p) => p.key);
  }
  return [];
}

test('a range parses, and every port of it is an endpoint', () => {
  const r = parseLocalPorts('tcp:127.0.0.1:49152-49215', '/');
  assert.deepEqual(r, { kind: 'tcp-range', host: '127.0.0.1', first: 49152, last: 49215 });
  assert.equal(typeof r === 'string' ? 0 : endpointsOf(r).length, 64);
  assert.deepEqual(parseLocalPorts('tcp:[::1]:50000-50001', '/'), { kind: 'tcp-range', host: '::1', first: 50000, last: 50001 });
  assert.deepEqual(parseLocalPorts('tcp:127.0.0.1:49152', '/'), { kind: 'tcp', host: '127.0.0.1', port: 49152 }, 'the single-port form is unchanged');
});

test('backwards, privileged and oversized ranges are refused', () => {
  for (const bad of ['tcp:127.0.0.1:49215-49152', 'tcp:127.0.0.1:1000-1100', 'tcp:127.0.0.1:40000-40256', 'tcp:127.0.0.1:65535-65536']) {
    assert.equal(typeof parseLocalPorts(bad, '/'), 'string', bad);
    assert.deepEqual(problemKeys(config(bad)), ['routes.to-b.listen'], bad);
  }
  assert.equal(typeof parseLocalPorts('tcp:127.0.0.1:40000-40255', '/'), 'object', '256 ports is the most');
});

test('a range must be loopback unless the unsafe option says otherwise', () => {
  assert.deepEqual(problemKeys(config('tcp:10.0.0.1:49152-49215')), ['routes.to-b.listen']);
});

test('overlapping ranges on one address are refused; other loopback addresses do not overlap', () => {
  const second = '  to-c: { listen: "tcp:127.0.0.1:49200-49300", peer: "10.0.0.3:7443", peerName: host-c, target: incoming, user: migrate, passwordFile: ./pw }';
  assert.deepEqual(problemKeys(config('tcp:127.0.0.1:49152-49215', 'tcp:127.0.0.1:7000', second)), ['routes.to-c.listen']);
  const apart = second.replace('127.0.0.1:49200', '127.0.0.2:49200');
  assert.deepEqual(problemKeys(config('tcp:127.0.0.1:49152-49215', 'tcp:127.0.0.1:7000', apart)), []);
  // The host's own incoming QEMUs (a target) on the route's ports would meet the gateway, not QEMU.
  assert.deepEqual(problemKeys(config('tcp:127.0.0.1:49152-49215', 'tcp:127.0.0.1:49152-49215')), ['server.targets.incoming.connect']);
  assert.deepEqual(problemKeys(config('tcp:127.0.0.2:49152-49215', 'tcp:127.0.0.1:49152-49215')), []);
});

function roundTrip(m: Message): Message {
  const [frame] = new FrameDecoder(1 << 16).push(encodeMessage(m));
  assert.ok(frame);
  return decodeMessage(frame);
}

test('OPEN carries the port and PROBE the range; both stay optional', () => {
  const session = 'a'.repeat(32);
  assert.deepEqual(roundTrip({ type: MessageType.OPEN, target: 'incoming', session, channel: 0, port: 49160 }), { type: MessageType.OPEN, target: 'incoming', session, channel: 0, port: 49160 });
  assert.deepEqual(roundTrip({ type: MessageType.OPEN, target: 'incoming', session, channel: 0 }), { type: MessageType.OPEN, target: 'incoming', session, channel: 0 });
  assert.deepEqual(roundTrip({ type: MessageType.PROBE, target: 'incoming', ports: { first: 49152, last: 49215 } }), { type: MessageType.PROBE, target: 'incoming', ports: { first: 49152, last: 49215 } });
  assert.throws(() => encodeMessage({ type: MessageType.OPEN, target: 'incoming', session, channel: 0, port: 80 }), (e: unknown) => e instanceof VmgateError && e.code === 'internal');
  assert.throws(() => encodeMessage({ type: MessageType.PROBE, target: 'incoming', ports: { first: 49215, last: 49152 } }), (e: unknown) => e instanceof VmgateError && e.code === 'internal');
});
