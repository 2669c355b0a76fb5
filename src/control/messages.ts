/**
 * Typed control messages on top of frames (docs/protocol.md §2). Every body
 * is checked by a strict zod schema: an unknown type is `protocol-violation`,
 * a body that breaks a constraint is `frame-malformed` naming the field.
 * Ordering (which message may come when) is the handshake's job, not this
 * file's.
 */
import { z } from 'zod';
import { type ErrorCode, isErrorCode, VmgateError } from '../errors.js';
import { encodeFrame, type Frame } from './frame-codec.js';

/**
 * The control protocol versions this build speaks (docs/protocol.md §1):
 * HELLO offers them, WELCOME chooses the highest both speak. Version 2 is
 * version 1 plus healing: the data phase in records (src/relay/records.ts),
 * OPENED carrying the channel's secret, and CONTINUE.
 */
export const PLAIN_VERSION = 1;
export const HEALING_VERSION = 2;

export const MessageType = {
  HELLO: 1,
  WELCOME: 2,
  AUTH: 3,
  AUTH_OK: 4,
  OPEN: 5,
  OPENED: 6,
  ERROR: 7,
  ABORT: 8,
  ABORTED: 9,
  REPORT: 10,
  REPORTED: 11,
  PROBE: 12,
  PROBED: 13,
  CONTINUE: 14,
  CONTINUED: 15,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export interface HelloMessage { type: typeof MessageType.HELLO; versions: number[] }
/** `instance` (version 2): the server gateway's id, new at each start: a channel opened under another instance is gone. */
export interface WelcomeMessage { type: typeof MessageType.WELCOME; version: number; mechanisms: string[]; instance?: string | undefined }
/** `response` is the decoded SASL initial response. */
export interface AuthMessage { type: typeof MessageType.AUTH; mechanism: string; response: Buffer }
export interface AuthOkMessage { type: typeof MessageType.AUTH_OK; user: string }
/** `port`: the local port the source accepted the channel on, for a target that is a port range. */
export interface OpenMessage { type: typeof MessageType.OPEN; target: string; session: string; channel: number; port?: number | undefined }
/** `secret` (version 2): the channel's secret, which a CONTINUE must show; only the two gateways know it. */
export interface OpenedMessage { type: typeof MessageType.OPENED; secret?: string | undefined }
export interface ErrorMessage { type: typeof MessageType.ERROR; code: ErrorCode; message: string }
/** The client gateway ended these channels of its session for `code`: end yours the same way. */
export interface AbortMessage { type: typeof MessageType.ABORT; session: string; channels: number[]; code: ErrorCode; message: string }
export interface AbortedMessage { type: typeof MessageType.ABORTED; count: number }
/** How did channel `channel` of `session` end on your side? */
export interface ReportMessage { type: typeof MessageType.REPORT; session: string; channel: number }
/** `code` is `ok` for a normal end. */
export interface ReportedMessage { type: typeof MessageType.REPORTED; code: ErrorCode | 'ok'; message: string; bytesIn: number; bytesOut: number }
/** Would you OPEN `target` for me? Answered without connecting it: a connection to a target IS a migration stream. */
/** `ports`: the source route's port range, which the target's range must hold. */
export interface ProbeMessage { type: typeof MessageType.PROBE; target: string; ports?: PortSpan | undefined }
/** A span of TCP ports, first to last inclusive. */
export interface PortSpan { first: number; last: number }
export interface ProbedMessage { type: typeof MessageType.PROBED }
/**
 * Version 2, from the source gateway after its connection to the channel was
 * lost: go on with channel `channel` of `session`. `received`: payload bytes
 * it has read from you; `ended`: your END among them.
 */
export interface ContinueMessage { type: typeof MessageType.CONTINUE; session: string; channel: number; secret: string; received: number; ended: boolean }
/** The channel goes on over this connection: what the server has read, and the secret the next CONTINUE must show. */
export interface ContinuedMessage { type: typeof MessageType.CONTINUED; received: number; ended: boolean; secret: string }

export type Message =
  | HelloMessage
  | WelcomeMessage
  | AuthMessage
  | AuthOkMessage
  | OpenMessage
  | OpenedMessage
  | ErrorMessage
  | AbortMessage
  | AbortedMessage
  | ReportMessage
  | ReportedMessage
  | ProbeMessage
  | ProbedMessage
  | ContinueMessage
  | ContinuedMessage;

export const MESSAGE_NAMES: Readonly<Record<MessageType, string>> = {
  1: 'HELLO',
  2: 'WELCOME',
  3: 'AUTH',
  4: 'AUTH_OK',
  5: 'OPEN',
  6: 'OPENED',
  7: 'ERROR',
  8: 'ABORT',
  9: 'ABORTED',
  10: 'REPORT',
  11: 'REPORTED',
  12: 'PROBE',
  13: 'PROBED',
  14: 'CONTINUE',
  15: 'CONTINUED',
};

// ---- field constraints (exported so config validation can reuse them) ----

const MAX_TARGET_LENGTH = 64;
const TARGET_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const SESSION_PATTERN = /^[0-9a-f]{32}$/;
const MAX_CHANNEL = 1023;
const MAX_ERROR_MESSAGE_LENGTH = 512;
const MAX_AUTH_RESPONSE_LENGTH = 4096;
/** RFC 4422 §3.1 mechanism names: 1..20 of A-Z 0-9 - _. */
const MECHANISM_PATTERN = /^[A-Z0-9_-]{1,20}$/;

/** A target name that cannot be read as a path, a host:port or a dotfile. */
function isValidTarget(name: string): boolean {
  return name.length >= 1 && name.length <= MAX_TARGET_LENGTH && TARGET_PATTERN.test(name) && !name.includes('..');
}

/** Canonical RFC 4648 base64 only: no whitespace, no URL alphabet, correct padding, zero pad bits. */
function isStrictBase64(s: string): boolean {
  return s.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(s) && Buffer.from(s, 'base64').toString('base64') === s;
}

const version = z.number().int('must be an integer').positive('must be positive');
const mechanism = z.string().regex(MECHANISM_PATTERN, 'must be 1..20 characters of A-Z 0-9 - _');

const session = z.string().regex(SESSION_PATTERN, 'must be exactly 32 lowercase hex digits');
const target = z.string().refine(isValidTarget, `must be 1..${MAX_TARGET_LENGTH} characters of A-Z a-z 0-9 . _ -, start with a letter or digit and not contain ".."`);
const channel = z.number().int('must be an integer').min(0, `must be 0..${MAX_CHANNEL}`).max(MAX_CHANNEL, `must be 0..${MAX_CHANNEL}`);
const port = z.number().int('must be an integer').min(1024, 'must be 1024..65535').max(65535, 'must be 1024..65535');
const errorText = z.string().max(MAX_ERROR_MESSAGE_LENGTH, `must be at most ${MAX_ERROR_MESSAGE_LENGTH} characters`);
/** Shape-checked even when unknown, so a newer peer's code can be logged safely; unknown maps to `internal`. */
const peerCode = z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'must be a lowercase error code of at most 64 characters');
/** 32 random bytes, canonical base64. */
const secret = z.string().max(44).refine((s) => isStrictBase64(s) && Buffer.from(s, 'base64').length === 32, 'must be 32 bytes in canonical base64');
const instance = z.string().regex(/^[0-9a-f]{32}$/, 'must be exactly 32 lowercase hex digits');
const byteCount = z.number().int('must be an integer').min(0, 'must be >= 0').max(Number.MAX_SAFE_INTEGER);
function knownCode(code: string, message: string): { code: ErrorCode; message: string } {
  return isErrorCode(code) ? { code, message } : { code: 'internal', message: `peer error code "${code}": ${message}` };
}

