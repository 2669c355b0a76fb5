import { fstatSync } from 'node:fs';

/**
 * How the daemon writes its log lines on stdout:
 *
 * - `json`: one pino JSON object per line (files, pipes, log shippers).
 * - `journal`: the same JSON, each line preceded by its syslog priority as
 *   `<N>` (sd-daemon(3)). journald strips the prefix and files the line at
 *   that priority (SyslogLevelPrefix=, on by default), so
 *   `journalctl -u vmgate -p warning` shows warnings and worse.
 * - `pretty`: one readable line per entry for a person at a terminal.
 */
export const LOG_FORMATS = ['json', 'journal', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** What the operator asked for: a format, or `auto` (the default). */
export type LogFormatChoice = LogFormat | 'auto';

/**
 * The environment variable through which `vmgate run` hands the format it
 * chose to its worker processes (they share its stdout, so they must write
 * the same way).
 */
export const LOG_FORMAT_ENV = 'VMGATE_LOG_FORMAT';

export function isLogFormat(s: string | undefined): s is LogFormat {
  return (LOG_FORMATS as readonly string[]).includes(s ?? '');
}

/** What `auto` looks at, so that a test can say it. */
export interface OutputFacts {
  /** $JOURNAL_STREAM, which systemd sets to `DEVICE:INODE` of the stream it connected to stdout. */
  journalStream: string | undefined;
  /** `DEVICE:INODE` of what fd 1 is now; undefined when it cannot be read. */
  stdoutId: string | undefined;
  isTTY: boolean;
}

/**
 * `auto`: journal when stdout is still the stream systemd connected to the
 * journal (JOURNAL_STREAM names it; a `vmgate run | tee` under the same unit
 * no longer is), pretty on a terminal, JSON otherwise.
 */
export function resolveLogFormat(choice: LogFormatChoice, facts: OutputFacts = stdoutFacts()): LogFormat {
  if (choice !== 'auto') return choice;
  if (facts.journalStream !== undefined && facts.journalStream !== '' && facts.journalStream === facts.stdoutId) return 'journal';
  return facts.isTTY ? 'pretty' : 'json';
}

function stdoutFacts(): OutputFacts {
  let stdoutId: string | undefined;
  try {
    const st = fstatSync(1);
    stdoutId = `${st.dev}:${st.ino}`;
  } catch {
    stdoutId = undefined; // fd 1 closed: nothing to match
  }
  return { journalStream: process.env['JOURNAL_STREAM'], stdoutId, isTTY: process.stdout.isTTY === true };
}
