import { closest, distance } from 'fastest-levenshtein';
import { z } from 'zod';
import type { ConfigProblem, ConfigProblemKind } from '../errors.js';

/**
 * Turns the schema library's findings into the operator's words: one plain
 * sentence per problem that names the key path, says what was found and what
 * the key takes, and for a misspelt key which known key was probably meant.
 * No wording of the validation library reaches the operator.
 */

type Path = readonly PropertyKey[];

/** `routes.to-b.peer`; a list index as `allow[0]`. */
function keyPath(path: Path): string {
  if (path.length === 0) return '(top level)';
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : `${i > 0 ? '.' : ''}${String(k)}`)).join('');
}

export function problem(key: string, kind: ConfigProblemKind, message: string, suggestion?: string): ConfigProblem {
  return suggestion === undefined ? { key, kind, message } : { key, kind, message, suggestion };
}

/** One issue of `schema.safeParse(root)` as problems (an unknown-keys issue gives one per key). */
export function describeIssue(issue: z.core.$ZodIssue, root: unknown, schema: z.ZodType): ConfigProblem[] {
  const key = keyPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeys(schemaAt(schema, issue.path));
    return issue.keys.map((k) => unknownKey([...issue.path, k], k, known));
  }
  if (issue.code === 'invalid_key') {
    const name = String(issue.path[issue.path.length - 1]);
    const parent = keyPath(issue.path.slice(0, -1));
    return [problem(key, 'bad-value', `${JSON.stringify(name)} is not a valid name under ${parent}; a name is ${NAME_RULE}.`)];
  }
  if (issue.code === 'invalid_union') {
    // A key that takes one of several shapes (a string or a list): speak of the shape the value has.
    const branch = typedBranch(issue.errors);
    if (branch !== undefined) return branch.flatMap((i) => describeIssue({ ...i, path: [...issue.path, ...i.path] }, root, schema));
  }
  const value = valueAt(root, issue.path);
  const expected = expectation(schemaAt(schema, issue.path));
  if (value === undefined) return [problem(key, 'missing', `${key} is missing; it must be ${expected}.`)];
  return [problem(key, kindOf(issue, value), `${key} is ${shown(value)}; it must be ${expected}.`)];
}

/** How a name (route, target, gateway) is spelled; the schema's rule in words. */
export const NAME_RULE = 'letters, digits, ".", "_" or "-", starting with a letter or digit, at most 64 characters';

function unknownKey(path: Path, name: string, known: string[]): ConfigProblem {
  const key = keyPath(path);
  const parent = path.length > 1 ? keyPath(path.slice(0, -1)) : 'the top level';
  const guess = suggest(name, known);
  if (guess !== undefined) {
    return problem(key, 'unknown-key', `${key} is not a key vmgate knows; did you mean ${JSON.stringify(guess)}?`, guess);
  }
  const list = known.length > 0 ? `; the keys of ${parent} are ${known.map((k) => JSON.stringify(k)).join(', ')}` : '';
  return problem(key, 'unknown-key', `${key} is not a key vmgate knows${list}.`);
}

/**
 * The known key a misspelling most likely stands for: the closest by edit
 * distance (case ignored), if it is close enough to be a typo rather than a
 * different word: at most 2 edits, and fewer than a third of the name.
 */
export function suggest(name: string, known: readonly string[]): string | undefined {
  if (known.length === 0) return undefined;
  const lower = name.toLowerCase();
  const byLower = new Map(known.map((k) => [k.toLowerCase(), k]));
  const best = closest(lower, [...byLower.keys()]);
  const d = distance(lower, best);
  if (d > 2 || d * 3 > Math.max(name.length, best.length)) return undefined;
  return byLower.get(best);
}

/**
 * Of a union's failed branches, the one whose type the value had (its
 * issues are about what is inside, not "expected string"); undefined when
 * the value has none of the types, or more than one branch fits.
 */
function typedBranch(branches: z.core.$ZodIssue[][]): z.core.$ZodIssue[] | undefined {
  const typed = branches.filter((b) => !(b.length === 1 && b[0]?.code === 'invalid_type' && b[0].path.length === 0));
  return typed.length === 1 ? typed[0] : undefined;
}