const schemas = {
  [MessageType.HELLO]: z.strictObject({
    versions: z.array(version).min(1, 'must list 1..16 versions').max(16, 'must list 1..16 versions'),
  }),
  [MessageType.WELCOME]: z.strictObject({
    version,
    mechanisms: z.array(mechanism).min(1, 'must list 1..8 mechanisms').max(8, 'must list 1..8 mechanisms'),
    instance: instance.optional(),
  }),
  [MessageType.AUTH]: z.strictObject({
    mechanism,
    response: z
      .string()
      .max(MAX_AUTH_RESPONSE_LENGTH, `must be at most ${MAX_AUTH_RESPONSE_LENGTH} characters`)
      .refine(isStrictBase64, 'must be canonical base64')
      .transform((s) => Buffer.from(s, 'base64')),
  }),
  [MessageType.AUTH_OK]: z.strictObject({
    user: z.string().min(1, 'must not be empty').max(255, 'must be at most 255 characters'),
  }),
  [MessageType.OPEN]: z.strictObject({
    target,
    session,
    channel,
    port: port.optional(),
  }),
  [MessageType.OPENED]: z.strictObject({ secret: secret.optional() }),
  [MessageType.ERROR]: z
    .strictObject({ code: peerCode, message: errorText })
    .transform(({ code, message }) => knownCode(code, message)),
  [MessageType.ABORT]: z
    .strictObject({
      session,
      channels: z.array(channel).min(1, `must list 1..${MAX_CHANNEL + 1} channels`).max(MAX_CHANNEL + 1, `must list 1..${MAX_CHANNEL + 1} channels`),
      code: peerCode,
      message: errorText,
    })
    .transform(({ code, message, ...rest }) => ({ ...rest, ...knownCode(code, message) })),
  [MessageType.ABORTED]: z.strictObject({ count: z.number().int().min(0).max(MAX_CHANNEL + 1) }),
  [MessageType.REPORT]: z.strictObject({ session, channel }),
  [MessageType.REPORTED]: z
    .strictObject({ code: peerCode, message: errorText, bytesIn: byteCount, bytesOut: byteCount })
    .transform(({ code, message, ...rest }) => ({ ...rest, ...(code === 'ok' ? { code: 'ok' as const, message } : knownCode(code, message)) })),
  [MessageType.PROBE]: z.strictObject({
    target,
    ports: z.strictObject({ first: port, last: port }).refine((p) => p.first <= p.last, 'first must not be above last').optional(),
  }),
  [MessageType.PROBED]: z.strictObject({}),
  [MessageType.CONTINUE]: z.strictObject({ session, channel, secret, received: byteCount, ended: z.boolean() }),
  [MessageType.CONTINUED]: z.strictObject({ received: byteCount, ended: z.boolean(), secret }),
} as const;

