/**
 * The Vectorize store (production), chosen when the VECTORIZE binding exists. One index
 * (384 dimensions, cosine) holds every tenant:
 *
 *  - Vectorize namespace = `t-` + SHA-256(tenant) (42 bytes; the limit is 64, and an index holds
 *    50,000 namespaces on the paid plan). Every query names it, so a query is confined to its
 *    tenant's partition before any filter runs.
 *  - Vector id = SHA-256 of [tenant, namespace, memory id], cut to 48 hex characters (the limit is
 *    64 bytes). An id from one scope can never name a vector of another, so delete is confined too.
 *  - Metadata: the memory's own fields, plus the kernel's, which start with "_" (user keys cannot):
 *    `_tenant`, `_ns`, `_model` (filtered on every query: each needs a metadata index, see
 *    docs/memory.md), `_id`, `_text`, `_at`. All of it is capped at Vectorize's 10 KiB.
 *  - Queries ask for metadata (`returnMetadata: "all"`), so topK is capped at 20, and never for values.
 *  - Upserts go in batches of at most 1,000 vectors (the Workers binding's limit).
 * Vectorize applies mutations asynchronously: a memory is searchable a few seconds after mem_write
 * returns, unlike the embedded store.
 */
import { EMBEDDING_DIMS, MAX_TOP_K, type Metadata } from '../kernel/memory.ts';
import { KernelError } from '../kernel/errors.ts';
import { sha256Hex } from '../kernel/policy.ts';
import type { MemoryMatch, MemoryQuery, MemoryRecord, MemoryScope, VectorMemory } from './types.ts';

/** The binding's methods this adapter calls. */
export type VectorizeBinding = Pick<Vectorize, 'upsert' | 'query' | 'getByIds' | 'deleteByIds'>;

export const VECTORIZE_MAX_UPSERT = 1000;
export const VECTORIZE_MAX_METADATA_BYTES = 10 * 1024;
export const VECTORIZE_MAX_ID_BYTES = 64;

type Stored = Record<string, VectorizeVectorMetadataValue>;

const bytes = (s: string) => new TextEncoder().encode(s).byteLength;

export async function vectorizeNamespace(tenant: string): Promise<string> {
  return `t-${(await sha256Hex(tenant)).slice(0, 40)}`;
}

export async function vectorizeId(scope: MemoryScope, id: string): Promise<string> {
  return (await sha256Hex(JSON.stringify([scope.tenant, scope.namespace, id]))).slice(0, 48);
}

/** The fields this adapter adds to a memory's metadata (others, such as the service's `_untrusted`, pass through). */
const STORAGE_FIELDS = new Set(['_tenant', '_ns', '_model', '_id', '_text', '_at']);

/** A memory's metadata as it was written. */
function userMetadata(stored: Stored): Metadata {
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(stored)) if (!STORAGE_FIELDS.has(k) && !Array.isArray(v)) out[k] = v;
  return out;
}

export class VectorizeMemory implements VectorMemory {
  readonly kind = 'vectorize' as const;
  readonly #index: VectorizeBinding;

  constructor(index: VectorizeBinding) {
    this.#index = index;
  }

  async upsert(scope: MemoryScope, records: readonly MemoryRecord[]): Promise<void> {
    const namespace = await vectorizeNamespace(scope.tenant);
    const vectors: VectorizeVector[] = [];
    for (const r of records) {
      if (r.vector.length !== EMBEDDING_DIMS) throw new KernelError('EINVAL', `a vector has ${r.vector.length} dimensions; the index holds ${EMBEDDING_DIMS}`);
      const metadata: Stored = { ...r.metadata, _tenant: scope.tenant, _ns: scope.namespace, _model: r.model, _id: r.id, _text: r.text, _at: r.created_at };
      const size = bytes(JSON.stringify(metadata));
      if (size > VECTORIZE_MAX_METADATA_BYTES) throw new KernelError('E2BIG', `a memory's text and metadata come to ${size} bytes; Vectorize keeps at most ${VECTORIZE_MAX_METADATA_BYTES}`, { bytes: size });
      vectors.push({ id: await vectorizeId(scope, r.id), values: r.vector, namespace, metadata });
    }
    for (let i = 0; i < vectors.length; i += VECTORIZE_MAX_UPSERT) {
      try {
        await this.#index.upsert(vectors.slice(i, i + VECTORIZE_MAX_UPSERT));
      } catch (e) {
        throw new KernelError('EIO', `Vectorize upsert failed: ${(e as Error).message}`);
      }
    }
  }

  async query(scope: MemoryScope, q: MemoryQuery): Promise<MemoryMatch[]> {
    if (q.top_k < 1 || q.top_k > MAX_TOP_K) throw new KernelError('EINVAL', `top_k must be 1–${MAX_TOP_K} (Vectorize's limit when metadata is returned)`);
    const namespace = await vectorizeNamespace(scope.tenant);
    let res: VectorizeMatches;
    try {
      res = await this.#index.query(q.vector, {
        topK: q.top_k,
        namespace,
        returnValues: false,
        returnMetadata: 'all',
        filter: { ...(q.filter ?? {}), _tenant: scope.tenant, _ns: scope.namespace, _model: q.model },
      });
    } catch (e) {
      throw new KernelError('EIO', `Vectorize query failed: ${(e as Error).message}`);
    }
    const out: MemoryMatch[] = [];
    for (const m of res.matches) {
      const meta = (m.metadata ?? {}) as Stored;
      // The namespace and filter already confine the query; a match outside the scope would be a bug, and is dropped.
      if (meta._tenant !== scope.tenant || meta._ns !== scope.namespace || typeof meta._id !== 'string') continue;
      out.push({ id: meta._id, score: m.score, text: String(meta._text ?? ''), metadata: userMetadata(meta), created_at: Number(meta._at ?? 0) });
    }
    return out.sort((a, b) => b.score - a.score);
  }

  async delete(scope: MemoryScope, ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const byVid = new Map<string, string>();
    for (const id of ids) byVid.set(await vectorizeId(scope, id), id);
    try {
      const existing = (await this.#index.getByIds([...byVid.keys()])).filter((v) => {
        const meta = (v.metadata ?? {}) as Stored;
        return meta._tenant === scope.tenant && meta._ns === scope.namespace;
      });
      if (existing.length === 0) return [];
      await this.#index.deleteByIds(existing.map((v) => v.id));
      return existing.map((v) => byVid.get(v.id) as string);
    } catch (e) {
      throw new KernelError('EIO', `Vectorize delete failed: ${(e as Error).message}`);
    }
  }
}
