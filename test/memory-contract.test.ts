/**
 * The VectorMemory contract: both stores, the embedded SQLite index (MemoryIndex objects) and the
 * Vectorize adapter (over a fake binding that enforces Vectorize's limits), pass the same suite.
 */
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { EMBEDDING_DIMS } from '../src/kernel/memory.ts';
import { EmbeddedMemory } from '../src/memory/embedded.ts';
import type { MemoryRecord, MemoryScope, VectorMemory } from '../src/memory/types.ts';
import { VectorizeMemory } from '../src/memory/vectorize.ts';
import { FakeVectorize } from './support/fake-vectorize.ts';

/** A unit vector with the given weights on the first dimensions. */
function vec(...weights: number[]): Float32Array {
  const v = new Float32Array(EMBEDDING_DIMS);
  weights.forEach((w, i) => (v[i] = w));
  const n = Math.hypot(...weights) || 1;
  return v.map((x) => x / n);
}

const MODEL = 'test-model';
const rec = (id: string, vector: Float32Array, metadata: Record<string, string | number | boolean> = {}, text = `text of ${id}`): MemoryRecord => ({ id, text, metadata, vector, model: MODEL, created_at: 1000 });

const stores: [string, () => VectorMemory][] = [
  ['embedded', () => new EmbeddedMemory(env.MEMORY_INDEX)],
  ['vectorize', () => new VectorizeMemory(new FakeVectorize(EMBEDDING_DIMS, ['_tenant', '_ns', '_model', 'topic', 'year']))],
];

let n = 0;
/** A fresh scope per test (storage is shared within the file). */
const fresh = (tenant = `t${++n}`): MemoryScope => ({ tenant, namespace: `ns/${n}` });

describe.each(stores)('VectorMemory contract: %s', (_name, make) => {
  it('returns matches best first, with scores, text, metadata and time; top_k bounds the count', async () => {
    const store = make();
    const s = fresh();
    await store.upsert(s, [rec('c', vec(0, 1)), rec('a', vec(1, 0), { topic: 'x' }), rec('d', vec(-1, 0)), rec('b', vec(1, 1))]);
    const all = await store.query(s, { vector: vec(1, 0), top_k: 10, model: MODEL });
    expect(all.map((m) => m.id)).toEqual(['a', 'b', 'c', 'd']);
    expect(all.map((m) => Number(m.score.toFixed(3)))).toEqual([1, 0.707, 0, -1]);
    expect(all[0]).toMatchObject({ id: 'a', text: 'text of a', metadata: { topic: 'x' }, created_at: 1000 });
    expect((await store.query(s, { vector: vec(1, 0), top_k: 2, model: MODEL })).map((m) => m.id)).toEqual(['a', 'b']);
  });

  it('upserts: writing an id again replaces it', async () => {
    const store = make();
    const s = fresh();
    await store.upsert(s, [rec('a', vec(1, 0), {}, 'first')]);
    await store.upsert(s, [rec('a', vec(0, 1), { topic: 'new' }, 'second')]);
    const hits = await store.query(s, { vector: vec(0, 1), top_k: 5, model: MODEL });
    expect(hits).toHaveLength(1);
    expect(hits[0]).toMatchObject({ id: 'a', text: 'second', metadata: { topic: 'new' } });
    expect(hits[0]?.score).toBeCloseTo(1, 5);
  });

  it('filters on metadata: equality, ranges, sets, and every condition must hold', async () => {
    const store = make();
    const s = fresh();
    await store.upsert(s, [
      rec('a', vec(1, 0.1), { topic: 'billing', year: 2023 }),
      rec('b', vec(1, 0.2), { topic: 'billing', year: 2025 }),
      rec('c', vec(1, 0.3), { topic: 'shipping', year: 2025 }),
      rec('d', vec(1, 0.4), { year: 2024 }),
    ]);
    const ids = async (filter: Record<string, unknown>) => (await store.query(s, { vector: vec(1, 0), top_k: 10, model: MODEL, filter: filter as never })).map((m) => m.id).sort();
    expect(await ids({ topic: 'billing' })).toEqual(['a', 'b']);
    expect(await ids({ topic: { $ne: 'billing' } })).toEqual(['c', 'd']);
    expect(await ids({ year: { $gte: 2024, $lt: 2025 } })).toEqual(['d']);
    expect(await ids({ topic: { $in: ['shipping', 'returns'] } })).toEqual(['c']);
    expect(await ids({ topic: { $nin: ['billing'] } })).toEqual(['c', 'd']);
    expect(await ids({ topic: 'billing', year: 2025 })).toEqual(['b']);
    expect(await ids({ topic: 'nothing' })).toEqual([]);
  });

  it('keeps namespaces apart: the same id in two namespaces is two memories', async () => {
    const store = make();
    const tenant = `t${++n}`;
    const one = { tenant, namespace: 'team/one' };
    const two = { tenant, namespace: 'team/two' };
    await store.upsert(one, [rec('same', vec(1, 0), {}, 'in one')]);
    await store.upsert(two, [rec('same', vec(1, 0), {}, 'in two'), rec('other', vec(0, 1))]);
    expect((await store.query(one, { vector: vec(1, 0), top_k: 10, model: MODEL })).map((m) => m.text)).toEqual(['in one']);
    expect(await store.delete(one, ['same', 'other'])).toEqual(['same']);
    expect((await store.query(two, { vector: vec(1, 0), top_k: 10, model: MODEL })).map((m) => m.text)).toEqual(['in two', 'text of other']);
  });

  it('deletes by id: returns the ids that existed, and they are no longer found', async () => {
    const store = make();
    const s = fresh();
    await store.upsert(s, [rec('a', vec(1, 0)), rec('b', vec(1, 1))]);
    expect(await store.delete(s, ['a', 'missing'])).toEqual(['a']);
    expect(await store.delete(s, ['a'])).toEqual([]);
    expect((await store.query(s, { vector: vec(1, 0), top_k: 10, model: MODEL })).map((m) => m.id)).toEqual(['b']);
  });

  it('never crosses tenants: not by search, not by id', async () => {
    const store = make();
    const a = { tenant: `acme${++n}`, namespace: 'tenant' };
    const b = { tenant: `globex${n}`, namespace: 'tenant' };
    await store.upsert(a, [rec('m1', vec(1, 0), {}, 'acme secret')]);
    await store.upsert(b, [rec('m1', vec(1, 0), {}, 'globex secret')]);
    expect((await store.query(a, { vector: vec(1, 0), top_k: 20, model: MODEL })).map((m) => m.text)).toEqual(['acme secret']);
    expect(await store.delete(b, ['m1'])).toEqual(['m1']);
    expect((await store.query(b, { vector: vec(1, 0), top_k: 20, model: MODEL }))).toEqual([]);
    expect((await store.query(a, { vector: vec(1, 0), top_k: 20, model: MODEL })).map((m) => m.text)).toEqual(['acme secret']);
  });

  it('only compares vectors of the same embedding model', async () => {
    const store = make();
    const s = fresh();
    await store.upsert(s, [rec('old', vec(1, 0)), { ...rec('new', vec(1, 0)), model: 'other-model' }]);
    expect((await store.query(s, { vector: vec(1, 0), top_k: 5, model: 'other-model' })).map((m) => m.id)).toEqual(['new']);
  });

  it('an empty namespace returns no matches', async () => {
    expect(await make().query(fresh(), { vector: vec(1, 0), top_k: 5, model: MODEL })).toEqual([]);
  });
});