function kindOf(issue: z.core.$ZodIssue, value: unknown): ConfigProblemKind {
  switch (issue.code) {
    case 'custom':
      return typeof value === 'number' ? 'out-of-range' : 'bad-value';
    case 'invalid_type':
      return issue.expected === 'int' ? 'out-of-range' : 'wrong-type';
    case 'not_multiple_of':
      return 'out-of-range';
    case 'invalid_union':
      // Here only when no shape the key takes has the value's type (typedBranch).
      return 'wrong-type';
    case 'too_small':
    case 'too_big':
      return issue.origin === 'number' || issue.origin === 'int' ? 'out-of-range' : 'bad-value';
    default:
      return 'bad-value';
  }
}

function shown(value: unknown): string {
  if (value === null) return 'empty';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping of keys';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' || value === undefined) return String(value);
  return typeof value; // a symbol or a function: never from YAML
}

function valueAt(root: unknown, path: Path): unknown {
  let v: unknown = root;
  for (const k of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

/** The schema that validates the value at `path`, through defaults, optionals, records and lists. */
function schemaAt(schema: z.ZodType, path: Path): z.ZodType | undefined {
  let s: z.ZodType | undefined = schema;
  for (const k of path) {
    s = unwrap(s);
    if (s instanceof z.ZodObject) s = (s.shape as Record<string, z.ZodType>)[String(k)];
    else if (s instanceof z.ZodRecord) s = s.valueType as z.ZodType;
    else if (s instanceof z.ZodArray) s = s.element as z.ZodType;
    else if (s instanceof z.ZodUnion) s = unionStep(s.options as z.ZodType[], k);
    else return undefined;
  }
  return s;
}

/** The option of a union that a path step leads into: a list for an index, a mapping for a key. */
function unionStep(options: z.ZodType[], k: PropertyKey): z.ZodType | undefined {
  for (const o of options.map(unwrap)) {
    if (typeof k === 'number' && o instanceof z.ZodArray) return o.element as z.ZodType;
    if (typeof k !== 'number' && o instanceof z.ZodObject) return (o.shape as Record<string, z.ZodType>)[String(k)];
    if (typeof k !== 'number' && o instanceof z.ZodRecord) return o.valueType as z.ZodType;
  }
  return undefined;
}

function unwrap(s: z.ZodType | undefined): z.ZodType | undefined {
  let cur = s;
  while (cur instanceof z.ZodDefault || cur instanceof z.ZodOptional) cur = cur.unwrap() as z.ZodType;
  return cur;
}

function knownKeys(s: z.ZodType | undefined): string[] {
  const o = unwrap(s);
  return o instanceof z.ZodObject ? Object.keys(o.shape) : [];
}

/** What a key takes, in words: the schema's own description, else one built from its type. */
function expectation(s: z.ZodType | undefined): string {
  for (let cur = s; cur !== undefined; ) {
    if (cur.description !== undefined) return cur.description;
    const inner = cur instanceof z.ZodDefault || cur instanceof z.ZodOptional ? (cur.unwrap() as z.ZodType) : undefined;
    if (inner === undefined) break;
    cur = inner;
  }
  const t = unwrap(s);
  if (t instanceof z.ZodNumber) return numberRange(t);
  if (t instanceof z.ZodString) return 'text';
  if (t instanceof z.ZodBoolean) return 'true or false';
  if (t instanceof z.ZodEnum) return `one of ${t.options.map((o) => JSON.stringify(o)).join(', ')}`;
  if (t instanceof z.ZodObject || t instanceof z.ZodRecord) return 'a mapping of keys (indented "key: value" lines)';
  if (t instanceof z.ZodArray) return 'a list';
  if (t instanceof z.ZodUnion) return (t.options as z.ZodType[]).map((o) => expectation(o)).join(', or ');
  return 'a valid value (see docs/configuration.md)';
}

function numberRange(n: z.ZodNumber): string {
  const what = n.isInt ? 'a whole number' : 'a number';
  const min = Number.isFinite(n.minValue) && n.minValue !== null && n.minValue > Number.MIN_SAFE_INTEGER ? n.minValue : undefined;
  const max = Number.isFinite(n.maxValue) && n.maxValue !== null && n.maxValue < Number.MAX_SAFE_INTEGER ? n.maxValue : undefined;
  if (min !== undefined && max !== undefined) return `${what} from ${min} to ${max}`;
  if (min !== undefined) return `${what}, at least ${min}`;
  if (max !== undefined) return `${what}, at most ${max}`;
  return what;
}
