import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { scryptSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { encodeFrame, FrameDecoder, MAX_FRAME_LENGTH, type Frame } from '../../src/control/frame-codec.js';
import { decodeMessage, encodeMessage, MESSAGE_NAMES } from '../../src/control/messages.js';
import { parsePlainResponse } from '../../src/auth/sasl-plain.js';
import { CredentialStore } from '../../src/auth/credential-store.js';
import { isVmgateError } from '../../src/errors.js';

/** A failing run must not spend minutes shrinking, and a hang is a failure. */
const budget = { interruptAfterTimeLimit: 20_000, markInterruptAsFailure: true } as const;

/** Splits `bytes` at the given (unsorted, possibly out of range) offsets. */
function chunk(bytes: Uint8Array, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    out.push(Buffer.from(bytes.subarray(prev, p)));
    prev = p;
  }
  return out;
}

const jsonObject = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 5 }) as fc.Arbitrary<Record<string, unknown>>;

/** A header announcing `len` followed by `body` (which may be shorter or longer). */
const framedJunk = fc
  .tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 300, size: 'max' }))
  .map(([len, type, body]) => {
    const h = Buffer.alloc(5);
    h.writeUInt32BE(len, 0);
    h.writeUInt8(type, 4);
    return Buffer.concat([h, body]);
  });

const segment = fc.oneof(
  fc.tuple(fc.integer({ min: 0, max: 255 }), jsonObject).map(([t, b]) => encodeFrame(t, b)),
  framedJunk,
  fc.uint8Array({ maxLength: 64, size: 'max' }).map((b) => Buffer.from(b)),
  // Big frames around the limit: header written by hand so it may announce more than allowed.
  fc.integer({ min: 8, max: MAX_FRAME_LENGTH + 16 }).map((len) => {
    const body = Buffer.from(`{"p":"${'x'.repeat(len - 8)}"}`);
    const h = Buffer.alloc(5);
    h.writeUInt32BE(1 + body.length, 0);
    h.writeUInt8(1, 4);
    return Buffer.concat([h, body]);
  }),
);
const cutPoints = fc.array(fc.nat(), { maxLength: 40, size: 'max' });

test('decoder-arbitrary-bytes-any-chunking-only-coded-errors-and-bounded', () => {
  fc.assert(
    fc.property(fc.array(segment, { maxLength: 8 }), cutPoints, fc.constantFrom(MAX_FRAME_LENGTH, 64, 1), (segments, cuts, max) => {
      const d = new FrameDecoder(max);
      for (const piece of chunk(Buffer.concat(segments), cuts)) {
        try {
          d.push(piece);
        } catch (e: unknown) {
          assert.ok(isVmgateError(e), `non-coded error ${String(e)}`);
          assert.ok(e.code === 'frame-oversize' || e.code === 'frame-malformed', e.code);
          assert.throws(() => d.push(Buffer.alloc(1)), (again: unknown) => again === e);
          return;
        }
        assert.ok(d.buffered <= max + 5, `buffered ${d.buffered} > ${max + 5}`);
      }
    }),
    { ...budget, numRuns: 500 },
  );
});

test('decoder-uniform-random-bytes-only-coded-errors', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 20000, size: 'max' }), cutPoints, (bytes, cuts) => {
      const d = new FrameDecoder();
      try {
        for (const piece of chunk(bytes, cuts)) {
          d.push(piece);
          assert.ok(d.buffered <= MAX_FRAME_LENGTH + 5);
        }
      } catch (e: unknown) {
        assert.ok(isVmgateError(e) && (e.code === 'frame-oversize' || e.code === 'frame-malformed'), String(e));
      }
    }),
    { ...budget, numRuns: 300 },
  );
});

test('decoder-valid-stream-any-chunking-equals-whole', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), jsonObject), { maxLength: 6 }), cutPoints, (pairs, cuts) => {
      const frames: Frame[] = pairs.map(([type, body]) => ({ type, body }));
      const wire = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.body)));
      const d = new FrameDecoder();
      const got = chunk(wire, cuts).flatMap((piece) => d.push(piece));
      // JSON round trip normalises -0 and the like; compare through JSON.
      assert.deepEqual(JSON.parse(JSON.stringify(got)), JSON.parse(JSON.stringify(frames)));
      assert.equal(d.buffered, 0);
    }),
    { ...budget, numRuns: 300 },
  );
});

