/**
 * The SASL credential store: salted scrypt hashes, one JSON file.
 *
 *   {
 *     "version": 1,
 *     "users": {
 *       "<SASLprep'd user name>": {
 *         "salt": "<base64, 16 bytes>",
 *         "hash": "<base64, 32 bytes>",   // scrypt(SASLprep(password), salt, 32, {N, r, p})
 *         "N": 16384, "r": 8, "p": 1
 *       }
 *     }
 *   }
 *
 * The file holds secrets-equivalent material: it must be mode 0600 (no group or
 * other bits) or it is refused. New hashes use N=16384, r=8, p=1; other
 * parameters are read from the file within bounds that keep one verification
 * under 64 MiB of memory.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { messageOf, systemCode, VmgateError } from '../errors.js';
import { DISK_FILES, type FileSource } from '../util/file-source.js';
import { RecentLogins } from './recent-logins.js';
import { MAX_PASSWORD_BYTES, MAX_USER_BYTES, saslprep } from './sasl-plain.js';

const SALT_BYTES = 16;
const HASH_BYTES = 32;
const DEFAULT_SCRYPT_PARAMS: Readonly<ScryptParams> = { N: 16384, r: 8, p: 1 };
/** Bounds on parameters read from a file: a hostile or mistyped file must not exhaust memory or CPU. */
const SCRYPT_LIMITS = { minN: 16, maxN: 1 << 20, maxR: 32, maxP: 16, maxMemory: 64 * 1024 * 1024, maxWork: 1 << 22 } as const;
const MAX_FILE_BYTES = 4 * 1024 * 1024;

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/**
 * The answer of a password check and how it was reached: `scrypt` (a full
 * run), `recent` (scrypt accepted this login within the last minute) or
 * `shared` (a concurrent scrypt run of the same login accepted it).
 */
export interface LoginCheck {
  accepted: boolean;
  via: 'scrypt' | 'recent' | 'shared';
}

interface UserRecord extends ScryptParams {
  salt: Buffer;
  hash: Buffer;
}

function scryptAsync(password: Buffer, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  const { N, r, p } = params;
  // Node refuses when 128*N*r exceeds maxmem (32 MiB by default); size it to the parameters.
  const options: ScryptOptions = { N, r, p, maxmem: 128 * r * (N + p + 2) + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password, salt, HASH_BYTES, options, (err, key) => (err === null ? resolve(key) : reject(err)));
  });
}

function isStrictBase64(s: string): boolean {
  return s.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(s) && Buffer.from(s, 'base64').toString('base64') === s;
}

function b64Bytes(n: number) {
  return z
    .string()
    .refine((s) => isStrictBase64(s) && Buffer.from(s, 'base64').length === n, `must be base64 of exactly ${n} bytes`)
    .transform((s) => Buffer.from(s, 'base64'));
}

const recordSchema = z
  .strictObject({
    salt: b64Bytes(SALT_BYTES),
    hash: b64Bytes(HASH_BYTES),
    N: z
      .number()
      .int('must be an integer')
      .min(SCRYPT_LIMITS.minN, `must be a power of two in ${SCRYPT_LIMITS.minN}..${SCRYPT_LIMITS.maxN}`)
      .max(SCRYPT_LIMITS.maxN, `must be a power of two in ${SCRYPT_LIMITS.minN}..${SCRYPT_LIMITS.maxN}`)
      .refine((n) => (n & (n - 1)) === 0, 'must be a power of two'),
    r: z.number().int('must be an integer').min(1, `must be 1..${SCRYPT_LIMITS.maxR}`).max(SCRYPT_LIMITS.maxR, `must be 1..${SCRYPT_LIMITS.maxR}`),
    p: z.number().int('must be an integer').min(1, `must be 1..${SCRYPT_LIMITS.maxP}`).max(SCRYPT_LIMITS.maxP, `must be 1..${SCRYPT_LIMITS.maxP}`),
  })
  .superRefine((rec, ctx) => {
    if (128 * rec.N * rec.r > SCRYPT_LIMITS.maxMemory) {
      ctx.addIssue({ code: 'custom', path: ['N'], message: `N*r needs more than ${SCRYPT_LIMITS.maxMemory / 1024 / 1024} MiB per verification` });
    } else if (rec.N * rec.r * rec.p > SCRYPT_LIMITS.maxWork) {
      ctx.addIssue({ code: 'custom', path: ['p'], message: 'N*r*p makes one verification too slow' });
    }
  });

