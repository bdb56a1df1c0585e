/**
 * The embedded vector store: exact cosine search over vectors kept in Durable Object SQLite. It is what
 * `wrangler dev` and the tests use (Vectorize has no local simulation), chosen by the VECTORIZE
 * binding's absence.
 *
 * Layout: one MemoryIndex object (durable/memory-index.ts) per (tenant, namespace), so a tenant's
 * vectors never share an object, or a SQLite file, with another tenant's, and a namespace can grow to
 * the object's storage limit without slowing down any other. Rows still carry tenant and namespace,
 * and every statement filters on both.
 *
 * Vectors are stored as Float32 BLOBs (1,536 bytes at 384 dimensions), unit length, so similarity is
 * a dot product. Search is a full scan. Up to CACHE_MAX_VECTORS per namespace the object keeps a
 * contiguous Float32Array copy in memory and scans that; beyond it (the copy would crowd the 128 MB
 * isolate) it streams rows from SQLite. docs/BENCHMARKS.md measures both and where they stop being fast
 * enough; docs/memory.md says when production must use Vectorize.
 */
import type { MemoryIndexApi } from '../rpc/contracts.ts';
import { EMBEDDING_DIMS, type Metadata, matchesFilter } from '../kernel/memory.ts';
import type { MemoryMatch, MemoryQuery, MemoryRecord, MemoryScope, VectorMemory } from './types.ts';
import { type Migration, migrate } from '../storage/migrations.ts';

/** Vectors per namespace kept in memory for scanning: 32,768 × 384 × 4 bytes = 48 MiB. */
export const CACHE_MAX_VECTORS = 32_768;

const SCHEMA = `CREATE TABLE IF NOT EXISTS mem_vectors (
  tenant TEXT NOT NULL,
  ns TEXT NOT NULL,
  id TEXT NOT NULL,
  model TEXT NOT NULL,
  text TEXT NOT NULL,
  metadata TEXT NOT NULL,
  vec BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, ns, id)
) WITHOUT ROWID`;

/** A MemoryIndex object's tables; their history (src/storage/migrations.ts). */
const MEMORY_INDEX_MIGRATIONS: readonly Migration[] = [{ version: 1, description: 'baseline: mem_vectors', up: (sql) => sql.exec(SCHEMA) }];

/** The k best (highest score) of a stream of candidates, kept sorted best first. */
export class TopK {
  readonly ids: string[] = [];
  readonly scores: number[] = [];
  constructor(readonly k: number) {}

  /** The score a candidate must beat to enter. */
  get floor(): number {
    return this.scores.length < this.k ? -Infinity : (this.scores[this.scores.length - 1] as number);
  }

  offer(id: string, score: number): void {
    if (score <= this.floor) return;
    let i = this.scores.length;
    while (i > 0 && (this.scores[i - 1] as number) < score) i--;
    this.scores.splice(i, 0, score);
    this.ids.splice(i, 0, id);
    if (this.scores.length > this.k) {
      this.scores.pop();
      this.ids.pop();
    }
  }
}

/** Dot product of `q` with the vector at `offset` in `m` (both EMBEDDING_DIMS long). */
export function dotAt(q: Float32Array, m: Float32Array, offset: number): number {
  let a = 0;
  let b = 0;
  let c = 0;
  let d = 0;
  const n = q.length;
  let i = 0;
  for (; i + 3 < n; i += 4) {
    a += (q[i] as number) * (m[offset + i] as number);
    b += (q[i + 1] as number) * (m[offset + i + 1] as number);
    c += (q[i + 2] as number) * (m[offset + i + 2] as number);
    d += (q[i + 3] as number) * (m[offset + i + 3] as number);
  }
  for (; i < n; i++) a += (q[i] as number) * (m[offset + i] as number);
  return a + b + c + d;
}

/** An in-memory copy of one namespace's vectors, for scanning. */
class Shard {
  ids: string[] = [];
  models: string[] = [];
  meta: Metadata[] = [];
  matrix = new Float32Array(EMBEDDING_DIMS * 256);
  readonly rowOf = new Map<string, number>();

  get count(): number {
    return this.ids.length;
  }

