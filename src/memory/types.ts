/**
 * The one interface both vector stores implement (Vectorize in production, the embedded SQLite index
 * locally), and the records they hold. A store only keeps and searches vectors; embedding text is the
 * embedder's job (./embeddings.ts) and the service (./service.ts) ties the two together.
 *
 * Invariants every implementation keeps (test/memory-contract.test.ts checks both):
 *  - A scope is (tenant, namespace). Every read, write and delete names one, and nothing a call does
 *    reaches a vector of another scope: not by search, not by id.
 *  - Vectors are unit length (the embedders normalise), so cosine similarity is their dot product;
 *    scores are in [-1, 1], higher is closer, and results come best first.
 *  - Search only returns vectors made by the same embedding model as the query.
 *  - Writes are upserts by id: writing the same id again replaces it (idempotent replay).
 */
import type { Filter, Metadata } from '../kernel/memory.ts';

export interface MemoryScope {
  readonly tenant: string;
  /** The stored namespace name (`proc/<pid>`, `pages/<pid>`, `tenant`, `image/x` …). */
  readonly namespace: string;
}

export interface MemoryRecord {
  readonly id: string;
  readonly text: string;
  readonly metadata: Metadata;
  /** Unit length, EMBEDDING_DIMS long. */
  readonly vector: Float32Array;
  /** The embedding model that made the vector. */
  readonly model: string;
  readonly created_at: number;
}

export interface MemoryMatch {
  readonly id: string;
  readonly score: number;
  readonly text: string;
  readonly metadata: Metadata;
  readonly created_at: number;
}

export interface MemoryQuery {
  readonly vector: Float32Array;
  readonly top_k: number;
  readonly model: string;
  readonly filter?: Filter;
}

export interface VectorMemory {
  /** Which implementation this is (reported by search results and the API). */
  readonly kind: 'vectorize' | 'embedded';
  upsert(scope: MemoryScope, records: readonly MemoryRecord[]): Promise<void>;
  query(scope: MemoryScope, query: MemoryQuery): Promise<MemoryMatch[]>;
  /** Delete by id; returns the ids that existed (in this scope) and are now gone. */
  delete(scope: MemoryScope, ids: readonly string[]): Promise<string[]>;
}
