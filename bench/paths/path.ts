/**
 * A path the bench pushes traffic through: nothing (direct loopback TCP), a
 * stunnel pair, or a vmgate pair. Each start is fresh processes, so that CPU
 * and peak memory belong to one measurement.
 */

/** One gateway process of a pair: A takes plain TCP and encrypts, B decrypts and connects the target. */
export interface GatewaySide {
  side: 'A' | 'B';
  pid: number;
}

export interface RunningPath {
  /** Where the sender (or the source QEMU) connects. */
  port: number;
  /** The gateway processes; none for the direct path. */
  gateways: GatewaySide[];
  stop(): Promise<void>;
}

/**
 * A path over a range of ports, as an evacuation needs (libvirt picks one
 * incoming port per migration): the source connects `host`:P to reach the
 * destination listening on 127.0.0.1:P, for every P of the range.
 */
export interface RunningRange {
  /** The address the sources connect, on the same port numbers as the targets. */
  host: string;
  gateways: GatewaySide[];
  stop(): Promise<void>;
}

/** The loopback address a gateway listens on for a port range (the targets hold the same ports on 127.0.0.1). */
export const RANGE_GATEWAY_HOST = '127.0.0.2';

export interface PathSpec {
  /** Name in tables and JSON: direct, stunnel, vmgate, vmgate-w2 ... */
  name: string;
  kind: 'direct' | 'stunnel' | 'vmgate';
  /** vmgate only: the `workers` setting (1 = the setting left out). */
  workers?: number;
  /** Starts the path in front of a plain TCP target on 127.0.0.1:`targetPort`. */
  start(targetPort: number): Promise<RunningPath>;
  /** Starts the path in front of plain TCP targets on 127.0.0.1:`first`..`first + count - 1`. */
  startRange(first: number, count: number): Promise<RunningRange>;
}

export const directPath: PathSpec = {
  name: 'direct',
  kind: 'direct',
  start(targetPort: number): Promise<RunningPath> {
    return Promise.resolve({ port: targetPort, gateways: [], stop: () => Promise.resolve() });
  },
  startRange(): Promise<RunningRange> {
    return Promise.resolve({ host: '127.0.0.1', gateways: [], stop: () => Promise.resolve() });
  },
};
