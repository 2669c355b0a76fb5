import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { VmgateError } from '../../src/errors.js';

const FILE = '/etc/vmgate/host-a.yaml';

const valid = `
name: host-a
tls:
  dir: ./pki
server:
  listen: 0.0.0.0:7443
  credentials: ./users.json
  targets:
    incoming:
      connect: tcp:127.0.0.1:49152
      allow:
        - { peer: host-b, user: migrate }
routes:
  to-b:
    listen: unix:/run/vmgate/to-b.sock
    peer: "[2001:db8::2]:7443"
    peerName: host-b
    target: incoming
    user: migrate
    passwordFile: /etc/vmgate/to-b.password
`;

function problems(text: string): string {
  try {
    parseConfig(text, FILE);
  } catch (e: unknown) {
    assert.ok(e instanceof VmgateError);
    assert.equal(e.code, 'config-invalid');
    return e.message;
  }
  assert.fail('expected config-invalid');
}

test('valid-config-resolves-paths-and-addresses', () => {
  const c = parseConfig(valid, FILE);
  assert.equal(c.tls.cert, '/etc/vmgate/pki/server-cert.pem');
  assert.equal(c.tls.clientKey, '/etc/vmgate/pki/client-key.pem');
  assert.equal(c.server?.credentials, '/etc/vmgate/users.json');
  assert.deepEqual(c.server?.listen, { host: '0.0.0.0', port: 7443 });
  assert.deepEqual(c.server?.targets.get('incoming')?.connect, { kind: 'tcp', host: '127.0.0.1', port: 49152 });
  assert.deepEqual(c.routes[0]?.listen, { kind: 'unix', path: '/run/vmgate/to-b.sock' });
  assert.deepEqual(c.routes[0]?.peer, { host: '2001:db8::2', port: 7443 });
  assert.equal(c.server?.handshakeTimeoutMs, 10_000, 'defaults are filled in');
});

test('unknown-key-is-named-with-its-path', () => {
  const m = problems(valid.replace('peerName: host-b', 'peerName: host-b\n    pearName: typo'));
  assert.match(m, /routes\.to-b: unknown key\(s\) "pearName"/);
});

test('wrong-type-names-key-value-and-expectation', () => {
  const m = problems(valid.replace('listen: 0.0.0.0:7443', 'listen: 0.0.0.0:7443\n  maxHandshakes: lots'));
  assert.match(m, /server\.maxHandshakes: got "lots"; expected number/);
});

test('bad-address-is-explained', () => {
  const m = problems(valid.replace('peer: "[2001:db8::2]:7443"', 'peer: host-b'));
  assert.match(m, /routes\.to-b\.peer: got "host-b"; expected HOST:PORT/);
});

test('non-loopback-target-needs-the-unsafe-option', () => {
  const text = valid.replace('tcp:127.0.0.1:49152', 'tcp:192.0.2.7:49152');
  assert.match(problems(text), /server\.targets\.incoming\.connect: got "tcp:192\.0\.2\.7:49152"; expected a loopback address .* unsafeAllowNonLoopback/);
  const ok = parseConfig(text.replace('      allow:', '      unsafeAllowNonLoopback: true\n      allow:'), FILE);
  assert.equal(ok.server?.targets.get('incoming')?.connect.kind, 'tcp');
});

test('non-loopback-route-listener-needs-the-unsafe-option', () => {
  assert.match(problems(valid.replace('unix:/run/vmgate/to-b.sock', 'tcp:0.0.0.0:49152')), /routes\.to-b\.listen: .*loopback/);
});

test('empty-allow-list-is-refused', () => {
  const m = problems(valid.replace('      allow:\n        - { peer: host-b, user: migrate }\n', '      allow: []\n'));
  assert.match(m, /server\.targets\.incoming\.allow: empty; an empty allow-list admits no one/);
});

test('missing-identity-says-what-to-add', () => {
  assert.match(problems(valid.replace('  dir: ./pki', '  ca: ./ca.pem')), /tls\.cert: missing; expected a file path, or tls\.dir/);
});

test('every-problem-is-listed-at-once', () => {
  const m = problems(valid.replace('peer: "[2001:db8::2]:7443"', 'peer: nope').replace('tcp:127.0.0.1:49152', 'udp:1'));
  assert.match(m, /routes\.to-b\.peer/);
  assert.match(m, /server\.targets\.incoming\.connect/);
});

test('yaml-syntax-error-is-reported', () => {
  assert.match(problems('tls: [unclosed'), /YAML/);
});

test('metrics-are-off-unless-configured', () => {
  assert.equal(parseConfig(valid, FILE).metrics, undefined);
  assert.deepEqual(parseConfig(`${valid}metrics:\n  listen: 127.0.0.1:9464\n`, FILE).metrics, { listen: { host: '127.0.0.1', port: 9464 } });
});

test('non-loopback-metrics-listener-needs-the-unsafe-option', () => {
  const text = `${valid}metrics:\n  listen: 0.0.0.0:9464\n`;
  assert.match(problems(text), /metrics\.listen: got "0\.0\.0\.0:9464"; expected a loopback address .* metrics\.unsafeAllowNonLoopback: true/);
  const ok = parseConfig(`${text}  unsafeAllowNonLoopback: true\n`, FILE);
  assert.deepEqual(ok.metrics, { listen: { host: '0.0.0.0', port: 9464 } });
});

test('bad-metrics-address-is-explained', () => {
  assert.match(problems(`${valid}metrics:\n  listen: "9464"\n`), /metrics\.listen: got "9464"; expected HOST:PORT/);
});

test('route-socket-group-and-handshake-caps-resolve-with-defaults', () => {
  const c = parseConfig(valid.replace('passwordFile: /etc/vmgate/to-b.password', 'passwordFile: /etc/vmgate/to-b.password\n    socketGroup: kvm'), FILE);
  assert.equal(c.routes[0]?.socketGroup, 'kvm');
  assert.equal(c.server?.maxHandshakes, 256);
  assert.equal(c.server?.maxHandshakesPerAddress, 64);
  assert.equal(parseConfig(valid, FILE).routes[0]?.socketGroup, undefined, 'no group: the socket is 0600');
});

test('bad-socket-group-and-per-address-cap-are-named', () => {
  assert.match(problems(valid.replace('passwordFile: /etc/vmgate/to-b.password', 'passwordFile: /etc/vmgate/to-b.password\n    socketGroup: -1')), /routes\.to-b\.socketGroup: got -1/);
  assert.match(problems(valid.replace('listen: 0.0.0.0:7443', 'listen: 0.0.0.0:7443\n  maxHandshakesPerAddress: 0')), /server\.maxHandshakesPerAddress: got 0/);
});

test('workers-defaults-to-one-and-accepts-a-count', () => {
  assert.equal(parseConfig(valid, FILE).workers, 1, 'absent: the single-process gateway');
  assert.equal(parseConfig(`${valid}workers: 4\n`, FILE).workers, 4);
});

test('workers-out-of-range-names-the-key', () => {
  assert.match(problems(`${valid}workers: 0\n`), /workers: got 0; expected a whole number of worker processes, at least 1/);
  assert.match(problems(`${valid}workers: 65\n`), /workers: got 65; expected at most 64 worker processes/);
  assert.match(problems(`${valid}workers: 2.5\n`), /workers: got 2\.5; expected int/);
});
