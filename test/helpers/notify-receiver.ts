import { spawn } from 'node:child_process';

/**
 * Stands in for systemd's $NOTIFY_SOCKET: a unix datagram socket whose
 * datagrams are collected as `KEY=VALUE` lines in arrival order. Node has no
 * unix datagram socket, so a few lines of Perl (perl-base is Essential in
 * Debian) bind it and print each datagram plus a newline (systemd-notify ends
 * its last line without one). Perl's recv() takes no ancillary data, so the
 * kernel closes the file descriptor systemd-notify sends with BARRIER=1,
 * which answers the barrier as systemd does (socat would keep it open, and
 * systemd-notify would wait 5 s for it).
 */
const RECEIVER = `
use Socket;
$| = 1;
socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
bind($s, pack_sockaddr_un($ARGV[0])) or die "bind $ARGV[0]: $!";
print STDERR "listening\n";
while (defined(recv($s, my $m, 65536, 0))) { print "$m\n" }
`;

export interface NotifyReceiver {
  readonly path: string;
  /** Every line received so far, in order. */
  lines(): string[];
  /** Resolves with the index of the first line equal to `line` at or after `from`. */
  waitFor(line: string, from?: number, timeoutMs?: number): Promise<number>;
  close(): Promise<void>;
}

export async function startNotifyReceiver(path: string): Promise<NotifyReceiver> {
  const child = spawn('perl', ['-e', RECEIVER, path], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const waiters = new Set<() => void>();
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    text += chunk;
    for (const w of [...waiters]) w();
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  // Bound once it says so on stderr.
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      err += chunk;
      if (err.includes('listening\n')) resolve();
    });
    child.once('error', reject);
    void exited.then(() => reject(new Error(`the notify receiver exited before binding ${path}: ${err}`)));
  });
  const lines = (): string[] => text.split('\n').filter((l) => l !== '');
  return {
    path,
    lines,
    waitFor: (line, from = 0, timeoutMs = 10_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${line} on the notify socket after line ${from}; received:\n${lines().join('\n')}`));
        }, timeoutMs);
        const check = (): void => {
          const i = lines().indexOf(line, from);
          if (i < 0) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(i);
        };
        waiters.add(check);
        check();
      }),
    close: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
