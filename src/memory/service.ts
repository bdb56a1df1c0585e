/**
 * The memory service: an embedder and a vector store, chosen from the deployment's bindings, behind
 * write / search / delete. Syscall handlers, the operator API and the context manager's recall
 * (./recall.ts) all go through it; none of them touches a store or an embedder directly.
 *
 * Which store: Vectorize if the VECTORIZE binding exists, else the embedded MemoryIndex objects.
 * Never a flag: the binding's presence decides (ARCHITECTURE.md, "Local is real").
 */
import { DEFAULT_TOP_K, type Filter, type Metadata } from '../kernel/memory.ts';
import { KernelError } from '../kernel/errors.ts';
import { sha256Hex } from '../kernel/policy.ts';
import { EmbeddedMemory } from './embedded.ts';
import { type Embedder, type EmbeddingCache, type EmbeddingEnv, createEmbedder } from './embeddings.ts';
import type { MemoryMatch, MemoryScope, VectorMemory } from './types.ts';
import { type VectorizeBinding, VectorizeMemory } from './vectorize.ts';

export interface MemoryEnv extends EmbeddingEnv {
  readonly VECTORIZE?: VectorizeBinding;
  readonly MEMORY_INDEX?: Env['MEMORY_INDEX'];
}

export interface MemoryItem {
  readonly id: string;
  readonly text: string;
  readonly metadata?: Metadata;
  /** Written from a context that held untrusted content: whoever reads it back gets it labelled untrusted. */
  readonly untrusted?: boolean;
}

export interface SearchOptions {
  readonly query: string;
  readonly top_k?: number;
  readonly filter?: Filter;
}

export interface SearchResult {
  readonly results: MemoryMatch[];
  /** The embedding model, and whether it is the lexical one (word overlap, not meaning). */
  readonly embedding: { readonly model: string; readonly lexical: boolean };
  readonly store: VectorMemory['kind'];
}

/** The store the bindings call for. */
export function createVectorMemory(env: MemoryEnv): VectorMemory {
  if (env.VECTORIZE) return new VectorizeMemory(env.VECTORIZE);
  if (env.MEMORY_INDEX) return new EmbeddedMemory(env.MEMORY_INDEX);
  throw new KernelError('ENOSYS', 'long-term memory is not configured: bind VECTORIZE (production) or the MEMORY_INDEX Durable Object');
}

/** The id of the memory one journal entry writes: the same entry always writes the same id. */
export async function memoryId(pid: string, callKey: string): Promise<string> {
  return `m_${(await sha256Hex(`${pid}/${callKey}`)).slice(0, 24)}`;
}

/** A kernel field in metadata: user keys cannot start with "_", so it cannot collide. */
export const UNTRUSTED_KEY = '_untrusted';

export class MemoryService {
  readonly store: VectorMemory;
  readonly embedder: Embedder;
  readonly #now: () => number;

  constructor(store: VectorMemory, embedder: Embedder, now: () => number = Date.now) {
    this.store = store;
    this.embedder = embedder;
    this.#now = now;
  }

  /** Embed (one batched call for all items) and upsert. */
  async write(scope: MemoryScope, items: readonly MemoryItem[]): Promise<void> {
    if (items.length === 0) return;
    const vectors = await this.embedder.embed(items.map((i) => i.text));
    const at = this.#now();
    await this.store.upsert(
      scope,
      items.map((item, n) => ({
        id: item.id,
        text: item.text,
        metadata: item.untrusted ? { ...(item.metadata ?? {}), [UNTRUSTED_KEY]: true } : (item.metadata ?? {}),
        vector: vectors[n] as Float32Array,
        model: this.embedder.model,
        created_at: at,
      })),
    );
  }

  async search(scope: MemoryScope, opts: SearchOptions): Promise<SearchResult> {
    const [vector] = await this.embedder.embed([opts.query]);
    const results = await this.store.query(scope, { vector: vector as Float32Array, top_k: opts.top_k ?? DEFAULT_TOP_K, model: this.embedder.model, ...(opts.filter ? { filter: opts.filter } : {}) });
    return { results, embedding: { model: this.embedder.model, lexical: this.embedder.lexical }, store: this.store.kind };
  }

  /** Several queries in one scope: one batched embedding call, then one store query each (in parallel). */
  async searchMany(scope: MemoryScope, queries: readonly string[], topK: number): Promise<MemoryMatch[][]> {
    if (queries.length === 0) return [];
    const vectors = await this.embedder.embed(queries);
    return Promise.all(vectors.map((vector) => this.store.query(scope, { vector, top_k: topK, model: this.embedder.model })));
  }

  delete(scope: MemoryScope, ids: readonly string[]): Promise<string[]> {
    return this.store.delete(scope, ids);
  }
}

/** The deployment's memory service. `cache` keeps embeddings (e.g. in the calling object's SQLite). */
export function memoryService(env: MemoryEnv, cache?: EmbeddingCache): MemoryService {
  return new MemoryService(createVectorMemory(env), createEmbedder(env, cache));
}

/** Split a match's metadata into the memory's own fields and whether it is labelled untrusted. */
export function splitMetadata(meta: Metadata): { metadata: Metadata; untrusted: boolean } {
  if (!Object.hasOwn(meta, UNTRUSTED_KEY)) return { metadata: meta, untrusted: false };
  const { [UNTRUSTED_KEY]: flag, ...rest } = meta;
  return { metadata: rest, untrusted: flag === true };
}
