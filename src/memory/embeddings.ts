/**
 * Embeddings: text → unit-length vectors of EMBEDDING_DIMS (384), behind one interface.
 *
 *  - Workers AI `@cf/baai/bge-small-en-v1.5` (384 dims) through the AI binding;
 *  - any OpenAI-compatible `/embeddings` endpoint through the `openai` SDK, asking for 384 dimensions
 *    (text-embedding-3-* honour `dimensions`; a server that answers with another size is refused);
 *  - locally, with no model, a deterministic LEXICAL embedding: hashed word unigrams, word bigrams and
 *    character trigrams. It finds shared words and word stems ("invoice" ~ "invoices"), not meaning:
 *    "car" and "automobile" are unrelated to it. Its model name says so (`lexical-hash-v1`), and so do
 *    search results.
 *
 * Remote embedders are wrapped in `CachedEmbedder`: texts are keyed by SHA-256 of (model, text), looked
 * up in an in-isolate LRU and optionally a SQLite table, deduplicated, and only the misses are sent,
 * in batches of the provider's maximum.
 */
import OpenAI from 'openai';
import { EMBEDDING_DIMS } from '../kernel/memory.ts';
import { KernelError } from '../kernel/errors.ts';
import { sha256Hex } from '../kernel/policy.ts';
import type { AiBinding } from '../llm/workers-ai.ts';
import { tableDdl } from '../process/schema.ts';

export interface Embedder {
  /** Stored with every vector: search compares only vectors of the same model. */
  readonly model: string;
  /** True for the hashed lexical embedding (word overlap, not meaning). */
  readonly lexical: boolean;
  /** Texts per provider call. */
  readonly maxBatch: number;
  /** One unit-length vector per text, in order. */
  embed(texts: readonly string[]): Promise<Float32Array[]>;
}

/** Scale to unit length in place (a zero vector stays zero). */
export function normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += (v[i] as number) * (v[i] as number);
  if (s === 0) return v;
  const inv = 1 / Math.sqrt(s);
  for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) * inv;
  return v;
}

function toVector(values: readonly number[], what: string): Float32Array {
  if (values.length !== EMBEDDING_DIMS) {
    throw new KernelError('EIO', `${what} returned ${values.length}-dimensional embeddings; the memory index holds ${EMBEDDING_DIMS}. Use a ${EMBEDDING_DIMS}-dimensional model (or one that honours "dimensions").`, {
      dimensions: values.length,
    });
  }
  return normalize(Float32Array.from(values));
}

// --- lexical --------------------------------------------------------------------------------------

const STOP = new Set(
  'a an the and or but if of to in on at by for with from as is are was were be been being it its this that these those i you he she we they me my your our their not no do does did have has had will would can could should may might there here what which who whom how when where why all any some so than then too very just also into over under about'.split(' '),
);

/** FNV-1a, 32 bits. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The deterministic lexical embedding. Features and weights: each word 1 (stop words 0.1), each pair of
 * adjacent words 0.5, each character trigram of a word (with boundary marks) 0.25; term frequency is
 * damped as 1 + ln(tf). Each feature is hashed to one of 384 dimensions with a hashed sign (so
 * collisions cancel rather than add up), and the result is normalised.
 */
export class LexicalEmbedder implements Embedder {
  readonly model = 'lexical-hash-v1';
  readonly lexical = true;
  readonly maxBatch = 1000;

  embedOne(text: string): Float32Array {
    const words = text.toLowerCase().normalize('NFKC').match(/[\p{L}\p{N}]+/gu) ?? [];
    const feats = new Map<string, { w: number; tf: number }>();
    const add = (f: string, w: number) => {
      const e = feats.get(f);
      if (e) e.tf++;
      else feats.set(f, { w, tf: 1 });
    };
    let prev: string | null = null;
    for (const word of words) {
      const stop = STOP.has(word);
      add(`w:${word}`, stop ? 0.1 : 1);
      if (prev !== null && !(stop && STOP.has(prev))) add(`b:${prev} ${word}`, 0.5);
      prev = word;
      if (stop || word.length < 3) continue;
      const padded = `^${word}$`;
      for (let i = 0; i + 3 <= padded.length; i++) add(`c:${padded.slice(i, i + 3)}`, 0.25);
    }
    const v = new Float32Array(EMBEDDING_DIMS);
    for (const [f, { w, tf }] of feats) {
      const h = fnv1a(f);
      const sign = fnv1a(`s${f}`) & 1 ? -1 : 1;
      v[h % EMBEDDING_DIMS] = (v[h % EMBEDDING_DIMS] as number) + sign * w * (1 + Math.log(tf));
    }
    return normalize(v);
  }

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    return texts.map((t) => this.embedOne(t));
  }
}

// --- Workers AI -----------------------------------------------------------------------------------

