import { loadConfig } from '../config/load.js';
import { Gateway } from '../daemon/gateway.js';
import { createLogger } from '../log/logger.js';
import { WorkerPool } from '../workers/primary.js';

/**
 * `vmgate run`: the daemon. SIGHUP reloads files (keeping the last good state
 * on error); SIGTERM/SIGINT stop accepting, let migrations in flight finish
 * for channel.shutdownGraceMs, then end them with cause `shutdown`; a second
 * SIGTERM/SIGINT ends them at once. Resolves when stopped; rejects with a
 * coded error when the gateway cannot start.
 *
 * With `workers` > 1 this process is the primary of a WorkerPool (see
 * src/workers): the same signals, passed on to every worker.
 */
export async function runDaemon(configFile: string): Promise<void> {
  const config = await loadConfig(configFile);
  const log = createLogger(config.log.level);
  const gateway = config.workers > 1
    ? await WorkerPool.start(config, log.child({ gateway: config.name, process: 'primary' }))
    : await Gateway.start(config, log.child({ gateway: config.name }));
  const onHup = (): void => {
    log.info({ event: 'reloading', signal: 'SIGHUP' }, 'received SIGHUP: reloading certificates, CRL, credentials and allow-lists');
    void gateway.reload();
  };
  process.on('SIGHUP', onHup);
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        log.warn({ event: 'stopping', signal }, `received ${signal} again: ending all channels now`);
        void gateway.stop(0);
        return;
      }
      stopping = true;
      log.info({ event: 'stopping', signal, graceMs: config.channel.shutdownGraceMs }, `received ${signal}: no new channels; waiting up to ${config.channel.shutdownGraceMs} ms for migrations in flight`);
      void gateway.stop(config.channel.shutdownGraceMs).then(() => {
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
        process.off('SIGHUP', onHup);
        log.info({ event: 'stopped' }, 'stopped');
        resolve();
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
