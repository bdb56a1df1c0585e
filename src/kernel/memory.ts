/**
 * Long-term memory, the pure part: namespaces, limits, metadata and filters. No bindings here; the
 * stores and embedders are in src/memory.
 *
 * Namespaces. Every memory lives in one namespace of one tenant; the tenant never appears in a
 * name, it comes from the process (or the API token) and is part of every key and every filter.
 * What an agent names, and what a `mem:<namespace-glob>:<r|w|rw>` capability matches:
 *   self            private to the calling process (the default)            stored as proc/<pid>
 *   tenant          shared by the whole tenant
 *   image/<name>    shared by the processes of one image (a convention: any name below works)
 *   <a>/<b>…        any other shared name, e.g. team/alpha or kb
 * `proc/…` and `pages/…` are reserved: the kernel stores private memories and swapped context pages
 * there, and an agent reaches them only through `self` (and the kernel's recall). An operator names
 * the stored form (`proc/<pid>`, `pages/<pid>`) in the API.
 *
 * Limits follow Vectorize, the production store, so that both implementations accept exactly the
 * same calls: results with metadata are capped at topK 20; metadata (our text included) at 10 KiB per
 * vector; indexed metadata strings are compared on their first 64 bytes, so stored namespace names
 * are at most 64 bytes; metadata keys may not contain "." or '"' or start with "$".
 */
import { z } from 'zod';
import { type Result, fail, ok } from './errors.ts';

/** Dimensions of every vector (bge-small-en-v1.5, the lexical embedding, and the Vectorize index). */
export const EMBEDDING_DIMS = 384;
/** Vectorize returns at most 20 matches when it also returns metadata (100 without). */
export const MAX_TOP_K = 20;
export const DEFAULT_TOP_K = 5;
/** UTF-8 bytes of one memory's text; it is stored in the vector's metadata (10 KiB in Vectorize). */
export const MAX_TEXT_BYTES = 8 * 1024;
/** UTF-8 bytes of a memory's own metadata, serialised. Text + metadata + kernel fields stay under 10 KiB. */
export const MAX_METADATA_BYTES = 1024;
export const MAX_METADATA_KEYS = 16;
/** Vectorize rejects filters over 2 KiB; the kernel adds its own fields, so a caller's filter gets half. */
export const MAX_FILTER_BYTES = 1024;
/** Stored namespace names are at most this long (Vectorize indexes the first 64 bytes of a string). */
export const MAX_NAMESPACE_BYTES = 64;

const SEGMENT = '[a-z0-9][a-z0-9._-]{0,47}';
const NAME_RE = new RegExp(`^${SEGMENT}(/${SEGMENT})*$`);
const RESERVED = new Set(['proc', 'pages']);

const bytes = (s: string) => new TextEncoder().encode(s).byteLength;

/** A namespace as an agent names it: `self`, `tenant`, or a shared name. */
export const NamespaceSchema = z
  .string()
  .min(1)
  .max(MAX_NAMESPACE_BYTES)
  .regex(NAME_RE, 'lower-case segments of letters, digits, ".", "_" and "-", separated by "/"')
  .refine((n) => !RESERVED.has(n.split('/')[0] ?? ''), 'proc/… and pages/… are reserved for the kernel; use "self" for your private memory')
  .describe('"self" (private, the default), "tenant" (shared by your tenant), "image/<name>", or another shared name such as "team/alpha"');

/** A namespace as stored (and as an operator names it): the agent's name with `self` resolved. */
export const StoredNamespaceSchema = z
  .string()
  .min(1)
  .max(MAX_NAMESPACE_BYTES)
  .regex(NAME_RE, 'lower-case segments of letters, digits, ".", "_" and "-", separated by "/"')
  .refine((n) => n !== 'self', 'name the stored namespace: proc/<pid> for a process\'s private memory');

/** The stored name of the namespace an agent named. */
export function storedNamespace(visible: string, pid: string): string {
  return visible === 'self' ? `proc/${pid}` : visible;
}

/** The namespace holding a process's swapped-out context pages (written only by the kernel). */
export function pagesNamespace(pid: string): string {
  return `pages/${pid}`;
}