export const WORKERS_AI_EMBEDDING_MODEL = '@cf/baai/bge-small-en-v1.5';

export class WorkersAiEmbedder implements Embedder {
  readonly model = WORKERS_AI_EMBEDDING_MODEL;
  readonly lexical = false;
  readonly maxBatch = 100;
  readonly #ai: AiBinding;

  constructor(ai: AiBinding) {
    this.#ai = ai;
  }

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    let out: unknown;
    try {
      out = await this.#ai.run(this.model, { text: [...texts] });
    } catch (e) {
      throw new KernelError('EIO', `Workers AI embedding failed: ${(e as Error).message}`);
    }
    const data = (out as { data?: unknown }).data;
    if (!Array.isArray(data) || data.length !== texts.length) throw new KernelError('EIO', `Workers AI returned ${Array.isArray(data) ? data.length : 'no'} embeddings for ${texts.length} texts`);
    return data.map((row) => toVector(row as number[], 'Workers AI'));
  }
}

// --- OpenAI-compatible ----------------------------------------------------------------------------

export interface OpenAiEmbedderOptions {
  readonly model: string;
  readonly apiKey: string;
  readonly baseURL?: string;
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
}

export class OpenAiEmbedder implements Embedder {
  readonly model: string;
  readonly lexical = false;
  /** Inputs per request: well under OpenAI's 2,048, and at 8 KiB per text under its per-request token cap. */
  readonly maxBatch = 64;
  readonly #client: OpenAI;

  constructor(o: OpenAiEmbedderOptions) {
    this.model = o.model;
    this.#client = new OpenAI({
      apiKey: o.apiKey,
      ...(o.baseURL ? { baseURL: o.baseURL } : {}),
      maxRetries: 1,
      timeout: o.timeoutMs ?? 30_000,
      ...(o.fetch ? { fetch: o.fetch } : {}),
    });
  }

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    let res: OpenAI.CreateEmbeddingResponse;
    try {
      res = await this.#client.embeddings.create({ model: this.model, input: [...texts], dimensions: EMBEDDING_DIMS, encoding_format: 'float' });
    } catch (e) {
      const status = (e as { status?: number }).status;
      throw new KernelError('EIO', `the embeddings endpoint failed${status ? ` (HTTP ${status})` : ''}: ${(e as Error).message}`, status ? { status } : undefined);
    }
    const rows = [...res.data].sort((a, b) => a.index - b.index);
    if (rows.length !== texts.length) throw new KernelError('EIO', `the embeddings endpoint returned ${rows.length} embeddings for ${texts.length} texts`);
    return rows.map((r) => toVector(r.embedding, `the embeddings endpoint (${this.model})`));
  }
}

// --- caching and batching ----------------------------------------------------------------------------

/** Where cached embeddings live, keyed by content hash. */
export interface EmbeddingCache {
  get(key: string): Float32Array | undefined;
  set(key: string, vector: Float32Array): void;
}

/** A bounded LRU in memory (Map iteration order is insertion order). */
export class LruEmbeddingCache implements EmbeddingCache {
  readonly #map = new Map<string, Float32Array>();
  constructor(readonly capacity = 4096) {}

