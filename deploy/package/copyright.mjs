// Writes /usr/share/doc/vmgate/copyright: vmgate's own licence, the bundled
// Node.js runtime's, and one entry per shipped npm package, read from the
// package.json files actually shipped (so the list cannot go stale).
//
//   node deploy/package/copyright.mjs NODE_MODULES_DIR NODE_VERSION YEARS > copyright
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const [modules, nodeVersion, years] = process.argv.slice(2);
if (years === undefined) {
  console.error('usage: copyright.mjs NODE_MODULES_DIR NODE_VERSION YEARS');
  process.exit(2);
}

/** Every package directory under node_modules (scoped ones included), sorted. */
function packages(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.')) continue;
    if (name.startsWith('@')) out.push(...packages(join(dir, name)).map((p) => ({ ...p, name: `${name}/${p.name}` })));
    else if (existsSync(join(dir, name, 'package.json'))) out.push({ name, dir: join(dir, name) });
  }
  return out;
}

function licenceOf(pkg) {
  const l = pkg.license ?? pkg.licenses;
  if (typeof l === 'string') return l;
  if (Array.isArray(l)) return l.map((x) => (typeof x === 'string' ? x : x.type)).join(' or ');
  if (l && typeof l === 'object' && typeof l.type === 'string') return l.type;
  return 'see its licence file';
}

const lines = [
  'vmgate',
  '',
  `Copyright (C) ${years} the vmgate authors`,
  'License: Apache-2.0',
  ' On Debian systems the full text of the Apache License 2.0 is in',
  ' /usr/share/common-licenses/Apache-2.0.',
  '',
  `Bundled runtime: Node.js ${nodeVersion} (usr/lib/vmgate/node)`,
  'Copyright: Node.js contributors and others',
  'License: MIT, with the licences of the libraries Node.js bundles',
  ' The full text is in /usr/share/doc/vmgate/node/LICENSE.',
  '',
  'Bundled npm packages (usr/lib/vmgate/node_modules); each one\'s licence',
  'text is in its own directory there (LICENSE, LICENCE or COPYING):',
  '',
];
const seen = new Set();
function walk(dir) {
  for (const p of packages(dir)) {
    const pkg = JSON.parse(readFileSync(join(p.dir, 'package.json'), 'utf8'));
    const key = `${pkg.name}@${pkg.version}`;
    if (!seen.has(key)) {
      seen.add(key);
      const author = typeof pkg.author === 'string' ? pkg.author : pkg.author?.name;
      lines.push(` ${key}: ${licenceOf(pkg)}${author ? `, ${author}` : ''}`);
    }
    if (existsSync(join(p.dir, 'node_modules'))) walk(join(p.dir, 'node_modules'));
  }
}
walk(modules);
process.stdout.write(lines.join('\n') + '\n');
