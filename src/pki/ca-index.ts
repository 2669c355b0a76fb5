/**
 * The CA's record of everything it signed (`index.json`): the source of the
 * CRL and of `list`. Rewritten atomically; one writer at a time per CA
 * directory inside a process (see `withCaLock`).
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { VmgateError, messageOf } from '../errors.js';
import { writeFileAtomic, readText, readTextSync } from './files.js';
import { PUBLIC_MODE } from './layout.js';

const EKU = z.enum(['serverAuth', 'clientAuth']);

const IndexEntry = z.object({
  serial: z.string(),
  commonName: z.string(),
  kind: z.enum(['host', 'client']),
  dns: z.array(z.string()),
  ips: z.array(z.string()),
  extKeyUsage: z.array(EKU),
  notBefore: z.string(),
  notAfter: z.string(),
  issuedAt: z.string(),
  outDir: z.string().optional(),
  renewedFrom: z.string().optional(),
  revokedAt: z.string().optional(),
  reason: z.string().optional(),
});

const IndexFile = z.object({
  version: z.literal(1),
  caSerial: z.string(),
  crlNumber: z.number().int().nonnegative(),
  issued: z.array(IndexEntry),
});

export type IndexEntry = z.infer<typeof IndexEntry>;
export type CaIndex = z.infer<typeof IndexFile>;

/** One certificate the CA issued, as `listIssued` reports it. */
export interface IssuedRecord {
  serial: string;
  commonName: string;
  kind: 'host' | 'client';
  dns: string[];
  ips: string[];
  extKeyUsage: Array<'serverAuth' | 'clientAuth'>;
  notBefore: Date;
  notAfter: Date;
  issuedAt: Date;
  outDir?: string;
  renewedFrom?: string;
  revoked: boolean;
  revokedAt?: Date;
  reason?: string;
}

export function emptyIndex(caSerial: string): CaIndex {
  return { version: 1, caSerial, crlNumber: 0, issued: [] };
}

function parseIndex(text: string, path: string): CaIndex {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e: unknown) {
    throw new VmgateError('pki-unreadable', `CA index ${path} is not JSON: ${messageOf(e)}`, { cause: e });
  }
  const r = IndexFile.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new VmgateError('pki-unreadable', `CA index ${path} is malformed at ${issue?.path.join('.') ?? '?'}: ${issue?.message ?? 'invalid'}`);
  }
  return r.data;
}

export async function readIndex(path: string): Promise<CaIndex> {
  return parseIndex(await readText(path, 'CA index', 'pki-ca-missing'), path);
}

export function readIndexSync(path: string): CaIndex {
  return parseIndex(readTextSync(path, 'CA index', 'pki-ca-missing'), path);
}

export async function writeIndex(path: string, index: CaIndex): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(index, null, 2)}\n`, PUBLIC_MODE);
}

export function toRecord(e: IndexEntry): IssuedRecord {
  return {
    serial: e.serial,
    commonName: e.commonName,
    kind: e.kind,
    dns: [...e.dns],
    ips: [...e.ips],
    extKeyUsage: [...e.extKeyUsage],
    notBefore: new Date(e.notBefore),
    notAfter: new Date(e.notAfter),
    issuedAt: new Date(e.issuedAt),
    ...(e.outDir !== undefined ? { outDir: e.outDir } : {}),
    ...(e.renewedFrom !== undefined ? { renewedFrom: e.renewedFrom } : {}),
    revoked: e.revokedAt !== undefined,
    ...(e.revokedAt !== undefined ? { revokedAt: new Date(e.revokedAt) } : {}),
    ...(e.reason !== undefined ? { reason: e.reason } : {}),
  };
}

const locks = new Map<string, Promise<unknown>>();

/**
 * Serialises read-modify-write of one CA directory within this process, so
 * parallel `issueCertificate` calls (test fixtures do that) never lose a record.
 */
export async function withCaLock<T>(caDir: string, fn: () => Promise<T>): Promise<T> {
  const key = resolve(caDir);
  const prev = locks.get(key) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  const tail = run.then(() => undefined, () => undefined);
  locks.set(key, tail);
  try {
    return await run;
  } finally {
    if (locks.get(key) === tail) locks.delete(key);
  }
}