  get(key: string): Float32Array | undefined {
    const v = this.#map.get(key);
    if (v) {
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }

  set(key: string, vector: Float32Array): void {
    this.#map.delete(key);
    this.#map.set(key, vector);
    if (this.#map.size > this.capacity) this.#map.delete(this.#map.keys().next().value as string);
  }

  get size(): number {
    return this.#map.size;
  }
}

/** A cache in a Durable Object's SQLite (survives eviction), in front of an LRU; keeps the newest `capacity` rows. */
export class SqlEmbeddingCache implements EmbeddingCache {
  readonly #sql: SqlStorage;
  readonly #lru: LruEmbeddingCache;
  #writes = 0;

  constructor(
    sql: SqlStorage,
    readonly capacity = 2000,
  ) {
    this.#sql = sql;
    this.#lru = new LruEmbeddingCache(Math.min(capacity, 1024));
  }

  /** The table, created on first use, not with the object: most steps of most processes embed nothing. */
  #ready = false;
  get #db(): SqlStorage {
    if (!this.#ready) {
      this.#sql.exec(tableDdl(['mem_embedding_cache']));
      this.#ready = true;
    }
    return this.#sql;
  }

  get(key: string): Float32Array | undefined {
    const hit = this.#lru.get(key);
    if (hit) return hit;
    const row = this.#db.exec<{ vec: ArrayBuffer }>('SELECT vec FROM mem_embedding_cache WHERE key = ?', key).toArray()[0];
    if (!row) return undefined;
    const v = new Float32Array(row.vec);
    this.#lru.set(key, v);
    return v;
  }

  set(key: string, vector: Float32Array): void {
    this.#lru.set(key, vector);
    const at = ++this.#writes + Date.now() * 1000;
    this.#db.exec('INSERT OR REPLACE INTO mem_embedding_cache (key, vec, at) VALUES (?, ?, ?)', key, vector.buffer.slice(vector.byteOffset, vector.byteOffset + vector.byteLength), at);
    if (this.#writes % 100 === 0) this.#sql.exec('DELETE FROM mem_embedding_cache WHERE key NOT IN (SELECT key FROM mem_embedding_cache ORDER BY at DESC LIMIT ?)', this.capacity);
  }
}

/** The cache every embedder of an isolate shares unless given another. */
const ISOLATE_CACHE = new LruEmbeddingCache(4096);

/** Cache by content hash, deduplicate, and batch the misses. */
export class CachedEmbedder implements Embedder {
  readonly model: string;
  readonly lexical: boolean;
  readonly maxBatch: number;
  /** Provider calls made (for tests and benchmarks). */
  calls = 0;
  readonly #inner: Embedder;
  readonly #cache: EmbeddingCache;

  constructor(inner: Embedder, cache: EmbeddingCache = ISOLATE_CACHE) {
    this.#inner = inner;
    this.#cache = cache;
    this.model = inner.model;
    this.lexical = inner.lexical;
    this.maxBatch = inner.maxBatch;
  }

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    const keys = await Promise.all(texts.map((t) => sha256Hex(`${this.model}\n${t}`)));
    const out: (Float32Array | undefined)[] = keys.map((k) => this.#cache.get(k));
    const missing = new Map<string, string>();
    keys.forEach((k, i) => {
      if (!out[i]) missing.set(k, texts[i] as string);
    });
    const todo = [...missing];
    for (let i = 0; i < todo.length; i += this.#inner.maxBatch) {
      const batch = todo.slice(i, i + this.#inner.maxBatch);
      this.calls++;
      const vectors = await this.#inner.embed(batch.map(([, t]) => t));
      batch.forEach(([k], j) => this.#cache.set(k, vectors[j] as Float32Array));
    }
    return keys.map((k, i) => out[i] ?? (this.#cache.get(k) as Float32Array));
  }
}

// --- configuration ----------------------------------------------------------------------------------

export interface EmbeddingEnv {
  readonly EMBEDDING_PROVIDER?: string;
  readonly EMBEDDING_MODEL?: string;
  readonly EMBEDDING_BASE_URL?: string;
  readonly EMBEDDING_API_KEY?: string;
  readonly OPENAI_BASE_URL?: string;
  readonly OPENAI_API_KEY?: string;
  readonly AI?: AiBinding;
}

const set = (v: string | undefined): v is string => typeof v === 'string' && v.trim() !== '';

/**
 * The deployment's embedder. EMBEDDING_PROVIDER: "" → Workers AI if the AI binding exists, else
 * lexical; "workers-ai"; "openai" (EMBEDDING_BASE_URL or OPENAI_BASE_URL, EMBEDDING_MODEL, default
 * text-embedding-3-small, key EMBEDDING_API_KEY or OPENAI_API_KEY); "lexical". Throws EINVAL when the
 * configuration names a provider it cannot reach.
 */
export function createEmbedder(env: EmbeddingEnv, cache?: EmbeddingCache): Embedder {
  const provider = (env.EMBEDDING_PROVIDER ?? '').trim() || (env.AI ? 'workers-ai' : 'lexical');
  switch (provider) {
    case 'lexical':
      return new LexicalEmbedder();
    case 'workers-ai':
      if (!env.AI) throw new KernelError('EINVAL', 'EMBEDDING_PROVIDER is "workers-ai" but no AI binding is configured');
      return new CachedEmbedder(new WorkersAiEmbedder(env.AI), cache);
    case 'openai': {
      const baseURL = set(env.EMBEDDING_BASE_URL) ? env.EMBEDDING_BASE_URL : set(env.OPENAI_BASE_URL) ? env.OPENAI_BASE_URL : undefined;
      const apiKey = set(env.EMBEDDING_API_KEY) ? env.EMBEDDING_API_KEY : set(env.OPENAI_API_KEY) ? env.OPENAI_API_KEY : baseURL ? 'none' : null;
      if (apiKey === null) throw new KernelError('EINVAL', 'EMBEDDING_PROVIDER is "openai" but neither an API key nor EMBEDDING_BASE_URL is configured');
      return new CachedEmbedder(new OpenAiEmbedder({ model: set(env.EMBEDDING_MODEL) ? env.EMBEDDING_MODEL : 'text-embedding-3-small', apiKey, ...(baseURL ? { baseURL } : {}) }), cache);
    }
    default:
      throw new KernelError('EINVAL', `unknown EMBEDDING_PROVIDER "${provider}"; use workers-ai, openai or lexical`);
  }
}
