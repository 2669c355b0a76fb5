// Runs the compiled tests with Node's own runner, group by group (unit, then
// integration, then end to end), so a broken unit stops the run before the slow
// QEMU tests start. `node test/run.mjs unit` runs one group;
// `node test/run.mjs e2e/libvirt-` runs the files of a group whose names start so.
import { readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { spawnSync } from 'node:child_process';

const groups = process.argv.length > 2 ? process.argv.slice(2) : ['unit', 'integration', 'e2e'];
const root = new URL('../dist/test/', import.meta.url).pathname;

function testFiles(dir) {
  let out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out = out.concat(testFiles(path));
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

let failed = false;
for (const spec of groups) {
  const [group, prefix = ''] = spec.split('/');
  const files = testFiles(join(root, group)).filter((f) => basename(f).startsWith(prefix));
  if (files.length === 0) {
    console.error(`no tests found in dist/test/${spec}`);
    failed = true;
    continue;
  }
  console.log(`\n=== ${group}: ${files.length} files`);
  // e2e tests share network namespaces and QEMU ports: run them one at a time.
  const concurrency = group === 'unit' ? '2' : '1';
  const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files], { stdio: 'inherit' });
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
