/**
 * Which process holds a TCP connection: the proof that a gateway with
 * workers really carried a session's channels in different processes.
 * Matches /proc/net/tcp entries (by port) to the socket inodes in
 * /proc/<pid>/fd of the gateway's process tree.
 */
import { readFile, readdir, readlink } from 'node:fs/promises';
import { processTree } from './proc-usage.js';

interface TcpEntry {
  localPort: number;
  remotePort: number;
  inode: string;
}

async function tcpTable(): Promise<TcpEntry[]> {
  const out: TcpEntry[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const port = (addr: string | undefined): number => parseInt(addr?.slice(addr.lastIndexOf(':') + 1) ?? '', 16);
      out.push({ localPort: port(f[1]), remotePort: port(f[2]), inode: f[9] ?? '' });
    }
  }
  return out;
}

/**
 * For each connection, given as [localPort, remotePort] as the gateway sees
 * it, the pid in the tree under `rootPid` that holds it (undefined if none
 * does). Read while the connections are open.
 */
export async function connectionOwners(rootPid: number, connections: ReadonlyArray<readonly [number, number]>): Promise<Array<number | undefined>> {
  const entries = await tcpTable();
  const inodeOwner = new Map<string, number>();
  for (const pid of await processTree(rootPid)) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m?.[1] !== undefined) inodeOwner.set(m[1], pid);
    }
  }
  return connections.map(([local, remote]) => {
    const e = entries.find((x) => x.localPort === local && x.remotePort === remote && inodeOwner.has(x.inode));
    return e === undefined ? undefined : inodeOwner.get(e.inode);
  });
}
