import { loadConfig } from '../config/load.js';
import { observedReload } from '../daemon/control.js';
import type { Daemon } from '../daemon/daemon.js';
import { Gateway } from '../daemon/gateway.js';
import { SystemdNotifier } from '../daemon/systemd-notify.js';
import { LOG_FORMAT_ENV, resolveLogFormat, type LogFormatChoice } from '../log/log-format.js';
import { createLogger, stdoutDestination } from '../log/logger.js';
import { WorkerPool } from '../workers/primary.js';

const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
type DaemonSignal = (typeof SIGNALS)[number];

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
 * reload (SIGHUP or `vmgate reload`), and STOPPING=1 when it starts to drain.
 *
 * Log lines go to stdout in `logFormat` (src/log/log-format.ts); every line
 * carries the gateway's name as `gateway`.
 */
export async function runDaemon(configFile: string, logFormat: LogFormatChoice = 'auto'): Promise<void> {
  const config = await loadConfig(configFile);
  const format = resolveLogFormat(logFormat);
  // Workers share this stdout and write it the same way (src/workers/worker.ts).
  process.env[LOG_FORMAT_ENV] = format;
  const log = createLogger(config.log.level, stdoutDestination(format), { gateway: config.name });
  // One signal handler from before the start to the end: a signal while the
  // gateway starts (even just after its `ready` line) is kept and acted on
  // once it runs. Removing a handler, even for a moment, would leave the
  // signal to Node's default (exit at once).
  const early: DaemonSignal[] = [];
  let act = (signal: DaemonSignal): void => {
    early.push(signal);
  };
  const onSignal = (signal: DaemonSignal): void => act(signal);
  for (const s of SIGNALS) process.on(s, onSignal);
  let gateway: Daemon;
  try {
    gateway = config.workers > 1 ? await WorkerPool.start(config, log.child({ process: 'primary' })) : await Gateway.start(config, log);
  } catch (e: unknown) {
    for (const s of SIGNALS) process.off(s, onSignal);
    throw e;
  }
  const systemd = new SystemdNotifier(log);
  const serving = `serving as ${config.name}`;
  void systemd.ready(serving);
  gateway.reloadObserver = {
    reloading: () => void systemd.reloading(),
    // After a refused reload the last good state serves: ready again either way.
    reloaded: (failed) => void systemd.ready(failed ? `${serving}; the last reload was refused (${failed.code}), see the log` : serving),
  };
  await new Promise<void>((resolve) => {
    let stopping = false;
    act = (signal) => {
      if (signal === 'SIGHUP') {
        log.info({ event: 'reloading', signal }, 'received SIGHUP: reloading certificates, CRL, credentials and allow-lists');
        void observedReload(gateway);
        return;
      }
      if (stopping) {
        log.warn({ event: 'stopping', signal }, `received ${signal} again: ending all channels now`);
        void gateway.stop(0);
        return;
      }
      stopping = true;
      void systemd.stopping();
      log.info({ event: 'stopping', signal, graceMs: config.channel.shutdownGraceMs }, `received ${signal}: no new channels; waiting up to ${config.channel.shutdownGraceMs} ms for migrations in flight`);
      void gateway.stop(config.channel.shutdownGraceMs).then(() => {
        for (const s of SIGNALS) process.off(s, onSignal);
        log.info({ event: 'stopped' }, 'stopped');
        resolve();
      });
    };
    for (const s of early.splice(0)) act(s);
  });
}
