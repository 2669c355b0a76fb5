import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseOptions } from '../../bench/options.js';
import { resultsSection } from '../../bench/report/markdown.js';
import { portableArgv, portableOptions, repoRelative } from '../../bench/report/portable-options.js';
import type { BenchResults } from '../../bench/report/results.js';

const repo = '/srv/checkout/vmgate';

test('repo-relative: inside the repository relative to it, outside it undefined', () => {
  assert.equal(repoRelative('/srv/checkout/vmgate/bench/results', repo, '/'), 'bench/results');
  assert.equal(repoRelative('bench/results', repo, repo), 'bench/results');
  assert.equal(repoRelative('.', repo, repo), '.');
  assert.equal(repoRelative('/tmp/bench-out', repo, repo), undefined);
  assert.equal(repoRelative('../other/dist', repo, repo), undefined);
  assert.equal(repoRelative('/srv/checkout/vmgate-old/dist', repo, repo), undefined, 'a sibling whose name starts alike is outside');
});

test('portable-argv: path values rewritten in both option spellings, other arguments kept', () => {
  const argv = ['--only', 'qemu', '--out-dir', '/tmp/x', '--cpu-prof=/srv/checkout/vmgate/prof', '--baseline-cli', '/opt/old/main.js', '--runs', '9'];
  assert.equal(portableArgv(argv, repo, repo), '--only qemu --out-dir <dir> --cpu-prof prof --baseline-cli <main.js> --runs 9');
  assert.equal(portableArgv(['--out-dir'], repo, repo), '--out-dir', 'a flag without its value is left for commander to refuse');
});

test('portable-options: the recorded options hold no path outside the repository', () => {
  const o = parseOptions(['--out-dir', '/tmp/bench-full', '--cpu-prof', 'prof', '--runs', '3'], `${repo}/bench/results`);
  const recorded = portableOptions(o, repo, repo);
  assert.equal('outDir' in recorded, false);
  assert.equal(recorded['cpuProf'], 'prof');
  assert.equal('baselineCli' in recorded, false);
  assert.equal(recorded['argv'], '--out-dir <dir> --cpu-prof prof --runs 3');
  assert.equal(recorded['runs'], 3);
  assert.equal(JSON.stringify(recorded).includes('/tmp'), false);

  const byDefault = portableOptions(parseOptions([], `${repo}/bench/results`), repo, repo);
  assert.equal(byDefault['outDir'], 'bench/results');
  assert.equal(byDefault['argv'], '');
});

test('results-section: names the JSON file only when it is inside the repository', () => {
  const r = {
    date: '2026-11-26T05:22:46.725Z',
    durationSeconds: 1,
    machine: { cpu: 'cpu', cores: 2, memoryGiB: 1, kernel: 'k', node: 'v20', openssl: '3', stunnel: undefined, qemu: undefined },
    options: { argv: '--out-dir <dir>' },
    notes: [],
    workers: { available: false, keyPaths: [], compared: 2 },
    synthetic: { rows: [], samples: [] },
    qemu: { rows: [], samples: [], reliability: undefined },
    handshake: { rows: [], samples: [] },
    memory: { rows: [], idle: [], growth: [] },
    targets: [],
  } as unknown as BenchResults;
  const inside = resultsSection(r, `${repo}/bench/results/a.json`, repo);
  assert.ok(inside.includes('raw figures: `bench/results/a.json`'));
  const outside = resultsSection(r, '/tmp/x/a.json', repo);
  assert.equal(outside.includes('/tmp'), false);
  assert.ok(outside.includes('outside the repository'));
});
