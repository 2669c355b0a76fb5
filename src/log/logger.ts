import { pino, type Logger, type DestinationStream } from 'pino';
import type { LogFormat } from './log-format.js';
import { journalLine, prettyLine } from './log-lines.js';

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

/**
 * A pino logger. `base` fields are on every line it and its children write:
 * the daemon puts the gateway's `name` there as `gateway`, so that no line
 * (reloading, stopping, ...) goes without it.
 */
export function createLogger(level: string, destination?: DestinationStream, base: Record<string, unknown> = {}): Logger {
  const options = {
    level,
    base: { pid: process.pid, ...base },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * Where the daemon's lines go: stdout, written synchronously (a line logged
 * just before the process exits is not lost), in `format`
 * (src/log/log-format.ts). `color` is for `pretty` only.
 */
export function stdoutDestination(format: LogFormat, color = process.stdout.isTTY === true && process.env['NO_COLOR'] === undefined): DestinationStream {
  const out = pino.destination({ dest: 1, sync: true });
  if (format === 'json') return out;
  const rewrite = format === 'journal' ? journalLine : (line: string): string => prettyLine(line, color);
  return { write: (line: string) => out.write(rewrite(line)) };
}
