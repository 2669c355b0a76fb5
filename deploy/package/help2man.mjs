// Writes a man page (roff) for a vmgate command-line program from its own
// `--help` output, command by command, so the page cannot drift from --help:
// it is the same text, regenerated at every package build.
//
//   node deploy/package/help2man.mjs NAME VERSION DATE SCRIPT.js > NAME.1
//
// SCRIPT.js is the compiled CLI (run with this Node.js); every subcommand
// listed under "Commands:" is asked for its own --help, recursively.
import { execFileSync } from 'node:child_process';

const [name, version, date, script] = process.argv.slice(2);
if (script === undefined) {
  console.error('usage: help2man.mjs NAME VERSION DATE SCRIPT.js');
  process.exit(2);
}

/** Commander wraps at the terminal width, or 80 columns on a pipe: always a pipe here. */
function help(args) {
  return execFileSync(process.execPath, [script, ...args, '--help'], { encoding: 'utf8', env: { ...process.env, COLUMNS: '80' } });
}

/** The subcommand names listed under "Commands:", without `help`. */
function subcommands(text) {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l === 'Commands:');
  if (start < 0) return [];
  const names = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === '') break;
    const m = /^ {2}([a-z][a-z0-9-]*)/.exec(line);
    if (m && m[1] !== 'help') names.push(m[1]);
  }
  return names;
}

/** Text for roff's no-fill mode: backslashes, leading dots/quotes and minus signs escaped. */
function verbatim(text) {
  return text
    .replace(/\s+$/, '')
    .split('\n')
    .map((l) => l.replace(/\\/g, '\\e').replace(/-/g, '\\-').replace(/^([.'])/, '\\&$1'))
    .join('\n');
}

const top = help([]);
// The NAME line (whatis) is the description's first sentence.
const description = (top.split('\n\n')[1] ?? name).replace(/\s+/g, ' ').trim().split(/\.(?: |$)/)[0];
const out = [];
out.push(`.TH ${name.toUpperCase()} 1 "${date}" "${name} ${version}" "User Commands"`);
out.push('.SH NAME', `${name} \\- ${verbatim(description.replace(/\.$/, '').replace(/^./, (c) => c.toLowerCase()))}`);
out.push('.SH SYNOPSIS', `.B ${name}`, '[options] [command]');
out.push('.SH DESCRIPTION', 'The text below is the program\'s own', `.B \\-\\-help`, 'output.', '.PP', '.nf', verbatim(top), '.fi');

const sections = [];
function walk(path) {
  for (const sub of subcommands(help(path))) {
    const full = [...path, sub];
    sections.push('.SS "' + [name, ...full].join(' ') + '"', '.nf', verbatim(help(full)), '.fi');
    walk(full);
  }
}
walk([]);
if (sections.length > 0) out.push('.SH COMMANDS', ...sections);

const seeAlso = name === 'vmgate' ? 'vmgate\\-pki (1)' : 'vmgate (1)';
out.push(
  '.SH FILES',
  '.TP', '.I /etc/vmgate/vmgate.yaml', 'the gateway configuration read by the vmgate.service unit',
  '.TP', '.I /etc/vmgate/pki', 'the host certificate directory (QEMU tls\\-creds\\-x509 layout)',
  '.SH SEE ALSO',
  `.BR ${seeAlso.replace(' ', ' ')},`,
  '.BR systemctl (1);',
  'the guides in',
  '.IR /usr/share/doc/vmgate/ ,',
  'starting with',
  '.IR docs/install.md .',
);
process.stdout.write(out.join('\n') + '\n');
