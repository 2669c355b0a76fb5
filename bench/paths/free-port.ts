import { createServer } from 'node:net';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago, for programs that
 * cannot listen on port 0 and report the port (stunnel). The tiny race with
 * other programs picking the same port is acceptable on a bench machine.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether `host:port` can be listened on right now. */
function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/**
 * `count` consecutive ports free on every one of `hosts`, as libvirt's
 * migration range would be: the first port. Picked below Linux's ephemeral
 * range (32768 and up) so outgoing connections do not take them meanwhile.
 */
export async function freePortRange(count: number, hosts: readonly string[], tries = 50): Promise<number> {
  for (let i = 0; i < tries; i++) {
    const first = 20_000 + Math.floor(Math.random() * (12_000 - count));
    let free = true;
    for (let p = first; p < first + count && free; p++) {
      for (const host of hosts) if (!(await canListen(host, p))) free = false;
    }
    if (free) return first;
  }
  throw new Error(`no ${count} consecutive free ports on ${hosts.join(', ')} after ${tries} tries`);
}
