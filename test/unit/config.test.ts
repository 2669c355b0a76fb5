import assert from 'node:assert/strict';
import { test } from 'node:test';
import { suggest } from '../../src/config/config-problems.js';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError, type ConfigProblem, type ConfigProblemKind } from '../../src/errors.js';

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

/** The problems a ConfigError (code config-invalid) lists for `text`. */
function problems(text: string): readonly ConfigProblem[] {
  try {
    parseConfig(text, FILE);
  } catch (e: unknown) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.equal(e.code, 'config-invalid');
    assert.equal(e.file, FILE);
    assert.ok(e.problems.length > 0);
    return e.problems;
  }
  assert.fail('expected config-invalid');
}

/** The one problem `text` has: asserts its key path and kind, returns it. */
function only(text: string, key: string, kind: ConfigProblemKind): ConfigProblem {
  const all = problems(text);
  assert.deepEqual(all.map((p) => [p.key, p.kind]), [[key, kind]], all.map((p) => p.message).join('\n'));
  return all[0] as ConfigProblem;
}

/** Words of the validation library that must never reach the operator. */
const LIBRARY_WORDING = /Invalid input|Invalid option|expected (number|string|int|object)|received|Too (small|big)|Unrecognized key|Invalid key in record|>=|<=/;

function plainSentence(p: ConfigProblem): void {
  assert.doesNotMatch(p.message, LIBRARY_WORDING);
  assert.ok(p.message.endsWith('.'), `not a sentence: ${p.message}`);
}

test('valid-config-resolves-paths-and-addresses', () => {
  const c = parseConfig(valid, FILE);
  assert.equal(c.tls.cert, '/etc/vmgate/pki/server-cert.pem');
  assert.equal(c.tls.clientKey, '/etc/vmgate/pki/client-key.pem');
  assert.equal(c.server?.credentials, '/etc/vmgate/users.json');
  assert.deepEqual(c.server?.listen, { host: '0.0.0.0', port: 7443 });
  assert.deepEqual(c.server?.targets.get('incoming')?.connect, { kind: 'tcp', host: '127.0.0.1', port: 49152 });
  assert.deepEqual(c.routes[0]?.listen, { kind: 'unix', path: '/run/vmgate/to-b.sock' });
  assert.deepEqual(c.routes[0]?.peers, [{ host: '2001:db8::2', port: 7443 }], 'one address is a route with one path');
  assert.equal(c.server?.handshakeTimeoutMs, 10_000, 'defaults are filled in');
});

test('unknown-key-is-named-with-its-path-and-the-key-it-misspells', () => {
  const p = only(valid.replace('peerName: host-b', 'peerName: host-b\n    pearName: typo'), 'routes.to-b.pearName', 'unknown-key');
  assert.equal(p.suggestion, 'peerName');
});

test('sentence: a misspelt key asks "did you mean"', () => {
  const p = only(`${valid}wokers: 2\n`, 'wokers', 'unknown-key');
  assert.equal(p.suggestion, 'workers');
  assert.equal(p.message, 'wokers is not a key vmgate knows; did you mean "workers"?');
});

test('sentence: an unknown key unlike any known one lists the keys allowed there', () => {
  const p = only(valid.replace('  dir: ./pki', '  dir: ./pki\n  passphrase: x'), 'tls.passphrase', 'unknown-key');
  assert.equal(p.suggestion, undefined);
  plainSentence(p);
  assert.ok(p.message.startsWith('tls.passphrase is not a key vmgate knows; the keys of tls are "dir", "ca"'), p.message);
});

test('a misspelling differing only in case is suggested', () => {
  const text = valid.replace('peerName: host-b', 'peerName: host-b\n    connecttimeoutms: 5000');
  assert.equal(only(text, 'routes.to-b.connecttimeoutms', 'unknown-key').suggestion, 'connectTimeoutMs');
});

test('sentence: a value of the wrong type names the key, the value and what the key takes', () => {
  const p = only(valid.replace('listen: 0.0.0.0:7443', 'listen: 0.0.0.0:7443\n  maxHandshakes: lots'), 'server.maxHandshakes', 'wrong-type');
  plainSentence(p);
  assert.equal(p.message, 'server.maxHandshakes is "lots"; it must be a whole number from 1 to 10000.');
});

test('sentence: a missing key says what it must be', () => {
  const p = only(valid.replace('    user: migrate\n    passwordFile', '    passwordFile'), 'routes.to-b.user', 'missing');
  plainSentence(p);
  assert.equal(p.message, 'routes.to-b.user is missing; it must be a SASL user name of 1 to 255 bytes.');
});

test('sentence: a number out of range gives the range', () => {
  const p = only(valid.replace('passwordFile: /etc/vmgate/to-b.password', 'passwordFile: /etc/vmgate/to-b.password\n    probeIntervalMs: 500'), 'routes.to-b.probeIntervalMs', 'out-of-range');
  plainSentence(p);
  assert.equal(p.message, 'routes.to-b.probeIntervalMs is 500; it must be 0 (never probe), or a whole number of milliseconds from 1000 to 3600000.');
});