function isMessageType(t: number): t is MessageType {
  return Object.hasOwn(schemas, t);
}

function fieldName(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out === '' ? '(body)' : out;
}

function describeIssues(issues: readonly z.core.$ZodIssue[], body: Record<string, unknown>): string {
  return issues
    .slice(0, 3)
    .map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        const keys = issue.keys.slice(0, 3).map((k) => JSON.stringify(k.slice(0, 32)));
        return `unknown field ${keys.join(', ')}${issue.keys.length > 3 ? ', ...' : ''}`;
      }
      const [top] = issue.path;
      if (issue.code === 'invalid_type' && issue.path.length === 1 && typeof top === 'string' && !Object.hasOwn(body, top)) {
        return `${top}: missing`;
      }
      return `${fieldName(issue.path)}: ${issue.message}`;
    })
    .join('; ');
}

/** Validates a decoded frame and returns the typed message. */
export function decodeMessage(frame: Frame): Message {
  const { type } = frame;
  if (!isMessageType(type)) {
    throw new VmgateError('protocol-violation', `unknown control message type ${type}`);
  }
  const result = schemas[type].safeParse(frame.body);
  if (!result.success) {
    throw new VmgateError('frame-malformed', `${MESSAGE_NAMES[type]}: ${describeIssues(result.error.issues, frame.body)}`);
  }
  return { type, ...result.data } as Message;
}

function truncate(s: string, max: number): string {
  if (s.length <= max) return s;
  let cut = s.slice(0, max - 1);
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1); // never split a surrogate pair
  return `${cut}…`;
}

function bodyOf(m: Message): Record<string, unknown> {
  switch (m.type) {
    case MessageType.HELLO:
      return { versions: m.versions };
    case MessageType.WELCOME:
      return { version: m.version, mechanisms: m.mechanisms, ...(m.instance === undefined ? {} : { instance: m.instance }) };
    case MessageType.AUTH:
      return { mechanism: m.mechanism, response: m.response.toString('base64') };
    case MessageType.AUTH_OK:
      return { user: m.user };
    case MessageType.OPEN:
      return { target: m.target, session: m.session, channel: m.channel, ...(m.port === undefined ? {} : { port: m.port }) };
    case MessageType.OPENED:
      return m.secret === undefined ? {} : { secret: m.secret };
    case MessageType.ERROR:
      // Error text is often built from arbitrary errors: cut it to what the peer accepts.
      return { code: m.code, message: truncate(m.message, MAX_ERROR_MESSAGE_LENGTH) };
    case MessageType.ABORT:
      return { session: m.session, channels: m.channels, code: m.code, message: truncate(m.message, MAX_ERROR_MESSAGE_LENGTH) };
    case MessageType.ABORTED:
      return { count: m.count };
    case MessageType.REPORT:
      return { session: m.session, channel: m.channel };
    case MessageType.REPORTED:
      return { code: m.code, message: truncate(m.message, MAX_ERROR_MESSAGE_LENGTH), bytesIn: m.bytesIn, bytesOut: m.bytesOut };
    case MessageType.PROBE:
      return { target: m.target, ...(m.ports === undefined ? {} : { ports: m.ports }) };
    case MessageType.PROBED:
      return {};
    case MessageType.CONTINUE:
      return { session: m.session, channel: m.channel, secret: m.secret, received: m.received, ended: m.ended };
    case MessageType.CONTINUED:
      return { received: m.received, ended: m.ended, secret: m.secret };
  }
}

/**
 * Encodes a message as one frame. The body is checked against the same schema
 * the peer applies, so a message the peer would reject is never sent (that is
 * a local bug: code `internal`).
 */
export function encodeMessage(m: Message): Buffer {
  const body = bodyOf(m);
  const check = schemas[m.type].safeParse(body);
  if (!check.success) {
    throw new VmgateError('internal', `refusing to send invalid ${MESSAGE_NAMES[m.type]}: ${describeIssues(check.error.issues, body)}`);
  }
  return encodeFrame(m.type, body);
}
