import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isVmgateError } from '../../src/errors.js';
import { checkCommonName, checkDnsName, checkIp, checkSans, formatIp, ipToBytes } from '../../src/pki/names.js';
import { normalizeSerial, randomSerial } from '../../src/pki/serial.js';

function code(expected: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(isVmgateError(e), `expected VmgateError, got ${String(e)}`);
    assert.equal(e.code, expected, e.message);
    return true;
  };
}

test('san-dns-rejects-malformed: wildcard, underscore, empty, trailing dot, long label, hyphen ends, IP, spaces', () => {
  for (const bad of ['*.example', 'a*b', 'host_a', '', 'host.', 'a..b', `${'a'.repeat(64)}.example`, '-host', 'host-', 'host-.x',
    '127.0.0.1', '::1', 'host a', 'hösts', 'a.123', `${'a.'.repeat(127)}aa`]) {
    assert.throws(() => checkDnsName(bad), code('pki-bad-san'), JSON.stringify(bad));
  }
});

test('san-dns-accepts-rfc1123: digits first, inner hyphens, 63-char labels, lower-cases', () => {
  assert.equal(checkDnsName('Host-A.Example'), 'host-a.example');
  assert.equal(checkDnsName('1host'), '1host');
  assert.equal(checkDnsName(`${'a'.repeat(63)}.x`), `${'a'.repeat(63)}.x`);
  assert.equal(checkDnsName('localhost'), 'localhost');
});

test('san-ip-rejects-malformed: not an address, zone ids, prefixes, out of range', () => {
  for (const bad of ['1.2.3', '256.1.1.1', '1.2.3.4/24', 'fe80::1%eth0', 'host-a', '', '::g', '1:2:3:4:5:6:7:8:9']) {
    assert.throws(() => checkIp(bad), code('pki-bad-san'), JSON.stringify(bad));
  }
});

test('san-ip-canonical: IPv6 literals are written canonically and deduplicated', () => {
  assert.deepEqual(checkSans(['a', 'A'], ['2001:DB8:0:0:0:0:0:1', '2001:db8::1', '127.0.0.1']), { dns: ['a'], ips: ['2001:db8::1', '127.0.0.1'] });
  assert.equal(checkIp('::'), '::');
  assert.equal(checkIp('1:0:0:1:0:0:0:1'), '1:0:0:1::1');
  assert.deepEqual([...ipToBytes('::ffff:10.0.0.1')], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]);
});

test('ip-bytes-roundtrip: any 16 or 4 bytes survive formatIp then ipToBytes', () => {
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 4, maxLength: 4 })), (bytes) => {
    assert.deepEqual([...ipToBytes(formatIp(bytes))], [...bytes]);
  }));
});

test('common-name-rejects: empty, too long, control characters, padding', () => {
  for (const bad of ['', 'x'.repeat(65), 'a\nb', ' lead', 'trail ', 'naïve']) assert.throws(() => checkCommonName(bad), code('pki-bad-input'), JSON.stringify(bad));
  assert.equal(checkCommonName('vmgate CA (prod) #1'), 'vmgate CA (prod) #1');
});

test('serial-normalize: other tools\' spellings of a serial match ours', () => {
  const s = randomSerial();
  assert.match(s, /^[0-7][0-9a-f]{31}$/);
  assert.equal(normalizeSerial(s.toUpperCase().match(/../g)?.join(':') ?? ''), s);
  assert.equal(normalizeSerial('0x0A'), '0a');
  assert.equal(normalizeSerial('000a'), '0a');
  assert.throws(() => normalizeSerial('xyz'), code('pki-bad-input'));
  assert.throws(() => normalizeSerial('00'), code('pki-bad-input'));
});
