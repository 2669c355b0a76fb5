/**
 * `npm run bench`: the gateway must never be the bottleneck of a migration.
 * Measures direct loopback, a stunnel pair and a vmgate pair side by side in
 * one run (order rotating each round), prints medians with each vmgate figure
 * as a ratio to stunnel and to direct, judges the targets of issue 6 (never
 * asserts), saves the JSON and rewrites the results section of
 * docs/performance.md. `npm run bench -- --help` lists the options.
 */
import { freemem } from 'node:os';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommanderError } from 'commander';
import { findQemu } from '../src/demo/qemu-demo.js';
import { messageOf } from '../src/errors.js';
import { randomGuestImage } from '../src/qemu/qemu-vm.js';
import { runEvacuations, type EvacuationSample } from './evacuation.js';
import { judgeEvacuation, summarizeEvacuation } from './evacuation-summary.js';
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
import { EVACUATION_END, EVACUATION_START, evacuationSection, resultsSection, writeResultsSection } from './report/markdown.js';
import type { BenchResults } from './report/results.js';
import { evacuationTables, resultTables } from './report/tables.js';
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
  const wantQemu = o.sections.includes('qemu') || o.sections.includes('evacuation');
  const qemuBinary = wantQemu ? await findQemu() : undefined;
  if (wantQemu && qemuBinary === undefined) notes.push('QEMU migrations and the evacuation left out: qemu-system-x86_64 not found (Debian package qemu-system-x86)');
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
    if (qemuBinary !== undefined && o.sections.includes('qemu')) {
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
    let evacuation: EvacuationSample[] = [];
    if (qemuBinary !== undefined && o.sections.includes('evacuation')) {
      const n = o.evacuationMigrations;
      const guestMiB = o.evacuationMiB + 128;
      // Sources hold their RAM from the start; destinations fill theirs as it arrives.
      const needMiB = 2 * n * guestMiB + o.evacuationMiB;
      if (freemem() / 2 ** 20 < needMiB) throw new Error(`evacuation: ${2 * n} guests of ${guestMiB} MiB need about ${needMiB} MiB free; pick a smaller --evacuation-mib or --evacuation-migrations`);
      say(`\nEvacuation: ${n} precopy migrations at once, paused guests of ${guestMiB} MiB with ${o.evacuationMiB} MiB of random RAM, one port each`);
      const image = await randomGuestImage(await mkdtemp(join(fx.dir, 'evacuation-')), o.evacuationMiB);
      // With workers, the route's sessions (one per port) spread over the worker processes.
      const evacuationPaths = [...three, vmgateN].filter((p): p is PathSpec => p !== undefined);
      evacuation = await runEvacuations(evacuationPaths, { dir: fx.dir, binary: qemuBinary, image, randomMiB: o.evacuationMiB }, { runs: o.runs, migrations: n, say });
    }

    const syntheticRows = summarizeSynthetic(synthetic);
    const qemuRows = summarizeQemu(qemu);
    const handshakeRows = summarizeHandshakes(handshakes);
    const memoryRows = summarizeMemory(idle, growth);
    const evacuationRows = summarizeEvacuation(evacuation, o.evacuationMigrations);
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
      evacuation: { migrations: o.evacuationMigrations, guestMiB: o.evacuationMiB, rows: evacuationRows, samples: evacuation, targets: judgeEvacuation(evacuationRows, o.evacuationMigrations) },
    };
    say('');
    const mainSections = o.sections.some((s) => s !== 'evacuation');
    if (mainSections) for (const block of resultTables(results, 'text')) say(`${block}\n`);
    for (const block of evacuationTables(results, 'text')) say(`${block}\n`);
    await mkdir(o.outDir, { recursive: true });
    const jsonFile = join(o.outDir, `${results.date.replace(/[:.]/g, '-')}.json`);
    // No machine paths in what is kept: the work dir (QEMU errors name it) and the checkout.
    const json = JSON.stringify(results, null, 2).replaceAll(fx.dir, '<work dir>').replaceAll(REPO_ROOT, '');
    await writeFile(jsonFile, `${json}\n`);
    say(`results saved to ${jsonFile}`);
    if (o.docs) {
      const doc = join(REPO_ROOT, 'docs', 'performance.md');
      if (mainSections) {
        await writeResultsSection(doc, resultsSection(results, jsonFile, REPO_ROOT));
        say(`results section of ${doc} rewritten`);
      }
      if (results.evacuation.rows.length > 0) {
        await writeResultsSection(doc, evacuationSection(results, jsonFile, REPO_ROOT), { start: EVACUATION_START, end: EVACUATION_END, heading: 'Evacuation: several migrations at once (issue 15)' });
        say(`evacuation section of ${doc} rewritten`);
      }
    }
  } finally {
    traffic.stop();
    await sink.close();
    await fx.dispose();
  }
}

/** The options, or undefined after --help, --version or a usage error (commander has printed it). */
function commandLine(): BenchOptions | undefined {
  try {
    return parseOptions(process.argv.slice(2), join(REPO_ROOT, 'bench', 'results'));
  } catch (e: unknown) {
    if (!(e instanceof CommanderError)) throw e;
    process.exitCode = e.exitCode;
    return undefined;
  }
}

const options = commandLine();
if (options !== undefined) {
  main(options).catch((e: unknown) => {
    console.error(`bench failed: ${messageOf(e)}`);
    process.exitCode = 1;
  });
}
