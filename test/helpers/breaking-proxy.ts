/**
 * A loopback TCP proxy that breaks the connections it carries, to put between
 * two gateways in a test (route `peer:` -> proxy -> server `listen`):
 *
 *   const proxy = await startBreakingProxy({ target: { host: '127.0.0.1', port: serverPort } });
 *   // route peer: proxy.address
 *   proxy.resetAll();                                              // RST to both ends of every connection
 *   const cut = proxy.breakAt({ direction: 'toServer', offset: 5_000_000 }); // RST once a connection has forwarded exactly that many bytes
 *   await cut;                                                     // { connection, direction, offset }
 *   proxy.blackHole(); ... proxy.restore();                       // an outage: silence, nothing closed
 *   await proxy.refuse(); ... await proxy.restore();              // new connections get ECONNREFUSED
 *   proxy.stats(); proxy.connections();                            // counts, for waitFor()
 *   await proxy.close();
 *
 * Directions: `toServer` is what the proxy reads from the connecting side (the
 * client, the route's gateway) and writes to the target; `toClient` the reverse.
 *
 * What each fault looks like on the wire, and where it differs from a real
 * network (so a test claims no more than it shows):
 * - A reset (resetAll, breakAt) closes both of the proxy's sockets with
 *   SO_LINGER 0 (`socket.resetAndDestroy()`): each end gets a RST and sees
 *   ECONNRESET. A break forwards exactly `offset` bytes in its direction and
 *   waits until the kernel has them before the RST; the receiving end reads
 *   all of them unless its own receive buffer was full at that moment (the
 *   kernel drops what it has not delivered when it sends a RST, as on any
 *   reset connection).
 * - A black hole stops reading both sockets of every connection, and holds
 *   every new connection without reading it or connecting it to the target.
 *   No FIN or RST passes in either direction, and an end that closes or
 *   resets its side during the outage is not told to the other end until
 *   `restore()`. Unlike a cut cable, the proxy's kernel still ACKs what fits
 *   in its socket buffers (a few MiB), and a new connection's TCP handshake
 *   completes (the client sees silence after connecting, not a connect that
 *   hangs). On `restore()` everything held flows again: held connections are
 *   connected to the target, and a connection whose one end went away during
 *   the outage is reset at the other end, as the first segment after a real
 *   outage would find.
 * - Refusing closes the listening socket (connections it carries go on):
 *   a connect gets ECONNREFUSED until `restore()` listens on the same port again.
 */
import { readFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export type Direction = 'toServer' | 'toClient';

export interface BreakingProxyOptions {
  /** Where every accepted connection is forwarded: the server gateway's listen address. */
  readonly target: { readonly host: string; readonly port: number };
  /** Listen address. Default 127.0.0.1. */
  readonly host?: string;
  /**
   * Listen port. Default: a free port below the kernel's ephemeral range, so
   * that no outgoing connection can take it while `refuse()` has it closed.
   */
  readonly port?: number;
}

export interface BreakRule {
  readonly direction: Direction;
  /** Bytes forwarded in `direction` on one connection, counted from its first byte, before the reset. */
  readonly offset: number;
  /** Only this connection (an id from `connections()`); default: the first connection to reach `offset`. */
  readonly connection?: number;
}

/** A break that happened: on which connection, after how many bytes in which direction. */
export interface BreakEvent {
  readonly connection: number;
  readonly direction: Direction;
  readonly offset: number;
}

export interface CarriedConnection {
  /** 1, 2, ... in the order the proxy accepted them. */
  readonly id: number;
  /** Bytes forwarded client -> target. */
  readonly toServer: number;
  /** Bytes forwarded target -> client. */
  readonly toClient: number;
  /** `held`: accepted during a black hole, not yet connected to the target. */
  readonly state: 'held' | 'open' | 'closed' | 'reset';
}

export interface BreakingProxyStats {
  /** Connections accepted since start (held ones included). */
  readonly accepted: number;
  /** Connections carried now, held ones included. */
  readonly open: number;
  /** Connections accepted during a black hole and still held. */
  readonly held: number;
  /** Connections the proxy ended with a RST (faults, and a target that refused or reset). */
  readonly resets: number;
  /** Bytes forwarded client -> target over all connections. */
  readonly toServer: number;
  /** Bytes forwarded target -> client over all connections. */
  readonly toClient: number;
}

export interface BreakingProxy {
  readonly host: string;
  readonly port: number;
  /** `host:port`, for a route's `peer:`. */
  readonly address: string;
  /** `forwarding`, or the fault in force. */
  readonly mode: 'forwarding' | 'black-hole' | 'refusing';
  stats(): BreakingProxyStats;
  connections(): CarriedConnection[];
  /** Resets both ends of every connection carried now (held ones too); returns how many. */
  resetAll(): number;
  /**
   * Arms a one-shot break; resolves when it happened. Several may be armed at
   * once; each fires once. A connection already past `offset` is not broken by it.
   */
  breakAt(rule: BreakRule): Promise<BreakEvent>;
  /** Starts an outage (see the file comment). */
  blackHole(): void;
  /** Stops accepting: connects get ECONNREFUSED; carried connections go on. */
  refuse(): Promise<void>;
  /** Ends a black hole or a refusal: forwarding and accepting as before. */
  restore(): Promise<void>;
  /** Destroys every connection and stops listening. */
  close(): Promise<void>;
}

/** A break waiting for its byte count. */
interface ArmedBreak extends BreakRule {
  readonly fired: (e: BreakEvent) => void;
}

/** One carried connection: the accepted client socket and the proxy's socket to the target. */
class Carried {
  server: Socket | undefined;
  readonly count: Record<Direction, number> = { toServer: 0, toClient: 0 };
  state: CarriedConnection['state'] = 'open';
  /** Which directions wait for the writer to drain. */
  readonly draining: Record<Direction, boolean> = { toServer: false, toClient: false };
  /** An end that errored or closed during a black hole: told to the other end on restore. */
  lostDuringOutage = false;
  /** Ends that sent FIN. */
  ended = 0;
  /** A break is writing its last bytes: nothing more is forwarded, the RST follows. */
  cutting = false;

  constructor(
    readonly id: number,
    readonly client: Socket,
  ) {}

  get carried(): boolean {
    return this.state === 'open' || this.state === 'held';
  }
}

const sockets = (c: Carried): Socket[] => (c.server === undefined ? [c.client] : [c.client, c.server]);

/** Below 32768, where Linux's default ephemeral range starts; the proxy listens here so `refuse()` can reopen it. */
const PORT_FLOOR = 20_000;
const PORT_SPAN = 12_000;

/**
 * Bytes the kernel holds for `s` that the other end has not acknowledged
 * (`tx_queue` in /proc/net/tcp{,6}), or undefined when the socket is gone.
 * Node does not expose SIOCOUTQ; this is the same number.
 */
async function unacked(s: Socket): Promise<number | undefined> {
  const { localPort, remotePort } = s;
  if (localPort === undefined || remotePort === undefined) return undefined;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      const port = (col: string | undefined): number => parseInt(col?.split(':')[1] ?? '', 16);
      if (port(cols[1]) === localPort && port(cols[2]) === remotePort) return parseInt(cols[4]?.split(':')[0] ?? '', 16);
    }
  }
  return undefined;
}

/** How long a break waits for its last bytes to be acknowledged before it resets anyway. */
const DELIVERY_WAIT_MS = 5_000;

/**
 * Resolves once the other end's kernel has acknowledged everything written to
 * `s` (a RST drops what it has not), or after DELIVERY_WAIT_MS when the other
 * end does not read (its receive window is shut). This is the one poll in the
 * proxy: the kernel tells of no such event.
 */
async function delivered(s: Socket): Promise<void> {
  const deadline = Date.now() + DELIVERY_WAIT_MS;
  for (;;) {
    const left = await unacked(s);
    if (left === undefined || left === 0 || Date.now() >= deadline) return;
    await sleep(2);
  }
}

