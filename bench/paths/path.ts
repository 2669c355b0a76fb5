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

export interface PathSpec {
  /** Name in tables and JSON: direct, stunnel, vmgate, vmgate-w2 ... */
  name: string;
  kind: 'direct' | 'stunnel' | 'vmgate';
  /** vmgate only: the `workers` setting (1 = the setting left out). */
  workers?: number;
  /** Starts the path in front of a plain TCP target on 127.0.0.1:`targetPort`. */
  start(targetPort: number): Promise<RunningPath>;
}

export const directPath: PathSpec = {
  name: 'direct',
  kind: 'direct',
  start(targetPort: number): Promise<RunningPath> {
    return Promise.resolve({ port: targetPort, gateways: [], stop: () => Promise.resolve() });
  },
};
