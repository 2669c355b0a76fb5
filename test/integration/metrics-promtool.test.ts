/**
 * /metrics as Prometheus's own linter sees it (`promtool check metrics`), for
 * a one-process gateway and for one with worker processes (the primary's
 * merged registry), with the default process metrics in both.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { GatewayProcess } from '../helpers/gateway-process.js';
import { get, scrape } from '../helpers/prometheus.js';
import { requireTool } from '../helpers/require-tool.js';
import { writeSmallGateway } from '../helpers/small-gateway.js';

let dir: string;

before(async () => {
  requireTool('promtool', 'prometheus');
  dir = await mkdtemp(join(tmpdir(), 'vmgate-promtool-'));
});

after(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function promtoolCheck(exposition: string): Promise<{ code: number | null; output: string }> {
  const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stdin.end(exposition);
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, output })));
}

for (const workers of [1, 2]) {
  test(`promtool-clean: /metrics of a gateway with ${workers} process(es) passes promtool check metrics and has the process metrics`, { timeout: 60_000 }, async () => {
    const files = await writeSmallGateway(await mkdtemp(join(dir, `w${workers}-`)));
    const config = parse(await readFile(files.config, 'utf8')) as Record<string, unknown>;
    await writeFile(files.config, stringify({ ...config, workers, metrics: { listen: '127.0.0.1:0' } }), { mode: 0o600 });
    const gw = await GatewayProcess.start({ configPath: files.config, name: `promtool-${workers}` });
    try {
      const ready = gw.logs.find((l) => l.event === 'ready' && l['metrics'] !== null);
      const m = /^http:\/\/(.+):(\d+)$/.exec(String(ready?.['metrics']));
      assert.ok(m, gw.diagnostics());
      const address = { host: m[1] ?? '', port: Number(m[2]) };
      const body = (await get(address, '/metrics')).body;
      const check = await promtoolCheck(body);
      assert.deepEqual(check, { code: 0, output: '' }, 'promtool finds nothing to say');
      const s = await scrape(address);
      assert.ok(s.value('process_resident_memory_bytes') > 0);
      assert.ok(s.value('process_cpu_seconds_total') > 0);
      assert.equal(s.sum('nodejs_version_info'), 1, 'one Node.js version line, not one per process');
      assert.equal(s.sum('vmgate_build_info'), 1);
    } finally {
      await gw.stop();
    }
  });
}
