import type { HostPort, LocalPorts } from './endpoint.js';

/** A validated config: every path absolute, every address parsed. */
export interface Config {
  file: string;
  name: string;
  tls: TlsFiles;
  server: ServerConfig | undefined;
  routes: RouteConfig[];
  channel: ChannelConfig;
  control: { socket: string; group: string | number | undefined } | undefined;
  /** Prometheus metrics and health endpoints; undefined when off. */
  metrics: { listen: HostPort } | undefined;
  /** Worker processes; 1 = the single-process gateway. */
  workers: number;
  log: { level: string };
}

export interface TlsFiles {
  ca: string;
  /** Identity presented when accepting (server role). */
  cert: string;
  key: string;
  /** Identity presented when dialling a peer (client role). */
  clientCert: string;
  clientKey: string;
  /** Certificate revocation list; undefined when none is configured or present. */
  crl: string | undefined;
  /** A group that may read the keys (0640); absent: keys must be 0600. */
  keyGroup?: string | number;
  /** The passphrase of encrypted keys; absent when they are not encrypted. */
  keyPassphraseFile?: string;
}

export interface AllowRule {
  peer: string;
  user: string;
}

export interface TargetConfig {
  name: string;
  /** A range: the OPEN names the port (the one the source route accepted on). */
  connect: LocalPorts;
  allow: AllowRule[];
}

export interface ServerConfig {
  listen: HostPort;
  credentials: string;
  targets: Map<string, TargetConfig>;
  handshakeTimeoutMs: number;
  maxHandshakes: number;
  /** Of maxHandshakes, how many one remote address may hold, so one flooding host cannot starve the others. */
  maxHandshakesPerAddress: number;
  maxChannels: number;
  channelOrderTimeoutMs: number;
}

export interface RouteConfig {
  name: string;
  /** A range: one listener per port, one migration session per port at a time. */
  listen: LocalPorts;
  /**
   * The peer gateway's addresses (1 to 8), the preferred first: each is a
   * path to the same gateway (e.g. a migration network, then management).
   */
  peers: HostPort[];
  peerName: string;
  target: string;
  user: string;
  passwordFile: string;
  connectTimeoutMs: number;
  /** How often the peer is probed (route/peer-probe.ts); 0: never. */
  probeIntervalMs: number;
  /** Group allowed to connect to a unix `listen` socket (mode 0660); undefined: 0600. */
  socketGroup: string | number | undefined;
}

/** How channels behave in their data phase (docs/configuration.md, `channel`). */
export interface ChannelConfig {
  closeGraceMs: number;
  stallTimeoutMs: number;
  shutdownGraceMs: number;
  /** Silence that loses a link (0: only errors and closes do). */
  linkTimeoutMs: number;
  /** How long a lost link may take to come back (0: no healing). */
  healWindowMs: number;
  replayBufferBytes: number;
  replayBudgetBytes: number;
}
