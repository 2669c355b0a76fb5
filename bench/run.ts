/**
 * `npm run bench`: the gateway must never be the bottleneck of a migration.
 * Measures direct loopback, a stunnel pair and a vmgate pair side by side in
 * one run (order rotating each round), prints medians with each vmgate figure
 * as a ratio to stunnel and to direct, judges the targets of issue 6 (never
 * asserts), saves the JSON and rewrites the results section of
 * docs/performance.md. `npm run bench -- --help` lists the options.
 */
import { freemem } from 'node:os';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommanderError } from 'commander';
import { findQemu } from '../src/demo/qemu-demo.js';
import { messageOf } from '../src/errors.js';
import { randomGuestImage } from '../src/qemu/qemu-vm.js';
import { makeFixture } from './fixture.js';
import { runHandshakes, type HandshakeSample } from './handshake.js';
import { HoldSink } from './hold-sink.js';
import { describeMachine } from './machine.js';
import { measureGrowth, measureIdle, type GrowthSample, type IdleSample } from './memory.js';
import { parseOptions, type BenchOptions } from './options.js';
import { portableOptions } from './report/portable-options.js';
import { directPath, type PathSpec } from './paths/path.js';
import { stunnelMissing, stunnelPath, stunnelVersion } from './paths/stunnel.js';
import { vmgatePath } from './paths/vmgate.js';
import { runQemuMigrations, runReliability, type QemuCase, type QemuSample } from './qemu-migration.js';
import { resultsSection, writeResultsSection } from './report/markdown.js';
import type { BenchResults } from './report/results.js';
import { resultTables } from './report/tables.js';
import { summarizeHandshakes, summarizeMemory, summarizeQemu, summarizeSynthetic } from './summary.js';
import { runSynthetic, type SyntheticCase, type SyntheticSample } from './synthetic.js';
import { judgeTargets } from './targets.js';
import { Traffic } from './traffic/traffic.js';
import { workersKeyPaths } from './workers-setting.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const say = (line: string): void => console.log(line);