async function listenOn(server: Server, host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export async function startBreakingProxy(o: BreakingProxyOptions): Promise<BreakingProxy> {
  const host = o.host ?? '127.0.0.1';
  const all: Carried[] = [];
  const armed: ArmedBreak[] = [];
  let mode: BreakingProxy['mode'] = 'forwarding';
  let nextId = 1;
  let resets = 0;
  const total: Record<Direction, number> = { toServer: 0, toClient: 0 };

  const reset = (c: Carried): void => {
    if (!c.carried) return;
    c.state = 'reset';
    resets += 1;
    for (const s of sockets(c)) {
      if (s.connecting) s.destroy();
      else s.resetAndDestroy();
    }
  };

  const resumeIfFree = (c: Carried, dir: Direction): void => {
    const from = dir === 'toServer' ? c.client : c.server;
    if (from !== undefined && mode !== 'black-hole' && c.state === 'open' && !c.draining[dir]) from.resume();
  };

  /** The first armed break that this chunk reaches on this connection, with how many of its bytes go before it. */
  const breakIn = (c: Carried, dir: Direction, len: number): { rule: ArmedBreak; head: number } | undefined => {
    const at = c.count[dir];
    const rule = armed.find((r) => r.direction === dir && (r.connection === undefined || r.connection === c.id) && at <= r.offset && at + len >= r.offset);
    return rule === undefined ? undefined : { rule, head: rule.offset - at };
  };

  const forward = (c: Carried, dir: Direction, from: Socket, to: Socket): void => {
    from.on('data', (chunk: Buffer) => {
      if (c.state !== 'open' || c.cutting) return;
      const cut = breakIn(c, dir, chunk.length);
      const out = cut === undefined ? chunk : chunk.subarray(0, cut.head);
      c.count[dir] += out.length;
      total[dir] += out.length;
      if (cut !== undefined) {
        armed.splice(armed.indexOf(cut.rule), 1);
        from.pause();
        c.cutting = true;
        const fire = (): void => {
          reset(c);
          cut.rule.fired({ connection: c.id, direction: dir, offset: cut.rule.offset });
        };
        // The write callback runs once the kernel has the bytes, and the RST
        // may go once the other end has them: a RST drops what is still queued.
        to.write(out, () => void delivered(to).then(fire));
        return;
      }
      if (!to.write(out)) {
        c.draining[dir] = true;
        from.pause();
        to.once('drain', () => {
          c.draining[dir] = false;
          resumeIfFree(c, dir);
        });
      }
    });
    from.on('end', () => {
      if (c.state !== 'open' || c.cutting) return;
      to.end();
      c.ended += 1;
      if (c.ended === 2) c.state = 'closed';
    });
  };

  /** An end went away on its own (error, or closed without FIN): the other end gets a RST, now or after an outage. */
  const lost = (c: Carried): void => {
    if (!c.carried) return;
    if (mode === 'black-hole') c.lostDuringOutage = true;
    else reset(c);
  };

  const toTarget = (c: Carried): void => {
    const server = connect({ host: o.target.host, port: o.target.port, allowHalfOpen: true });
    c.server = server;
    c.state = 'open';
    server.on('error', () => lost(c));
    server.on('close', () => lost(c));
    server.once('connect', () => {
      forward(c, 'toServer', c.client, server);
      forward(c, 'toClient', server, c.client);
      if (mode === 'black-hole') {
        c.client.pause();
        server.pause();
      } else {
        c.client.resume();
      }
    });
  };

  const accept = (client: Socket): void => {
    const c = new Carried(nextId, client);
    nextId += 1;
    all.push(c);
    client.on('error', () => lost(c));
    client.on('close', () => lost(c));
    if (mode === 'black-hole') c.state = 'held';
    else toTarget(c);
  };

  let server: Server | undefined;
  const listen = async (port: number): Promise<void> => {
    const s = createServer({ allowHalfOpen: true, pauseOnConnect: true }, accept);
    await listenOn(s, host, port);
    server = s;
  };
  let port = o.port ?? 0;
  if (o.port !== undefined) {
    await listen(o.port);
  } else {
    for (let tries = 0; server === undefined; tries += 1) {
      port = PORT_FLOOR + Math.floor(Math.random() * PORT_SPAN);
      try {
        await listen(port);
      } catch (e: unknown) {
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || tries >= 50) throw e;
      }
    }
  }
  const stopListening = (): void => {
    server?.close();
    server = undefined;
  };

  return {
    host,
    port,
    address: `${host}:${port}`,
    get mode() {
      return mode;
    },
    stats: () => ({
      accepted: all.length,
      open: all.filter((c) => c.carried).length,
      held: all.filter((c) => c.state === 'held').length,
      resets,
      toServer: total.toServer,
      toClient: total.toClient,
    }),
    connections: () => all.map((c) => ({ id: c.id, toServer: c.count.toServer, toClient: c.count.toClient, state: c.state })),
    resetAll: () => {
      const live = all.filter((c) => c.carried);
      for (const c of live) reset(c);
      return live.length;
    },
    breakAt: (rule) => {
      if (!Number.isSafeInteger(rule.offset) || rule.offset < 0) throw new RangeError(`offset must be a byte count, got ${rule.offset}`);
      return new Promise<BreakEvent>((fired) => armed.push({ ...rule, fired }));
    },
    blackHole: () => {
      if (mode === 'refusing') throw new Error('restore() the refusal before starting a black hole');
      mode = 'black-hole';
      for (const c of all) if (c.state === 'open') for (const s of sockets(c)) s.pause();
    },
    refuse: () => {
      if (mode === 'black-hole') throw new Error('restore() the black hole before refusing');
      mode = 'refusing';
      stopListening();
      return Promise.resolve();
    },
    restore: async () => {
      const was = mode;
      mode = 'forwarding';
      if (was === 'refusing') await listen(port);
      if (was !== 'black-hole') return;
      for (const c of all) {
        if (c.state === 'held') {
          if (c.lostDuringOutage || c.client.destroyed) c.state = 'closed';
          else toTarget(c);
        } else if (c.state === 'open') {
          if (c.lostDuringOutage) reset(c);
          else (['toServer', 'toClient'] as const).forEach((dir) => resumeIfFree(c, dir));
        }
      }
    },
    close: async () => {
      mode = 'forwarding';
      for (const c of all) for (const s of sockets(c)) s.destroy();
      for (const c of all) if (c.carried) c.state = 'closed';
      const s = server;
      server = undefined;
      if (s !== undefined) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}
