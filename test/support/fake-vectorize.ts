/**
 * A fake Vectorize binding for tests (Vectorize has no local simulation). It keeps vectors in memory
 * and answers queries by cosine similarity, and it enforces the platform's documented limits so an
 * adapter that breaks one fails here rather than in production: at most 1,000 vectors per upsert
 * (Workers), ids ≤ 64 bytes, exactly `dimensions` values, metadata ≤ 10 KiB, namespace ≤ 64 bytes,
 * topK ≤ 20 when values or metadata are returned (≤ 100 otherwise), filters ≤ 2 KiB, and filters on
 * a property without a metadata index match nothing (as in Vectorize). Vector ids are unique across
 * the index, whatever their namespace. Every call is recorded in `calls`.
 */
import { type Filter, type Metadata, matchesFilter } from '../../src/kernel/memory.ts';
import type { VectorizeBinding } from '../../src/memory/vectorize.ts';

export type Call = { method: 'upsert'; vectors: VectorizeVector[] } | { method: 'query'; vector: number[]; options: VectorizeQueryOptions } | { method: 'getByIds' | 'deleteByIds'; ids: string[] };

const bytes = (s: string) => new TextEncoder().encode(s).byteLength;

export class FakeVectorize implements VectorizeBinding {
  readonly calls: Call[] = [];
  readonly #vectors = new Map<string, VectorizeVector>();
  readonly #indexed: Set<string>;
  #mutations = 0;

  constructor(
    readonly dimensions = 384,
    indexed: readonly string[] = ['_tenant', '_ns', '_model'],
  ) {
    this.#indexed = new Set(indexed);
  }

  get size(): number {
    return this.#vectors.size;
  }

  async upsert(vectors: VectorizeVector[]): Promise<VectorizeAsyncMutation> {
    this.calls.push({ method: 'upsert', vectors });
    if (vectors.length > 1000) throw new Error(`VECTOR_UPSERT_ERROR: batch of ${vectors.length} exceeds 1000`);
    for (const v of vectors) {
      if (bytes(v.id) > 64) throw new Error(`vector id over 64 bytes: ${v.id}`);
      if (v.values.length !== this.dimensions) throw new Error(`vector ${v.id} has ${v.values.length} dimensions, index has ${this.dimensions}`);
      if (v.namespace !== undefined && bytes(v.namespace) > 64) throw new Error('namespace over 64 bytes');
      if (bytes(JSON.stringify(v.metadata ?? {})) > 10 * 1024) throw new Error(`metadata of ${v.id} over 10 KiB`);
      for (const k of Object.keys(v.metadata ?? {})) if (k === '' || k.includes('.') || k.includes('"') || k.startsWith('$')) throw new Error(`invalid metadata key ${k}`);
      this.#vectors.set(v.id, { ...v, values: Array.from(v.values) });
    }
    return { mutationId: `m${++this.#mutations}` };
  }

  async query(vector: VectorFloatArray | number[], options: VectorizeQueryOptions = {}): Promise<VectorizeMatches> {
    this.calls.push({ method: 'query', vector: Array.from(vector), options });
    const topK = options.topK ?? 5;
    const heavy = options.returnValues === true || options.returnMetadata === 'all' || options.returnMetadata === true;
    if (topK > (heavy ? 20 : 100)) throw new Error(`topK ${topK} exceeds ${heavy ? 20 : 100}`);
    if (options.filter && bytes(JSON.stringify(options.filter)) > 2048) throw new Error('filter over 2 KiB');
    if (vector.length !== this.dimensions) throw new Error('query dimensions differ from the index');
    const filter = (options.filter ?? {}) as Filter;
    const unindexed = Object.keys(filter).some((k) => !this.#indexed.has(k));
    const q = Array.from(vector);
    const norm = (xs: number[]) => Math.sqrt(xs.reduce((s, x) => s + x * x, 0)) || 1;
    const matches = unindexed
      ? []
      : [...this.#vectors.values()]
          .filter((v) => (v.namespace ?? '') === (options.namespace ?? '') && matchesFilter((v.metadata ?? {}) as Metadata, filter))
          .map((v) => {
            const values = v.values as number[];
            const score = values.reduce((s, x, i) => s + x * (q[i] as number), 0) / (norm(values) * norm(q));
            return { id: v.id, score, ...(options.namespace ? { namespace: options.namespace } : {}), ...(options.returnMetadata === 'all' || options.returnMetadata === true ? { metadata: v.metadata ?? {} } : {}) };
          })
          .sort((a, b) => b.score - a.score)
          .slice(0, topK);
    return { matches, count: matches.length };
  }

  async getByIds(ids: string[]): Promise<VectorizeVector[]> {
    this.calls.push({ method: 'getByIds', ids });
    return ids.flatMap((id) => {
      const v = this.#vectors.get(id);
      return v ? [v] : [];
    });
  }

  async deleteByIds(ids: string[]): Promise<VectorizeAsyncMutation> {
    this.calls.push({ method: 'deleteByIds', ids });
    for (const id of ids) this.#vectors.delete(id);
    return { mutationId: `m${++this.#mutations}` };
  }

  async describe(): Promise<VectorizeIndexInfo> {
    return { vectorCount: this.#vectors.size, dimensions: this.dimensions, processedUpToDatetime: 0, processedUpToMutation: this.#mutations };
  }
}