  set(id: string, model: string, meta: Metadata, vec: Float32Array): void {
    let row = this.rowOf.get(id);
    if (row === undefined) {
      row = this.ids.length;
      if ((row + 1) * EMBEDDING_DIMS > this.matrix.length) {
        const bigger = new Float32Array(this.matrix.length * 2);
        bigger.set(this.matrix);
        this.matrix = bigger;
      }
      this.ids.push(id);
      this.models.push(model);
      this.meta.push(meta);
      this.rowOf.set(id, row);
    } else {
      this.models[row] = model;
      this.meta[row] = meta;
    }
    this.matrix.set(vec, row * EMBEDDING_DIMS);
  }

  /** Remove by moving the last row into the hole. */
  remove(id: string): void {
    const row = this.rowOf.get(id);
    if (row === undefined) return;
    const last = this.ids.length - 1;
    if (row !== last) {
      const lastId = this.ids[last] as string;
      this.ids[row] = lastId;
      this.models[row] = this.models[last] as string;
      this.meta[row] = this.meta[last] as Metadata;
      this.matrix.copyWithin(row * EMBEDDING_DIMS, last * EMBEDDING_DIMS, (last + 1) * EMBEDDING_DIMS);
      this.rowOf.set(lastId, row);
    }
    this.ids.pop();
    this.models.pop();
    this.meta.pop();
    this.rowOf.delete(id);
  }
}

const toBlob = (v: Float32Array): ArrayBuffer => v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength) as ArrayBuffer;

function checkVector(v: Float32Array): void {
  if (v.length !== EMBEDDING_DIMS) throw new Error(`a vector has ${v.length} dimensions; the index holds ${EMBEDDING_DIMS}`);
}

/**
 * The index over one object's SQLite storage (the logic of durable/memory-index.ts). Synchronous:
 * every method runs to completion inside the object, so no two can interleave.
 */
export class EmbeddedIndex {
  readonly #sql: SqlStorage;
  readonly #cacheMax: number;
  readonly #transaction: <T>(fn: () => T) => T;
  /** Per scope; null once the namespace outgrew CACHE_MAX_VECTORS (then queries stream from SQLite). */
  readonly #shards = new Map<string, Shard | null>();

  /** `cacheMaxVectors`: how many vectors of a namespace to scan in memory (0: always stream from SQLite). */
  constructor(storage: DurableObjectStorage, cacheMaxVectors = CACHE_MAX_VECTORS) {
    this.#sql = storage.sql;
    this.#cacheMax = cacheMaxVectors;
    this.#transaction = (fn) => storage.transactionSync(fn);
    migrate(storage, MEMORY_INDEX_MIGRATIONS);
  }

