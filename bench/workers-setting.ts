/**
 * The `workers` setting (issue 6: spread a session's channels over worker
 * processes) is built on another branch. The bench finds it in the config
 * schema rather than assuming where it lives: wherever a key named `workers`
 * appears, the bench sets it; when none appears, the setting is reported as
 * not available and the workers comparison is left out.
 */
import { configSchema } from '../src/config/schema.js';

const WORKERS_KEY = 'workers';

/** A key path into the YAML config; '*' stands for every entry of a record (routes, targets). */
export type KeyPath = readonly string[];

interface ZodDefLike {
  type?: string;
  shape?: Record<string, { _zod?: { def?: ZodDefLike } }>;
  innerType?: { _zod?: { def?: ZodDefLike } };
  valueType?: { _zod?: { def?: ZodDefLike } };
  in?: { _zod?: { def?: ZodDefLike } };
}

/** Every path in the config schema that ends in a `workers` key. */
export function workersKeyPaths(): KeyPath[] {
  const found: KeyPath[] = [];
  walk((configSchema as unknown as { _zod: { def: ZodDefLike } })._zod.def, [], found, 0);
  return found;
}

function walk(def: ZodDefLike | undefined, at: string[], found: KeyPath[], depth: number): void {
  if (def === undefined || depth > 12) return;
  switch (def.type) {
    case 'object':
      for (const [key, value] of Object.entries(def.shape ?? {})) {
        if (key === WORKERS_KEY) found.push([...at, key]);
        else walk(value._zod?.def, [...at, key], found, depth + 1);
      }
      return;
    case 'record':
      walk(def.valueType?._zod?.def, [...at, '*'], found, depth + 1);
      return;
    case 'pipe':
      walk(def.in?._zod?.def, at, found, depth + 1);
      return;
    default:
      walk(def.innerType?._zod?.def, at, found, depth + 1);
  }
}

/**
 * Sets `workers` at every schema path that fits this config: a path under
 * `server` only where the config has a server, under a record only for the
 * entries it has; other missing objects (e.g. `channel`) are created.
 */
export function applyWorkers(config: Record<string, unknown>, paths: readonly KeyPath[], workers: number): void {
  for (const path of paths) setAt(config, path, workers);
}

function setAt(obj: Record<string, unknown>, path: KeyPath, value: number): void {
  const [key, ...rest] = path;
  if (key === undefined) return;
  if (key === '*') {
    for (const entry of Object.values(obj)) if (isObject(entry)) setAt(entry, rest, value);
    return;
  }
  if (rest.length === 0) {
    obj[key] = value;
    return;
  }
  let next = obj[key];
  if (next === undefined) {
    if (key === 'server' || key === 'routes' || rest[0] === '*') return;
    next = {};
    obj[key] = next;
  }
  if (isObject(next)) setAt(next, rest, value);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
