/**
 * MemoryIndex: one Durable Object per (tenant, memory namespace), holding that namespace's vectors in
 * its SQLite storage and searching them exactly (src/memory/embedded.ts). Used where no Vectorize
 * binding is configured: `wrangler dev` and the tests. A thin shell: the index logic is in src/memory.
 */
import { DurableObject } from 'cloudflare:workers';
import { CACHE_MAX_VECTORS, EmbeddedIndex } from '../src/memory/embedded.ts';
import type { MemoryIndexApi } from '../src/rpc/contracts.ts';
import type { MemoryMatch, MemoryQuery, MemoryRecord, MemoryScope } from '../src/memory/types.ts';

export class MemoryIndex extends DurableObject<Env> implements MemoryIndexApi {
  readonly #index: EmbeddedIndex;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#index = new EmbeddedIndex(ctx.storage, this.cacheMaxVectors());
  }

  /** Vectors per namespace scanned from memory rather than SQLite (benchmarks override it). */
  protected cacheMaxVectors(): number {
    return CACHE_MAX_VECTORS;
  }

  async upsert(scope: MemoryScope, records: readonly MemoryRecord[]): Promise<void> {
    this.#index.upsert(scope, records);
  }

  async query(scope: MemoryScope, query: MemoryQuery): Promise<MemoryMatch[]> {
    return this.#index.query(scope, query);
  }

  async remove(scope: MemoryScope, ids: readonly string[]): Promise<string[]> {
    return this.#index.delete(scope, ids);
  }

  async count(scope: MemoryScope): Promise<number> {
    return this.#index.count(scope);
  }
}
