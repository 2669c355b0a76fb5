import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

/**
 * Keys that may carry secrets anywhere in a log object. pino removes them
 * before serialisation, so a careless `log.info({ route })` cannot leak a
 * password or key. (Secrets are also never put into log objects on purpose.)
 */
const REDACT_PATHS = [
  'password', '*.password', 'passwordFile', '*.passwordFile',
  'response', '*.response',
  'key', '*.key', 'keyPem', '*.keyPem', 'passphrase', '*.passphrase',
  'secret', '*.secret', 'authorization', '*.authorization',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination ? pino(options, destination) : pino(options);
}
