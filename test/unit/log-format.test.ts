import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Writable } from 'node:stream';
import { resolveLogFormat } from '../../src/log/log-format.js';
import { journalLine, prettyLine, syslogPriority } from '../../src/log/log-lines.js';
import { createLogger } from '../../src/log/logger.js';

/** Real pino lines (with the redaction and base fields the daemon uses), not hand-written ones. */
function pinoLines(write: (log: ReturnType<typeof createLogger>) => void): string[] {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  write(createLogger('trace', sink, { gateway: 'host-a' }));
  return lines;
}

test('syslog-priorities: every pino level maps to the syslog priority journalctl -p filters on', () => {
  assert.deepEqual([60, 50, 40, 30, 20, 10].map(syslogPriority), [2, 3, 4, 6, 7, 7]);
});

test('journal-prefix: each line is led by <N> of its own level, the JSON after it unchanged', () => {
  const lines = pinoLines((log) => {
    log.error({ event: 'reload-failed' }, 'e');
    log.warn({ event: 'channel-refused' }, 'w');
    log.info({ event: 'ready' }, 'i');
    log.debug({ event: 'peer-probe' }, 'd');
  });
  const journal = lines.map(journalLine);
  assert.deepEqual(journal.map((l) => l.slice(0, 3)), ['<3>', '<4>', '<6>', '<7>']);
  for (const [i, l] of journal.entries()) assert.equal(l.slice(3), lines[i]);
  assert.equal((JSON.parse(journal[1]?.slice(3) ?? '') as Record<string, unknown>)['gateway'], 'host-a');
});

test('pretty-line: time, level name, gateway and message first, then the fields; secrets stay redacted', () => {
  const [line] = pinoLines((log) => log.warn({ event: 'auth-rejected', user: 'migrate', remote: '10.0.0.2:51234', password: 'hunter2', why: 'two words' }, 'SASL user "migrate": wrong password'));
  const text = prettyLine(line ?? '', false);
  assert.match(text, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARN {2}host-a SASL user "migrate": wrong password {2}/);
  assert.ok(text.includes(' event=auth-rejected user=migrate remote=10.0.0.2:51234 '), text);
  assert.ok(text.includes('password="[redacted]"'), text);
  assert.ok(text.includes('why="two words"'), text);
  assert.ok(!text.includes('hunter2'));
  assert.ok(!text.includes('pid='), 'one process: no pid');
  assert.ok(text.endsWith('\n') && !text.slice(0, -1).includes('\n'), 'one line');
  assert.ok(!text.includes('\x1b'), 'no colour unless asked');
  assert.ok(prettyLine(line ?? '', true).includes('\x1b[33mWARN '), 'warnings in yellow on a terminal');
});

test('pretty-line: a worker line keeps its pid; a line that is not JSON passes unchanged', () => {
  const [line] = pinoLines((log) => log.child({ process: 'worker' }).info({ event: 'worker-ready' }, 'worker ready'));
  assert.match(prettyLine(line ?? '', false), / pid=\d+ /);
  assert.equal(prettyLine('not json', false), 'not json\n');
});

test('auto-format: journal only while stdout is the stream systemd connected, pretty on a terminal, else json', () => {
  assert.equal(resolveLogFormat('auto', { journalStream: '8:1234', stdoutId: '8:1234', isTTY: false }), 'journal');
  assert.equal(resolveLogFormat('auto', { journalStream: '8:1234', stdoutId: '0:99', isTTY: false }), 'json', 'stdout redirected under the unit (| tee): not the journal');
  assert.equal(resolveLogFormat('auto', { journalStream: undefined, stdoutId: '0:99', isTTY: true }), 'pretty');
  assert.equal(resolveLogFormat('auto', { journalStream: '', stdoutId: undefined, isTTY: false }), 'json');
  assert.equal(resolveLogFormat('json', { journalStream: '8:1234', stdoutId: '8:1234', isTTY: true }), 'json', 'an explicit format wins');
});
