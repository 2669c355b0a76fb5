import { z } from 'zod';
import { NAME_RULE } from './config-problems.js';

/**
 * The shape of a gateway's YAML config file, as the operator writes it.
 * Semantic checks that need more than a shape (addresses, loopback rules,
 * cross references) live in load.ts, and every problem names its key.
 */

// Descriptions say what a key takes, in the words config errors use (config-problems.ts).
const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/).describe(`a name of ${NAME_RULE}`);
const path = z.string().min(1).describe('a file path');
const ms = (min: number, max: number) => z.number().int().min(min).max(max).describe(`a whole number of milliseconds from ${min} to ${max}`);
const bytes = (min: number, max: number) => z.number().int().min(min).max(max).describe(`a whole number of bytes from ${min} to ${max}`);
const group = z.union([z.string().min(1), z.number().int().min(0)]).describe('a group name, or a group number (0 or more)');

/** The most paths (peer addresses) one route may have. */
const MAX_PEER_PATHS = 8;
const hostPort = z.string().describe('HOST:PORT (or [IPv6]:PORT) of the peer gateway');

const allowRuleSchema = z.object({
  peer: z.string().min(1).describe('a certificate name (DNS SAN or CN), or "*" for any verified peer'),
  user: z.string().min(1).describe('a SASL user name, or "*" for any authenticated user'),
}).strict();

const targetSchema = z.object({
  connect: z.string().describe('tcp:HOST:PORT or unix:/path'),
  allow: z.array(allowRuleSchema).default([]),
  unsafeAllowNonLoopback: z.boolean().default(false),
}).strict();

const serverSchema = z.object({
  listen: z.string().describe('HOST:PORT (or [IPv6]:PORT)'),
  credentials: path,
  targets: z.record(name, targetSchema),
  handshakeTimeoutMs: ms(100, 120_000).default(10_000),
  maxHandshakes: z.number().int().min(1).max(10_000).default(256),
  maxHandshakesPerAddress: z.number().int().min(1).max(10_000).default(64),
  maxChannels: z.number().int().min(1).max(100_000).default(512),
  channelOrderTimeoutMs: ms(100, 600_000).default(30_000),
}).strict();

const routeSchema = z.object({
  listen: z.string().describe('tcp:HOST:PORT or unix:/path'),
  /**
   * The peer gateway's address, or a list of 1 to 8 (its paths), the
   * preferred first: a second network for when the first one fails.
   */
  peer: z.union([
    hostPort,
    z.array(hostPort).min(1).max(MAX_PEER_PATHS).describe(`a list of 1 to ${MAX_PEER_PATHS} HOST:PORT addresses of the peer gateway, the preferred first`),
  ]).describe(`HOST:PORT (or [IPv6]:PORT) of the peer gateway, or a list of 1 to ${MAX_PEER_PATHS} of them, the preferred first`),
  peerName: z.string().min(1).describe("the name the peer's certificate carries (DNS SAN or CN)"),
  target: name,
  user: z.string().min(1).max(255).describe('a SASL user name of 1 to 255 bytes'),
  passwordFile: path,
  unsafeAllowNonLoopback: z.boolean().default(false),
  connectTimeoutMs: ms(100, 120_000).default(10_000),
  /**
   * How often to check that the peer would open a channel (TLS, SASL, target
   * allowed), which also keeps the path warm; 0: never.
   */
  probeIntervalMs: ms(0, 3_600_000)
    .refine((v) => v === 0 || v >= 1_000)
    .describe('0 (never probe), or a whole number of milliseconds from 1000 to 3600000')
    .default(30_000),
  /** For a unix `listen`: the group QEMU runs in may connect (socket mode 0660); otherwise 0600. */
  socketGroup: group.optional(),
}).strict();

const tlsSchema = z.object({
  dir: path.optional(),
  ca: path.optional(),
  cert: path.optional(),
  key: path.optional(),
  clientCert: path.optional(),
  clientKey: path.optional(),
  crl: path.optional(),
  /**
   * A group (name or number) that may read the private keys besides their
   * owner (mode 0640, owned by that group): a PKI directory shared with QEMU.
   */
  keyGroup: z.union([z.string().min(1), z.number().int().min(0)]).optional(),
  /** A 0600 file holding the passphrase of encrypted private keys. */
  keyPassphraseFile: path.optional(),
}).strict();

export const configSchema = z.object({
  name: name.optional(),
  tls: tlsSchema,
  server: serverSchema.optional(),
  routes: z.record(name, routeSchema).default({}),
  channel: z.object({
    /** How long a closing channel may take to flush before it is destroyed. */
    closeGraceMs: ms(0, 600_000).default(5_000),
    /** A session that moves no byte for this long is ended with cause `stalled`; 0 disables. */
    stallTimeoutMs: ms(0, 3_600_000).default(60_000),
    /** On SIGTERM, how long migrations in flight may run on before they are ended with cause `shutdown`. */
    shutdownGraceMs: ms(0, 3_600_000).default(30_000),
    /** Silence from the peer gateway for this long loses a channel's link, which then heals; 0: only errors and closes do. */
    linkTimeoutMs: ms(0, 3_600_000)
      .refine((v) => v === 0 || v >= 2_000)
      .describe('0 (errors and closes only), or a whole number of milliseconds from 2000 to 3600000')
      .default(10_000),
    /**
     * How long a channel whose link was lost waits for it to come back
     * (docs/configuration.md says why 16 minutes); 0: no healing, a lost link ends the channel.
     */
    healWindowMs: ms(0, 86_400_000).default(960_000),
    /** Bytes one channel keeps for resending until the peer acknowledges them: its send window. */
    replayBufferBytes: bytes(1 << 20, 1 << 30).default(16 << 20),
    /** Bytes all channels of this gateway keep for resending, together. */
    replayBudgetBytes: bytes(1 << 20, 64 * 2 ** 30).default(512 << 20),
  }).strict().default({
    closeGraceMs: 5_000,
    stallTimeoutMs: 60_000,
    shutdownGraceMs: 30_000,
    linkTimeoutMs: 10_000,
    healWindowMs: 960_000,
    replayBufferBytes: 16 << 20,
    replayBudgetBytes: 512 << 20,
  }),
  control: z.object({
    /** Unix socket for `vmgate sessions|cancel|status`; never a network address. */
    socket: path,
    /** Group (name or number) allowed to use it besides root; socket mode 0660 then, else 0600. */
    group: group.optional(),
  }).strict().optional(),
  metrics: z.object({
    /** Prometheus listener HOST:PORT for /metrics, /healthz and /readyz; loopback unless unsafeAllowNonLoopback. */
    listen: z.string().describe('HOST:PORT (or [IPv6]:PORT)'),
    unsafeAllowNonLoopback: z.boolean().default(false),
  }).strict().optional(),
  /**
   * Worker processes that carry channels (src/workers). 1: everything runs in
   * one process, as without the key. More: the primary process accepts
   * every connection and spreads them over this many workers.
   */
  workers: z.number().int().min(1).max(64).describe('a whole number of worker processes from 1 to 64').default(1),
  log: z.object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
  }).strict().default({ level: 'info' }),
}).strict();

export type RawConfig = z.infer<typeof configSchema>;
