import 'reflect-metadata';
import { runWorker } from './worker.js';

/**
 * Entry of a worker process, forked by the primary (src/workers/primary.ts)
 * with the config file as its only argument. Not a command for operators.
 */
const configFile = process.argv[2];
if (configFile === undefined || !process.send) {
  console.error('error [internal]: worker-main.js is started by `vmgate run` when workers > 1, not by hand');
  process.exitCode = 2;
} else {
  await runWorker(configFile);
}