export type MetadataValue = string | number | boolean;
export type Metadata = Readonly<Record<string, MetadataValue>>;

/** User metadata keys: no ".", '"' or leading "$" (Vectorize), and no leading "_" (the kernel's own fields). */
const KeySchema = z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,31}$/, 'keys start with a letter and use letters, digits, "_" and "-" (at most 32)');
const ValueSchema = z.union([z.string().max(256), z.number().finite(), z.boolean()]);

export const MetadataSchema = z
  .record(KeySchema, ValueSchema)
  .refine((m) => Object.keys(m).length <= MAX_METADATA_KEYS, `at most ${MAX_METADATA_KEYS} keys`)
  .refine((m) => bytes(JSON.stringify(m)) <= MAX_METADATA_BYTES, `at most ${MAX_METADATA_BYTES} bytes as JSON`)
  .describe('flat key → string | number | boolean, e.g. {"topic": "billing", "year": 2025}');

const Scalar = z.union([z.string().max(256), z.number().finite(), z.boolean()]);
const RangeOps = z
  .object({ $eq: Scalar, $ne: Scalar, $lt: Scalar, $lte: Scalar, $gt: Scalar, $gte: Scalar })
  .partial()
  .strict()
  .refine((o) => Object.keys(o).length > 0, 'give at least one operator');
const SetOps = z.union([z.object({ $in: z.array(Scalar).min(1).max(32) }).strict(), z.object({ $nin: z.array(Scalar).min(1).max(32) }).strict()]);

export const FilterSchema = z
  .record(KeySchema, z.union([Scalar, RangeOps, SetOps]))
  .refine((f) => Object.keys(f).length <= 8, 'at most 8 fields')
  .refine((f) => bytes(JSON.stringify(f)) <= MAX_FILTER_BYTES, `at most ${MAX_FILTER_BYTES} bytes as JSON`)
  .describe('metadata conditions, all of which must hold: {"topic": "billing"} or {"year": {"$gte": 2024}} or {"tag": {"$in": ["a", "b"]}}');
export type Filter = z.infer<typeof FilterSchema>;

type Op = '$eq' | '$ne' | '$lt' | '$lte' | '$gt' | '$gte' | '$in' | '$nin';

function compare(op: Op, have: MetadataValue | undefined, want: MetadataValue | readonly MetadataValue[]): boolean {
  switch (op) {
    case '$eq':
      return have === want;
    case '$ne':
      return have !== want;
    case '$in':
      return have !== undefined && (want as readonly MetadataValue[]).includes(have);
    case '$nin':
      return have === undefined || !(want as readonly MetadataValue[]).includes(have);
    default: {
      // Ranges compare numbers with numbers and strings with strings; anything else never matches.
      if (have === undefined || typeof have !== typeof want || typeof have === 'boolean') return false;
      const a = have as number | string;
      const b = want as number | string;
      return op === '$lt' ? a < b : op === '$lte' ? a <= b : op === '$gt' ? a > b : a >= b;
    }
  }
}

/** Does a memory's metadata satisfy a filter? (Vectorize's semantics: every field's conditions hold.) */
export function matchesFilter(meta: Metadata, filter: Filter | undefined): boolean {
  if (!filter) return true;
  for (const [key, cond] of Object.entries(filter)) {
    const have = Object.hasOwn(meta, key) ? meta[key] : undefined;
    if (typeof cond !== 'object') {
      if (have !== cond) return false;
      continue;
    }
    for (const [op, want] of Object.entries(cond)) if (!compare(op as Op, have, want as MetadataValue)) return false;
  }
  return true;
}

/** Check a memory's text against the limit (zod counts characters; the limit is in bytes). */
export function checkText(text: string): Result<string> {
  const n = bytes(text);
  if (n > MAX_TEXT_BYTES) return fail('E2BIG', `a memory's text is at most ${MAX_TEXT_BYTES} bytes (UTF-8); this one is ${n}. Split it into several memories.`, { bytes: n, limit: MAX_TEXT_BYTES });
  if (text.trim() === '') return fail('EINVAL', "a memory's text must not be empty");
  return ok(text);
}