test('sentence: a value outside a fixed set lists the set', () => {
  const p = only(`${valid}log:\n  level: loud\n`, 'log.level', 'bad-value');
  plainSentence(p);
  assert.equal(p.message, 'log.level is "loud"; it must be one of "fatal", "error", "warn", "info", "debug", "trace".');
});

test('sentence: a bad name of a target or route says how names are spelled', () => {
  const p = only(valid.replace('    incoming:\n', '    "in coming":\n').replace('target: incoming', 'target: elsewhere'), 'server.targets.in coming', 'bad-value');
  plainSentence(p);
  assert.match(p.message, /^"in coming" is not a valid name under server\.targets; a name is letters, digits/);
});

test('a list item is named by its index', () => {
  only(valid.replace('{ peer: host-b, user: migrate }', '{ peer: "", user: migrate }'), 'server.targets.incoming.allow[0].peer', 'bad-value');
});

test('bad-address-is-explained', () => {
  const p = only(valid.replace('peer: "[2001:db8::2]:7443"', 'peer: host-b'), 'routes.to-b.peer', 'bad-value');
  plainSentence(p);
  assert.equal(p.message, 'routes.to-b.peer is "host-b"; it must be HOST:PORT (or [IPv6]:PORT).');
});

/** `valid` with routes.to-b.peer replaced by this YAML value (a flow list or a scalar). */
const withPeer = (value: string): string => valid.replace('peer: "[2001:db8::2]:7443"', `peer: ${value}`);

test('peer-list: a list of addresses is the route\'s paths, in the order given', () => {
  const c = parseConfig(withPeer('["10.1.0.2:7443", "[2001:db8::2]:7443", host-b.example:7444]'), FILE);
  assert.deepEqual(c.routes[0]?.peers, [
    { host: '10.1.0.2', port: 7443 },
    { host: '2001:db8::2', port: 7443 },
    { host: 'host-b.example', port: 7444 },
  ]);
  const one = parseConfig(withPeer('["10.1.0.2:7443"]'), FILE);
  assert.deepEqual(one.routes[0]?.peers, [{ host: '10.1.0.2', port: 7443 }], 'a list of one is one path');
  const eight = Array.from({ length: 8 }, (_, i) => `"10.0.${i}.2:7443"`).join(', ');
  assert.equal(parseConfig(withPeer(`[${eight}]`), FILE).routes[0]?.peers.length, 8);
});

test('peer-list: a bad entry is named by its index', () => {
  const p = only(withPeer('["10.1.0.2:7443", host-b]'), 'routes.to-b.peer[1]', 'bad-value');
  plainSentence(p);
  assert.equal(p.message, 'routes.to-b.peer[1] is "host-b"; it must be HOST:PORT (or [IPv6]:PORT).');
  const port = only(withPeer('["10.1.0.2:0", "10.2.0.2:7443"]'), 'routes.to-b.peer[0]', 'bad-value');
  plainSentence(port);
  const all = problems(withPeer('["nope", "10.2.0.2:7443", "[host]:1"]'));
  assert.deepEqual(all.map((q) => q.key), ['routes.to-b.peer[0]', 'routes.to-b.peer[2]'], 'every bad entry, each by its index');
});

test('peer-list: an entry that is not text is named by its index', () => {
  const p = only(withPeer('["10.1.0.2:7443", 7443]'), 'routes.to-b.peer[1]', 'wrong-type');
  plainSentence(p);
  assert.match(p.message, /^routes\.to-b\.peer\[1\] is 7443; it must be HOST:PORT/);
});

test('peer-list: the same address twice is refused, naming both entries', () => {
  const p = only(withPeer('["10.1.0.2:7443", "10.2.0.2:7443", "10.1.0.2:7443"]'), 'routes.to-b.peer[2]', 'bad-value');
  plainSentence(p);
  assert.match(p.message, /routes\.to-b\.peer\[0\]/, 'the message names the entry it repeats');
  // The same host under another spelling of its case is the same address.
  only(withPeer('[HOST-B.example:7443, host-b.example:7443]'), 'routes.to-b.peer[1]', 'bad-value');
  // One host on two ports is two paths (two listeners of the peer).
  assert.equal(parseConfig(withPeer('["10.1.0.2:7443", "10.1.0.2:7444"]'), FILE).routes[0]?.peers.length, 2);
});

test('peer-list: an empty list, more than eight, or a mapping are refused with what the key takes', () => {
  for (const value of ['[]', `[${Array.from({ length: 9 }, (_, i) => `"10.0.${i}.2:7443"`).join(', ')}]`, '{ host: 10.1.0.2 }']) {
    const p = only(withPeer(value), 'routes.to-b.peer', value.startsWith('{') ? 'wrong-type' : 'bad-value');
    plainSentence(p);
    assert.match(p.message, /it must be HOST:PORT \(or \[IPv6\]:PORT\) of the peer gateway, or a list of 1 to 8 of them, the preferred first\.$/, p.message);
  }
});

