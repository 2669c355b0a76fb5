import { loadConfig } from '../config/load.js';
import { Gateway } from '../daemon/gateway.js';
import { SystemdNotifier } from '../daemon/systemd-notify.js';
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
 *
 * Under a `Type=notify` unit it tells systemd READY=1 once the gateway is
 * ready (after its `ready` log line), RELOADING=1 and READY=1 around a
 * SIGHUP reload, and STOPPING=1 when it starts to drain.
 */
export async function runDaemon(configFile: string): Promise<void> {
  const config = await loadConfig(configFile);
  const log = createLogger(config.log.level);
  const gateway = config.workers > 1
    ? await WorkerPool.start(config, log.child({ gateway: config.name, process: 'primary' }))
    : await Gateway.start(config, log.child({ gateway: config.name }));
  const systemd = new SystemdNotifier(log.child({ gateway: config.name }));
  const serving = `serving as ${config.name}`;
  void systemd.ready(serving);
  const onHup = (): void => {
    log.info({ event: 'reloading', signal: 'SIGHUP' }, 'received SIGHUP: reloading certificates, CRL, credentials and allow-lists');
    void systemd.reloading();
    // After a refused reload the last good state serves: ready again either way.
    void gateway.reload().then((failed) => systemd.ready(failed ? `${serving}; the last reload was refused (${failed.code}), see the log` : serving));
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
      void systemd.stopping();
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
