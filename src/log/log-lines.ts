/**
 * The two rewrites of a pino JSON line that the `journal` and `pretty` log
 * formats make (src/log/log-format.ts). Both read what pino already
 * serialised, so redaction has happened and nothing is formatted twice.
 */

/** pino's numeric levels to syslog priorities (syslog(3)): what journald filters with -p. */
export function syslogPriority(level: number): number {
  if (level >= 60) return 2; // fatal -> crit
  if (level >= 50) return 3; // error -> err
  if (level >= 40) return 4; // warn -> warning
  if (level >= 30) return 6; // info -> info
  return 7; // debug, trace -> debug
}

/** pino's level names, for people. */
function levelName(level: number): string {
  if (level >= 60) return 'fatal';
  if (level >= 50) return 'error';
  if (level >= 40) return 'warn';
  if (level >= 30) return 'info';
  if (level >= 20) return 'debug';
  return 'trace';
}

// pino writes the level first: {"level":30,"time":...
const LEVEL_AT_START = /^\{"level":(\d+)/;

/** `<N>` + the line, N the syslog priority of its level (info when the line has none). */
export function journalLine(line: string): string {
  const m = LEVEL_AT_START.exec(line);
  return `<${syslogPriority(m ? Number(m[1]) : 30)}>${line}`;
}

const COLORS: Record<string, string> = { fatal: '\x1b[1;31m', error: '\x1b[31m', warn: '\x1b[33m', info: '\x1b[32m', debug: '\x1b[2m', trace: '\x1b[2m' };
const RESET = '\x1b[0m';

// Shown in the line's head, or noise at a terminal (pid: one process, unless workers say `process`).
const HEAD_FIELDS = new Set(['level', 'time', 'msg', 'gateway']);

/**
 * `TIME LEVEL GATEWAY MESSAGE  key=value ...`: the message first, because it
 * says what happened and what to do; then the structured fields, strings bare
 * when they need no quotes. A line that is not a JSON object passes unchanged.
 */
export function prettyLine(line: string, color: boolean): string {
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return line.endsWith('\n') ? line : `${line}\n`;
  const e = entry as Record<string, unknown>;
  const level = levelName(typeof e['level'] === 'number' ? e['level'] : 30);
  const label = level.toUpperCase().padEnd(5);
  const head = [
    typeof e['time'] === 'string' ? e['time'] : new Date(typeof e['time'] === 'number' ? e['time'] : Date.now()).toISOString(),
    color ? `${COLORS[level] ?? ''}${label}${RESET}` : label,
    ...(e['gateway'] === undefined ? [] : [text(e['gateway'])]),
    e['msg'] === undefined ? '' : text(e['msg']),
  ].join(' ');
  const fields = Object.entries(e)
    .filter(([k]) => !HEAD_FIELDS.has(k) && !(k === 'pid' && e['process'] === undefined))
    .map(([k, v]) => `${k}=${fieldValue(v)}`);
  const tail = fields.length === 0 ? '' : `  ${color ? '\x1b[2m' : ''}${fields.join(' ')}${color ? RESET : ''}`;
  return `${head}${tail}\n`;
}

function text(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function fieldValue(v: unknown): string {
  if (typeof v === 'string') return /^[\w.:/@+-]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v);
}
