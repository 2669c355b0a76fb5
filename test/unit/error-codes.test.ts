/**
 * docs/operations.md is the operator's list of error codes: it must hold
 * exactly the codes of ERROR_CODES, each with its meaning word for word, and
 * every code its "Changed codes" table points to must exist.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, isErrorCode } from '../../src/errors.js';

const doc = readFileSync(fileURLToPath(new URL('../../../docs/operations.md', import.meta.url)), 'utf8');

/** The rows `| cell | cell | ... |` of the tables in the section under `heading`. */
function rows(heading: string): string[][] {
  const start = doc.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `docs/operations.md has no "## ${heading}" section`);
  const rest = doc.slice(start + heading.length + 5);
  const end = rest.search(/\n## /);
  const section = end < 0 ? rest : rest.slice(0, end);
  return section
    .split('\n')
    .filter((l) => l.startsWith('| ') && !/^\|[-| ]+\|$/.test(l))
    .map((l) => l.slice(1, -1).split(' | ').map((c) => c.trim()))
    .filter((cells) => cells[0] !== 'code' && cells[0] !== 'old');
}

const unquote = (cell: string | undefined): string => (cell ?? '').replace(/^`(.*)`$/, '$1');

test('every code in ERROR_CODES is documented, with its meaning word for word, and nothing else is', () => {
  const documented = new Map(rows('Error codes').map((r) => [unquote(r[0]), r[1]]));
  const codes = Object.keys(ERROR_CODES);
  assert.deepEqual([...codes].filter((c) => !documented.has(c)), [], 'codes missing from docs/operations.md');
  assert.deepEqual([...documented.keys()].filter((c) => !isErrorCode(c)), [], 'codes in docs/operations.md that src/errors.ts lacks');
  for (const [code, meaning] of Object.entries(ERROR_CODES)) assert.equal(documented.get(code), meaning, `meaning of ${code}`);
  assert.equal(documented.size, codes.length, 'a code documented twice');
});

test('every code has something for the operator to do', () => {
  for (const r of rows('Error codes')) assert.ok((r[2] ?? '').length > 10, `no advice for ${r[0] ?? '?'}`);
});

test('every new code of the "Changed codes" table exists, and every old one that is gone is listed', () => {
  const changes = rows('Changed codes');
  assert.ok(changes.length > 0);
  for (const [, next, when] of changes) {
    assert.ok(isErrorCode(unquote(next)), `changed to ${next ?? '?'}, which src/errors.ts lacks`);
    assert.ok((when ?? '').length > 10, `no "when" for the change to ${next ?? '?'}`);
  }
  // The one code removed outright; a code still in ERROR_CODES kept its main meaning.
  assert.ok(changes.some(([old]) => unquote(old) === 'pki-usage'));
  assert.ok(!isErrorCode('pki-usage'));
});