  #key(scope: MemoryScope): string {
    return JSON.stringify([scope.tenant, scope.namespace]);
  }

  /** The scope's in-memory shard, loaded on first use; null if the namespace is too big to cache. */
  #shard(scope: MemoryScope): Shard | null {
    const key = this.#key(scope);
    const known = this.#shards.get(key);
    if (known !== undefined) return known;
    const count = this.count(scope);
    if (count > this.#cacheMax || this.#cacheMax === 0) {
      this.#shards.set(key, null);
      return null;
    }
    const shard = new Shard();
    shard.matrix = new Float32Array(EMBEDDING_DIMS * Math.max(256, count));
    for (const r of this.#sql.exec<{ id: string; model: string; metadata: string; vec: ArrayBuffer }>('SELECT id, model, metadata, vec FROM mem_vectors WHERE tenant = ? AND ns = ?', scope.tenant, scope.namespace)) {
      shard.set(r.id, r.model, JSON.parse(r.metadata) as Metadata, new Float32Array(r.vec));
    }
    this.#shards.set(key, shard);
    return shard;
  }

  count(scope: MemoryScope): number {
    return this.#sql.exec<{ n: number }>('SELECT count(*) AS n FROM mem_vectors WHERE tenant = ? AND ns = ?', scope.tenant, scope.namespace).one().n;
  }

  upsert(scope: MemoryScope, records: readonly MemoryRecord[]): void {
    for (const r of records) checkVector(r.vector);
    const shard = this.#shard(scope);
    this.#transaction(() => {
      for (const r of records) {
        this.#sql.exec(
          `INSERT INTO mem_vectors (tenant, ns, id, model, text, metadata, vec, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (tenant, ns, id) DO UPDATE SET model = excluded.model, text = excluded.text, metadata = excluded.metadata, vec = excluded.vec, created_at = excluded.created_at`,
          scope.tenant,
          scope.namespace,
          r.id,
          r.model,
          r.text,
          JSON.stringify(r.metadata),
          toBlob(r.vector),
          r.created_at,
        );
      }
    });
    if (!shard) return;
    for (const r of records) shard.set(r.id, r.model, r.metadata, r.vector);
    // Outgrown: drop the copy and stream from SQLite from now on.
    if (shard.count > this.#cacheMax) this.#shards.set(this.#key(scope), null);
  }

  query(scope: MemoryScope, q: MemoryQuery): MemoryMatch[] {
    checkVector(q.vector);
    const top = new TopK(q.top_k);
    const shard = this.#shard(scope);
    if (shard) {
      const { matrix, ids, models, meta } = shard;
      for (let row = 0; row < ids.length; row++) {
        if (models[row] !== q.model || (q.filter && !matchesFilter(meta[row] as Metadata, q.filter))) continue;
        top.offer(ids[row] as string, dotAt(q.vector, matrix, row * EMBEDDING_DIMS));
      }
    } else {
      const cursor = this.#sql.exec<{ id: string; metadata: string; vec: ArrayBuffer }>('SELECT id, metadata, vec FROM mem_vectors WHERE tenant = ? AND ns = ? AND model = ?', scope.tenant, scope.namespace, q.model);
      for (const r of cursor) {
        if (q.filter && !matchesFilter(JSON.parse(r.metadata) as Metadata, q.filter)) continue;
        top.offer(r.id, dotAt(q.vector, new Float32Array(r.vec), 0));
      }
    }
    if (top.ids.length === 0) return [];
    const rows = new Map<string, { text: string; metadata: string; created_at: number }>();
    const marks = top.ids.map(() => '?').join(',');
    for (const r of this.#sql.exec<{ id: string; text: string; metadata: string; created_at: number }>(`SELECT id, text, metadata, created_at FROM mem_vectors WHERE tenant = ? AND ns = ? AND id IN (${marks})`, scope.tenant, scope.namespace, ...top.ids)) {
      rows.set(r.id, r);
    }
    return top.ids.flatMap((id, i) => {
      const r = rows.get(id);
      return r ? [{ id, score: top.scores[i] as number, text: r.text, metadata: JSON.parse(r.metadata) as Metadata, created_at: r.created_at }] : [];
    });
  }

  delete(scope: MemoryScope, ids: readonly string[]): string[] {
    const gone: string[] = [];
    this.#transaction(() => {
      for (const id of ids) {
        const c = this.#sql.exec('DELETE FROM mem_vectors WHERE tenant = ? AND ns = ? AND id = ?', scope.tenant, scope.namespace, id);
        if (c.rowsWritten > 0) gone.push(id);
      }
    });
    const shard = this.#shards.get(this.#key(scope));
    if (shard) for (const id of gone) shard.remove(id);
    else if (shard === null && this.count(scope) <= this.#cacheMax) this.#shards.delete(this.#key(scope));
    return gone;
  }
}

/** The name of the object that holds a scope. */
export function indexName(scope: MemoryScope): string {
  return JSON.stringify([scope.tenant, scope.namespace]);
}

/** VectorMemory over MemoryIndex objects: one per (tenant, namespace). */
export class EmbeddedMemory implements VectorMemory {
  readonly kind = 'embedded' as const;
  readonly #ns: Env['MEMORY_INDEX'];

  constructor(ns: Env['MEMORY_INDEX']) {
    this.#ns = ns;
  }

  #stub(scope: MemoryScope): MemoryIndexApi {
    return this.#ns.get(this.#ns.idFromName(indexName(scope))) as unknown as MemoryIndexApi;
  }

  upsert(scope: MemoryScope, records: readonly MemoryRecord[]): Promise<void> {
    return records.length === 0 ? Promise.resolve() : this.#stub(scope).upsert(scope, records);
  }

  query(scope: MemoryScope, query: MemoryQuery): Promise<MemoryMatch[]> {
    return this.#stub(scope).query(scope, query);
  }

  delete(scope: MemoryScope, ids: readonly string[]): Promise<string[]> {
    return ids.length === 0 ? Promise.resolve([]) : this.#stub(scope).remove(scope, ids);
  }
}
