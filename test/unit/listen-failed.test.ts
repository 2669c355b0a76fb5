/**
 * A listener that cannot be opened is `listen-failed` naming the address in
 * `detail`, whatever the reason: a port in use, or a file in the way of a
 * unix socket. (It used to be `config-invalid`, which means the file.)
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isVmgateError, systemCode } from '../../src/errors.js';
import { listenLocal } from '../../src/local/local-socket.js';

const dir = mkdtempSync(join(tmpdir(), 'vmgate-listen-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a TCP port in use is listen-failed with the address and EADDRINUSE as the cause', async () => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const port = (taken.address() as { port: number }).port;
  try {
    await assert.rejects(listenLocal({ kind: 'tcp', host: '127.0.0.1', port }, () => undefined), (e: unknown) => {
      assert.ok(isVmgateError(e), String(e));
      assert.equal(e.code, 'listen-failed');
      assert.deepEqual(e.detail, { address: `tcp:127.0.0.1:${port}` });
      assert.equal(systemCode(e.cause), 'EADDRINUSE');
      return true;
    });
  } finally {
    await new Promise((r) => taken.close(r));
  }
});

test('a regular file where the unix socket goes is listen-failed and is left alone', async () => {
  const path = join(dir, 'not-a-socket');
  writeFileSync(path, 'keep me');
  await assert.rejects(listenLocal({ kind: 'unix', path }, () => undefined), (e: unknown) => {
    assert.ok(isVmgateError(e), String(e));
    assert.equal(e.code, 'listen-failed');
    assert.deepEqual(e.detail, { address: `unix:${path}` });
    return true;
  });
  assert.equal(readFileSync(path, 'utf8'), 'keep me');
});
