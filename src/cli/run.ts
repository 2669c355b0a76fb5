import { loadConfig } from '../config/load.js';
import { Gateway } from '../gateway/gateway.js';
import { createLogger } from '../log/logger.js';

/**
 * `vmgate run`: the daemon. Resolves when the gateway has stopped after a
 * signal; rejects (with a coded error) when it cannot start.
 */
export async function runDaemon(configFile: string): Promise<void> {
  const config = await loadConfig(configFile);
  const log = createLogger(config.log.level);
  const gateway = await Gateway.start(config, log.child({ gateway: config.name }));
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      log.info({ event: 'stopping', signal }, `received ${signal}: stopping`);
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      void gateway.stop().then(() => {
        log.info({ event: 'stopped' }, 'stopped');
        resolve();
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