const fileSchema = z.strictObject({
  version: z.literal(1, 'must be 1'),
  // Entries are checked one by one below, on the parsed object itself (a zod
  // record would lose a "__proto__" key).
  users: z.custom<Record<string, unknown>>(
    (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
    'must be an object mapping user names to records',
  ),
});

function issueText(issues: readonly z.core.$ZodIssue[], prefix: string, obj: unknown): string {
  const issue = issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    return `${prefix}: unknown key ${issue.keys.slice(0, 3).map((k) => JSON.stringify(k.slice(0, 32))).join(', ')}`;
  }
  const key = issue.path.map(String).join('.');
  const where = key === '' ? prefix : prefix === '' ? key : `${prefix}.${key}`;
  const [top] = issue.path;
  const missing = issue.code === 'invalid_type' && typeof top === 'string' && typeof obj === 'object' && obj !== null && !Object.hasOwn(obj, top);
  return `${where}: ${missing ? 'missing' : issue.message}`;
}

function userKey(name: string): string {
  return `users[${JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name)}]`;
}

function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

export class CredentialStore {
  readonly #users = new Map<string, UserRecord>();
  /** Salt and hash for unknown users: verifying them costs the same scrypt as a real user. */
  readonly #dummySalt = randomBytes(SALT_BYTES);
  readonly #dummyHash = randomBytes(HASH_BYTES);
  /** Lives and dies with this store: a reload builds a new store, and with it an empty cache. */
  readonly #recent = new RecentLogins();

  private constructor() {}

  static empty(): CredentialStore {
    return new CredentialStore();
  }

  /**
   * Reads and validates a store. `config-unreadable` if the file cannot be
   * read, `file-outside-dir` if it is a symlink leading out of its
   * directory, `file-insecure` if group or others have any access, and
   * `credentials-invalid` naming the file and the offending key otherwise.
   */
  static async load(path: string, source: FileSource = DISK_FILES): Promise<CredentialStore> {
    const data = await source.secret(path, 'credential store');
    if (data.length > MAX_FILE_BYTES) throw new VmgateError('credentials-invalid', `credential store ${path} is larger than ${MAX_FILE_BYTES} bytes`);
    return CredentialStore.#parse(path, data.toString('utf8'));
  }