const fieldNames = ['versions', 'version', 'mechanisms', 'mechanism', 'response', 'user', 'target', 'session', 'channel', 'channels', 'code', 'message', 'count', 'bytesIn', 'bytesOut'];
const fieldValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.array(fc.integer({ min: -2, max: 20 }), { maxLength: 18 }),
  fc.array(fc.constantFrom('PLAIN', 'plain', 'X'.repeat(21), ''), { maxLength: 9 }),
  fc.constantFrom('AGFsaWNlAHB3', 'AB==', '', '0123456789abcdef0123456789abcdef', 'qemu', '../x', 'auth-failed', 'future-code', 'ok'),
  fc.integer({ min: -5, max: 1100 }),
  fc.string({ maxLength: 70, size: 'max' }),
);
const messageLike = fc.dictionary(fc.constantFrom(...fieldNames), fieldValue, { maxKeys: 4 }) as fc.Arbitrary<Record<string, unknown>>;

test('decode-message-arbitrary-object-valid-or-coded-error', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 16 }), fc.oneof(messageLike, jsonObject), (type, body) => {
      let m;
      try {
        m = decodeMessage({ type, body });
      } catch (e: unknown) {
        assert.ok(isVmgateError(e), `non-coded error ${String(e)}`);
        const expected = Object.hasOwn(MESSAGE_NAMES, type) ? 'frame-malformed' : 'protocol-violation';
        assert.equal(e.code, expected, e.message);
        return;
      }
      assert.equal(m.type, type);
      // Whatever was accepted is something we would send ourselves.
      const again = decodeMessage(new FrameDecoder().push(encodeMessage(m))[0]!);
      // Messages carrying a peer's error text may be re-cut or re-mapped on the way out.
      if (!('message' in m)) assert.deepEqual(again, m);
    }),
    { ...budget, numRuns: 2000 },
  );
});

describeLogin();

function describeLogin(): void {
  const USER = 'alice';
  const PASSWORD = 'correct horse';
  let dir = '';
  let store: CredentialStore;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmgate-prop-'));
    // Cheap scrypt parameters through the file path, so hundreds of verifications stay fast.
    const salt = Buffer.alloc(16, 3);
    const hash = scryptSync(PASSWORD, salt, 32, { N: 16, r: 1, p: 1 });
    const path = join(dir, 'creds.json');
    await writeFile(path, JSON.stringify({ version: 1, users: { [USER]: { salt: salt.toString('base64'), hash: hash.toString('base64'), N: 16, r: 1, p: 1 } } }), { mode: 0o600 });
    store = await CredentialStore.load(path);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const valid = Buffer.from(`\0${USER}\0${PASSWORD}`, 'utf8');
  const mutated = fc
    .array(
      fc.oneof(
        fc.tuple(fc.constant('flip' as const), fc.nat(), fc.integer({ min: 0, max: 255 })),
        fc.tuple(fc.constant('insert' as const), fc.nat(), fc.integer({ min: 0, max: 255 })),
        fc.tuple(fc.constant('delete' as const), fc.nat(), fc.constant(0)),
      ),
      { maxLength: 3 },
    )
    .map((edits) => {
      let b = Buffer.from(valid);
      for (const [op, at, byte] of edits) {
        const i = at % (b.length + 1);
        if (op === 'flip' && i < b.length) b[i] = byte;
        if (op === 'insert') b = Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)]);
        if (op === 'delete') b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
      }
      return b;
    });
  const structured = fc
    .tuple(fc.constantFrom('', USER, 'admin'), fc.constantFrom(USER, 'al\u00adice', 'Alice', 'alice ', 'bob'), fc.oneof(fc.constantFrom(PASSWORD, 'correct\u00a0horse', 'correct horse\0', ''), fc.string({ maxLength: 20 })))
    .map(([z, u, p]) => Buffer.from(`${z}\0${u}\0${p}`, 'utf8'));
  const raw = fc.oneof(fc.uint8Array({ maxLength: 64, size: 'max' }).map((b) => Buffer.from(b)), mutated, structured);

  test('plain-arbitrary-bytes-never-log-in-unless-exact-credentials', async () => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(raw, async (bytes) => {
        let creds;
        try {
          creds = parsePlainResponse(bytes);
        } catch (e: unknown) {
          assert.ok(isVmgateError(e) && e.code === 'auth-failed', String(e));
          return;
        }
        const ok = await store.verify(creds.username, creds.password);
        assert.equal(ok, creds.username === USER && creds.password === PASSWORD, JSON.stringify(creds));
        if (ok) accepted++;
      }),
      { ...budget, numRuns: 400 },
    );
    // The generators do reach the accepting path, so the property is not vacuous.
    assert.ok(accepted > 0, 'no generated input was the valid login');
  });
}