test('non-loopback-target-needs-the-unsafe-option', () => {
  const text = valid.replace('tcp:127.0.0.1:49152', 'tcp:192.0.2.7:49152');
  plainSentence(only(text, 'server.targets.incoming.connect', 'bad-value'));
  const ok = parseConfig(text.replace('      allow:', '      unsafeAllowNonLoopback: true\n      allow:'), FILE);
  assert.equal(ok.server?.targets.get('incoming')?.connect.kind, 'tcp');
});

test('non-loopback-route-listener-needs-the-unsafe-option', () => {
  only(valid.replace('unix:/run/vmgate/to-b.sock', 'tcp:0.0.0.0:49152'), 'routes.to-b.listen', 'bad-value');
});

test('empty-allow-list-is-refused', () => {
  plainSentence(only(valid.replace('      allow:\n        - { peer: host-b, user: migrate }\n', '      allow: []\n'), 'server.targets.incoming.allow', 'bad-value'));
});

test('missing-identity-says-what-to-add', () => {
  const all = problems(valid.replace('  dir: ./pki', '  ca: ./ca.pem'));
  assert.deepEqual(all.map((p) => [p.key, p.kind]), [['tls.cert', 'missing'], ['tls.key', 'missing']]);
  all.forEach(plainSentence);
});

test('every-problem-is-listed-at-once', () => {
  const all = problems(valid.replace('peer: "[2001:db8::2]:7443"', 'peer: nope').replace('tcp:127.0.0.1:49152', 'udp:1'));
  assert.deepEqual(all.map((p) => p.key).sort(), ['routes.to-b.peer', 'server.targets.incoming.connect']);
});

test('yaml-syntax-error-is-reported', () => {
  const all = problems('tls: [unclosed');
  assert.ok(all.every((p) => p.kind === 'yaml' && p.key === '(top level)'));
});

test('metrics-are-off-unless-configured', () => {
  assert.equal(parseConfig(valid, FILE).metrics, undefined);
  assert.deepEqual(parseConfig(`${valid}metrics:\n  listen: 127.0.0.1:9464\n`, FILE).metrics, { listen: { host: '127.0.0.1', port: 9464 } });
});

test('non-loopback-metrics-listener-needs-the-unsafe-option', () => {
  const text = `${valid}metrics:\n  listen: 0.0.0.0:9464\n`;
  plainSentence(only(text, 'metrics.listen', 'bad-value'));
  const ok = parseConfig(`${text}  unsafeAllowNonLoopback: true\n`, FILE);
  assert.deepEqual(ok.metrics, { listen: { host: '0.0.0.0', port: 9464 } });
});

test('bad-metrics-address-is-explained', () => {
  only(`${valid}metrics:\n  listen: "9464"\n`, 'metrics.listen', 'bad-value');
});

test('route-socket-group-and-handshake-caps-resolve-with-defaults', () => {
  const c = parseConfig(valid.replace('passwordFile: /etc/vmgate/to-b.password', 'passwordFile: /etc/vmgate/to-b.password\n    socketGroup: kvm'), FILE);
  assert.equal(c.routes[0]?.socketGroup, 'kvm');
  assert.equal(c.server?.maxHandshakes, 256);
  assert.equal(c.server?.maxHandshakesPerAddress, 64);
  assert.equal(parseConfig(valid, FILE).routes[0]?.socketGroup, undefined, 'no group: the socket is 0600');
});

test('bad-socket-group-and-per-address-cap-are-named', () => {
  only(valid.replace('passwordFile: /etc/vmgate/to-b.password', 'passwordFile: /etc/vmgate/to-b.password\n    socketGroup: -1'), 'routes.to-b.socketGroup', 'out-of-range');
  only(valid.replace('listen: 0.0.0.0:7443', 'listen: 0.0.0.0:7443\n  maxHandshakesPerAddress: 0'), 'server.maxHandshakesPerAddress', 'out-of-range');
});

test('workers-defaults-to-one-and-accepts-a-count', () => {
  assert.equal(parseConfig(valid, FILE).workers, 1, 'absent: the single-process gateway');
  assert.equal(parseConfig(`${valid}workers: 4\n`, FILE).workers, 4);
});

test('workers-out-of-range-names-the-key', () => {
  for (const n of ['0', '65', '2.5']) plainSentence(only(`${valid}workers: ${n}\n`, 'workers', 'out-of-range'));
});

test('suggest: only a near miss is a suggestion', () => {
  assert.equal(suggest('listn', ['listen', 'peer']), 'listen');
  assert.equal(suggest('credential', ['credentials', 'targets']), 'credentials');
  assert.equal(suggest('xyz', ['listen', 'peer']), undefined, 'a different word is no typo');
  assert.equal(suggest('ab', ['cd']), undefined);
  assert.equal(suggest('peer', []), undefined);
});