async function main(o: BenchOptions): Promise<void> {
  const started = new Date();
  const notes: string[] = [];
  const missingStunnel = stunnelMissing();
  if (missingStunnel) notes.push(`stunnel path left out: ${missingStunnel}`);
  const qemuBinary = o.sections.includes('qemu') ? await findQemu() : undefined;
  if (o.sections.includes('qemu') && qemuBinary === undefined) notes.push('QEMU migrations left out: qemu-system-x86_64 not found (Debian package qemu-system-x86)');
  const workersPaths = workersKeyPaths();
  const workersAvailable = workersPaths.length > 0;
  if (!workersAvailable) notes.push(`the workers setting is not available in this build (no "workers" key in the config schema): 4 streams measured with one process per gateway only`);
  const machine = describeMachine({ stunnel: missingStunnel ? undefined : stunnelVersion(), qemuBinary });
  say(`vmgate bench: ${machine.cpu}, ${machine.cores} cores, Linux ${machine.kernel}, Node ${machine.node}`);
  say(`  runs ${o.runs}, ${(o.bytes / 2 ** 30).toFixed(2)} GiB per synthetic measurement, sections: ${o.sections.join(', ')}`);
  for (const n of notes) say(`  note: ${n}`);

  const fx = await makeFixture();
  const traffic = await Traffic.start();
  const sink = await HoldSink.start();
  try {
    const direct = directPath;
    const stunnel = missingStunnel ? undefined : stunnelPath(fx);
    const prof = o.cpuProf === undefined ? {} : { cpuProfDir: o.cpuProf };
    // Running daemons are warm (their routes probe their peers); the handshake figure keeps the cold first channels.
    const vmgate = vmgatePath(fx, { workers: 1, workersPaths, probe: 'wait', ...prof });
    const vmgateCold = vmgatePath(fx, { workers: 1, workersPaths, probe: 'off', ...prof });
    const vmgateN = workersAvailable ? vmgatePath(fx, { workers: o.workers, workersPaths, probe: 'wait', ...prof }) : undefined;
    const baseline = o.baselineCli === undefined ? undefined : vmgatePath(fx, { workers: 1, workersPaths, cli: o.baselineCli, name: 'vmgate-baseline' });
    const three = [direct, stunnel, vmgate].filter((p): p is PathSpec => p !== undefined);
    const gateways = [stunnel, vmgate].filter((p): p is PathSpec => p !== undefined);

    let synthetic: SyntheticSample[] = [];
    if (o.sections.includes('synthetic')) {
      say('\nSynthetic streams');
      const cases: SyntheticCase[] = [
        ...[...three, baseline].filter((p): p is PathSpec => p !== undefined).map((path) => ({ path, streams: 1 })),
        ...[...three, baseline, vmgateN].filter((p): p is PathSpec => p !== undefined).map((path) => ({ path, streams: 4 })),
      ];
      synthetic = await runSynthetic(cases, traffic, { runs: o.runs, bytes: o.bytes, say });
    }
    let handshakes: HandshakeSample[] = [];
    if (o.sections.includes('handshake')) {
      say(`\nOpening ${o.handshakeChannels} channels`);
      const cold = [direct, stunnel, vmgateCold].filter((p): p is PathSpec => p !== undefined);
      handshakes = await runHandshakes(cold, sink, { runs: o.runs, channels: o.handshakeChannels, say });
    }
    const idle: IdleSample[] = [];
    const growth: GrowthSample[] = [];
    if (o.sections.includes('memory')) {
      say(`\nMemory: ${o.idleChannels} idle channels, and RSS growth over ${(o.growthBytes / 2 ** 30).toFixed(2)} GiB on one channel`);
      for (let round = 0; round < o.runs; round++) {
        for (const path of gateways) {
          const i = await measureIdle(path, sink, o.idleChannels, round);
          const g = await measureGrowth(path, traffic, o.growthBytes, round);
          idle.push(i);
          growth.push(g);
          const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
          say(`  run ${round + 1}/${o.runs}  ${path.name.padEnd(10)} idle RSS A ${mib(i.rssBytes.A)} / B ${mib(i.rssBytes.B)} MiB; growth A ${mib(g.growthBytes.A)} / B ${mib(g.growthBytes.B)} MiB`);
        }
      }
    }
    let qemu: QemuSample[] = [];
    let reliability: BenchResults['qemu']['reliability'];
    if (qemuBinary !== undefined) {
      const needMiB = 3 * (o.guestMiB + 128);
      if (freemem() / 2 ** 20 < needMiB) throw new Error(`QEMU part: two guests of ${o.guestMiB + 128} MiB and the image need about ${needMiB} MiB free; pick a smaller --guest-mib`);
      say(`\nReal QEMU: paused guest with ${o.guestMiB} MiB of random RAM`);
      const image = await randomGuestImage(fx.dir, o.guestMiB);
      const setup = { dir: fx.dir, binary: qemuBinary, image, randomMiB: o.guestMiB };
      // With workers, a multifd migration's channels run in several processes (one channel: one process, so single is left out).
      const cases: QemuCase[] = [
        ...three.map((path) => ({ path, mode: 'single' as const })),
        ...[...three, vmgateN].filter((p): p is PathSpec => p !== undefined).map((path) => ({ path, mode: 'multifd4' as const })),
      ];
      qemu = await runQemuMigrations(cases, setup, { runs: o.runs, say });
      if (o.multifdReliability > 0) {
        say(`\nmultifd 4 through vmgate, ${o.multifdReliability} times`);
        const samples = await runReliability(vmgate, setup, { count: o.multifdReliability, say });
        reliability = { path: vmgate.name, runs: samples.length, completed: samples.filter((s) => s.ok).length, samples };
      }
    }

    const syntheticRows = summarizeSynthetic(synthetic);
    const qemuRows = summarizeQemu(qemu);
    const handshakeRows = summarizeHandshakes(handshakes);
    const memoryRows = summarizeMemory(idle, growth);
    const results: BenchResults = {
      date: started.toISOString(),
      durationSeconds: (Date.now() - started.getTime()) / 1000,
      machine,
      options: portableOptions(o, REPO_ROOT, process.cwd()),
      notes,
      workers: { available: workersAvailable, keyPaths: workersPaths.map((p) => p.join('.')), compared: o.workers },
      synthetic: { rows: syntheticRows, samples: synthetic },
      qemu: { rows: qemuRows, samples: qemu, reliability },
      handshake: { rows: handshakeRows, samples: handshakes },
      memory: { rows: memoryRows, idle, growth },
      targets: judgeTargets({
        synthetic: syntheticRows,
        qemu: qemuRows,
        reliability,
        reliabilityRequired: 20,
        handshake: handshakeRows,
        memory: memoryRows,
        workers: { available: workersAvailable, count: o.workers },
      }),
    };
    say('');
    for (const block of resultTables(results, 'text')) say(`${block}\n`);
    await mkdir(o.outDir, { recursive: true });
    const jsonFile = join(o.outDir, `${results.date.replace(/[:.]/g, '-')}.json`);
    await writeFile(jsonFile, `${JSON.stringify(results, null, 2)}\n`);
    say(`results saved to ${jsonFile}`);
    if (o.docs) {
      const doc = join(REPO_ROOT, 'docs', 'performance.md');
      await writeResultsSection(doc, resultsSection(results, jsonFile, REPO_ROOT));
      say(`results section of ${doc} rewritten`);
    }
  } finally {
    traffic.stop();
    await sink.close();
    await fx.dispose();
  }
}

let options: BenchOptions;
try {
  options = parseOptions(process.argv.slice(2), join(REPO_ROOT, 'bench', 'results'));
} catch (e: unknown) {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  throw e;
}
main(options).catch((e: unknown) => {
  console.error(`bench failed: ${messageOf(e)}`);
  process.exitCode = 1;
});