  static #parse(path: string, text: string): CredentialStore {
    const invalid = (what: string): VmgateError => new VmgateError('credentials-invalid', `credential store ${path}: ${what}`);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      // The parser's message quotes file content; the position is enough.
      throw invalid('not valid JSON');
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid('top level must be a JSON object');
    const top = fileSchema.safeParse(raw);
    if (!top.success) throw invalid(issueText(top.error.issues, '', raw));
    const store = new CredentialStore();
    for (const [name, value] of Object.entries(top.data.users)) {
      const key = userKey(name);
      const n = byteLength(name);
      if (n < 1 || n > MAX_USER_BYTES) throw invalid(`${key}: user name must be 1..${MAX_USER_BYTES} bytes`);
      if (saslprep(name) !== name) throw invalid(`${key}: user name is not in SASLprep form`);
      const rec = recordSchema.safeParse(value);
      if (!rec.success) throw invalid(issueText(rec.error.issues, key, value));
      store.#users.set(name, rec.data);
    }
    return store;
  }

  /** User names, sorted. */
  users(): string[] {
    return [...this.#users.keys()].sort();
  }

  /** Sets (or replaces) a password, hashed with the default scrypt parameters. */
  async setPassword(user: string, password: string): Promise<void> {
    const name = CredentialStore.#prepare(user, MAX_USER_BYTES, 'user name');
    const secret = CredentialStore.#prepare(password, MAX_PASSWORD_BYTES, 'password');
    const salt = randomBytes(SALT_BYTES);
    const hash = await scryptAsync(Buffer.from(secret, 'utf8'), salt, DEFAULT_SCRYPT_PARAMS);
    this.#users.set(name, { ...DEFAULT_SCRYPT_PARAMS, salt, hash });
    this.#recent.forget(name);
  }

  /** Same limits as the PLAIN parser, before and after SASLprep, so a stored password can always be sent. */
  static #prepare(value: string, maxBytes: number, what: string): string {
    const before = byteLength(value);
    if (before < 1 || before > maxBytes) throw new VmgateError('credentials-invalid', `${what} must be 1..${maxBytes} bytes`);
    const prepped = saslprep(value);
    if (prepped === undefined) {
      throw new VmgateError('credentials-invalid', `${what} is refused by SASLprep (control, prohibited or unassigned character, or empty after mapping)`);
    }
    if (byteLength(prepped) > maxBytes) throw new VmgateError('credentials-invalid', `${what} is longer than ${maxBytes} bytes after SASLprep`);
    return prepped;
  }

  remove(user: string): boolean {
    const name = saslprep(user);
    if (name === undefined) return false;
    this.#recent.forget(name);
    return this.#users.delete(name);
  }

  /**
   * True only for a known user with this password. An unknown user, or input
   * SASLprep refuses, costs the same scrypt run (on a dummy record with the
   * store's parameters) and compares in constant time before answering false.
   *
   * A login scrypt accepted within the last minute is accepted again without
   * scrypt, and concurrent checks of the same login share one scrypt run
   * (see RecentLogins for why this accepts nothing scrypt would refuse). Any
   * other input, a wrong password above all, pays the full scrypt run.
   */
  async verify(user: string, password: string): Promise<boolean> {
    return (await this.check(user, password)).accepted;
  }

  /** As `verify`, and says how the answer was reached (logged by the server, asserted by tests). */
  async check(user: string, password: string): Promise<LoginCheck> {
    const name = saslprep(user);
    const secret = saslprep(password);
    const record = name === undefined ? undefined : this.#users.get(name);
    if (name === undefined || secret === undefined || record === undefined) return { accepted: await this.#scryptVerify(user, password), via: 'scrypt' };
    const mac = this.#recent.mac(name, secret);
    if (this.#recent.has(name, mac)) return { accepted: true, via: 'recent' };
    const running = this.#recent.inFlight(name, mac);
    if (running !== undefined && (await running.catch(() => false))) return { accepted: true, via: 'shared' };
    const accepted = this.#scryptVerify(user, password);
    this.#recent.track(name, mac, accepted);
    if (!(await accepted)) return { accepted: false, via: 'scrypt' };
    // Only if the user was not removed or given a new password while scrypt ran.
    if (this.#users.get(name) === record) this.#recent.remember(name, mac);
    return { accepted: true, via: 'scrypt' };
  }

  async #scryptVerify(user: string, password: string): Promise<boolean> {
    const name = saslprep(user);
    const secret = saslprep(password);
    const record = name === undefined ? undefined : this.#users.get(name);
    const params = record ?? this.#users.values().next().value ?? DEFAULT_SCRYPT_PARAMS;
    const salt = record?.salt ?? this.#dummySalt;
    const expected = record?.hash ?? this.#dummyHash;
    const derived = await scryptAsync(Buffer.from(secret ?? password, 'utf8'), salt, params);
    const same = timingSafeEqual(derived, expected);
    return same && record !== undefined && secret !== undefined;
  }

  /**
   * Writes atomically: a temp file in the same directory, fsync, rename, fsync
   * the directory. A new store is 0600 and belongs to the caller. An existing
   * one keeps its owner, group and mode: root running `vmgate users add` on
   * the store of a daemon that runs as `vmgate` must not leave it root:root
   * (the daemon could no longer read it). When the owner cannot be kept
   * (another user, not root), nothing is written.
   */
  async save(path: string): Promise<void> {
    const users: Record<string, unknown> = {};
    for (const name of this.users()) {
      const rec = this.#users.get(name)!;
      Object.defineProperty(users, name, {
        value: { salt: rec.salt.toString('base64'), hash: rec.hash.toString('base64'), N: rec.N, r: rec.r, p: rec.p },
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    const text = `${JSON.stringify({ version: 1, users }, null, 2)}\n`;
    const dir = dirname(path);
    const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
    const old = await stat(path).catch(() => undefined);
    try {
      const fh = await open(tmp, 'wx', 0o600);
      try {
        if (old !== undefined && (old.uid !== process.geteuid?.() || old.gid !== process.getegid?.())) {
          await fh.chown(old.uid, old.gid).catch((e: unknown) => {
            throw new VmgateError(
              'credentials-unwritable',
              `cannot keep the owner ${old.uid}:${old.gid} of credential store ${path} (${systemCode(e) ?? messageOf(e)}): rewritten by this user, the gateway could no longer read it; ` +
                `run vmgate users as root or as the store's owner`,
              { cause: e },
            );
          });
        }
        await fh.chmod(old === undefined ? 0o600 : old.mode & 0o777); // whatever the umask
        await fh.writeFile(text, 'utf8');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
    } catch (e: unknown) {
      await unlink(tmp).catch(() => undefined);
      if (e instanceof VmgateError) throw e;
      throw new VmgateError('credentials-unwritable', `cannot write credential store ${path}: ${systemCode(e) ?? messageOf(e)}`, { cause: e });
    }
    // Make the rename durable; some filesystems cannot fsync a directory, and the data is already safe.
    try {
      const dh = await open(dir, 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    } catch {
      /* best effort */
    }
  }
}
