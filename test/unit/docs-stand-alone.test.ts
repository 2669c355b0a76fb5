/**
 * The repository stands alone: no file cites a document that is not in it,
 * committed bench results name no directory of the machine that ran them, and
 * every repository path a doc names in backticks exists (files move; docs
 * that point at the old place mislead the next reader).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

/** dist/test/unit/ -> the repository. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SKIP_DIRS = new Set(['.git', 'node_modules', 'dist']);
const SKIP_FILES = new Set(['package-lock.json']);

/** Every text file of the checkout, as a repository-relative path. */
function repositoryFiles(dir = ROOT): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name)) out.push(...repositoryFiles(path));
    } else if (entry.isFile() && !SKIP_FILES.has(entry.name) && statSync(path).size < 4 << 20) {
      out.push(relative(ROOT, path));
    }
  }
  return out;
}

function text(file: string): string | undefined {
  const bytes = readFileSync(join(ROOT, file));
  return bytes.includes(0) ? undefined : bytes.toString('utf8');
}

test('no-outside-citations: no file cites a design document or a shared folder outside the repository', () => {
  // Spelled in pieces so that this file does not match itself.
  const outside = [new RegExp(['DESIGN', '\\.md'].join('')), new RegExp(['\\.\\./', 'shared/'].join(''))];
  const files = repositoryFiles();
  assert.ok(files.includes('README.md') && files.some((f) => f.startsWith('src/')), `walked the checkout at ${ROOT}`);
  const hits: string[] = [];
  for (const file of files) {
    const body = text(file);
    if (body === undefined) continue;
    body.split('\n').forEach((line, i) => {
      if (outside.some((re) => re.test(line))) hits.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(hits, []);
});

test('bench-results-portable: committed bench results hold no absolute path', () => {
  const dir = join(ROOT, 'bench', 'results');
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  assert.ok(files.length > 0, 'bench/results holds the runs docs/performance.md quotes');
  const absolute: string[] = [];
  const walk = (value: unknown, where: string): void => {
    if (typeof value === 'string') {
      // A path option's value, or a path inside a recorded command line.
      if (/(^|\s|=)\/[A-Za-z]/.test(value)) absolute.push(`${where}: ${value}`);
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => walk(v, `${where}[${i}]`));
    } else if (typeof value === 'object' && value !== null) {
      for (const [k, v] of Object.entries(value)) walk(v, `${where}.${k}`);
    }
  };
  for (const f of files) walk(JSON.parse(readFileSync(join(dir, f), 'utf8')) as unknown, f);
  assert.deepEqual(absolute, []);
});

test('doc-paths-exist: every repository path a doc names in backticks exists', () => {
  const docs = repositoryFiles().filter((f) => f.endsWith('.md'));
  const missing: string[] = [];
  let checked = 0;
  for (const doc of docs) {
    for (const [, quoted] of (text(doc) ?? '').matchAll(/`([^`\n]+)`/g)) {
      const path = (quoted ?? '').replace(/^\.\//, '').replace(/[:#].*$/, '');
      // A file path (a folder, then a name with an extension), not a command, glob or placeholder.
      if (!/^\.?[a-z][a-z0-9-]*\/[A-Za-z0-9_./-]*\.(ts|mjs|md|json|yaml|service)$/.test(path)) continue;
      // Docs name files from the repository root, or inside src/ or test/ as architecture.md does.
      const found = ['', 'src/', 'test/', 'docs/'].some((base) => existsSync(join(ROOT, base, path)));
      if (!found) missing.push(`${doc}: ${quoted}`);
      checked += 1;
    }
  }
  assert.ok(checked > 50, `only ${checked} paths found in ${docs.length} docs: is the pattern still right?`);
  assert.deepEqual(missing, []);
});
