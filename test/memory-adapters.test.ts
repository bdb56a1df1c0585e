/**
 * The adapters at their edges: the exact calls the Vectorize adapter makes (it has no local
 * simulation), and the embedders: the OpenAI-compatible one against the fake server (batching, cache
 * by content hash, dimension check) and the lexical one (deterministic, and lexical).
 */
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { EMBEDDING_DIMS } from '../src/kernel/memory.ts';
import { CachedEmbedder, LexicalEmbedder, LruEmbeddingCache, OpenAiEmbedder, WorkersAiEmbedder, createEmbedder } from '../src/memory/embeddings.ts';
import { MemoryService } from '../src/memory/service.ts';
import { VectorizeMemory, vectorizeId, vectorizeNamespace } from '../src/memory/vectorize.ts';
import { FakeVectorize } from './support/fake-vectorize.ts';

const unit = (i: number) => {
  const v = new Float32Array(EMBEDDING_DIMS);
  v[i] = 1;
  return v;
};
const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * (b[i] as number), 0);

describe('Vectorize adapter: the exact calls', () => {
  it('upserts into the tenant namespace under a scope-derived id, with the kernel fields in metadata', async () => {
    const fake = new FakeVectorize();
    const store = new VectorizeMemory(fake);
    const scope = { tenant: 'acme', namespace: 'proc/p123' };
    await store.upsert(scope, [{ id: 'm_1', text: 'hello', metadata: { topic: 'x' }, vector: unit(0), model: 'mdl', created_at: 42 }]);
    const ns = await vectorizeNamespace('acme');
    expect(ns).toMatch(/^t-[0-9a-f]{40}$/);
    expect(fake.calls).toEqual([
      {
        method: 'upsert',
        vectors: [{ id: await vectorizeId(scope, 'm_1'), values: unit(0), namespace: ns, metadata: { topic: 'x', _tenant: 'acme', _ns: 'proc/p123', _model: 'mdl', _id: 'm_1', _text: 'hello', _at: 42 } }],
      },
    ]);
    expect(await vectorizeId(scope, 'm_1')).not.toBe(await vectorizeId({ tenant: 'other', namespace: 'proc/p123' }, 'm_1'));
  });

  it('queries with namespace, topK, metadata and no values, and the scope and model ANDed into the filter', async () => {
    const fake = new FakeVectorize();
    const store = new VectorizeMemory(fake);
    const scope = { tenant: 'acme', namespace: 'tenant' };
    await store.query(scope, { vector: unit(1), top_k: 3, model: 'mdl', filter: { topic: 'x' } });
    expect(fake.calls).toEqual([
      {
        method: 'query',
        vector: Array.from(unit(1)),
        options: { topK: 3, namespace: await vectorizeNamespace('acme'), returnValues: false, returnMetadata: 'all', filter: { topic: 'x', _tenant: 'acme', _ns: 'tenant', _model: 'mdl' } },
      },
    ]);
    await expect(store.query(scope, { vector: unit(1), top_k: 21, model: 'mdl' })).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('deletes only what exists in the scope: getByIds, then deleteByIds of those', async () => {
    const fake = new FakeVectorize();
    const store = new VectorizeMemory(fake);
    const scope = { tenant: 'acme', namespace: 'tenant' };
    await store.upsert(scope, [{ id: 'a', text: 't', metadata: {}, vector: unit(0), model: 'm', created_at: 1 }]);
    fake.calls.length = 0;
    expect(await store.delete(scope, ['a', 'b'])).toEqual(['a']);
    const [va, vb] = [await vectorizeId(scope, 'a'), await vectorizeId(scope, 'b')];
    expect(fake.calls).toEqual([
      { method: 'getByIds', ids: [va, vb] },
      { method: 'deleteByIds', ids: [va] },
    ]);
    fake.calls.length = 0;
    expect(await store.delete(scope, ['b'])).toEqual([]);
    expect(fake.calls.map((c) => c.method)).toEqual(['getByIds']);
  });

  it('splits upserts into batches of 1,000 and refuses metadata over 10 KiB before calling', async () => {
    const fake = new FakeVectorize();
    const store = new VectorizeMemory(fake);
    const scope = { tenant: 'acme', namespace: 'kb' };
    const records = Array.from({ length: 2500 }, (_, i) => ({ id: `r${i}`, text: 'x', metadata: {}, vector: unit(i % EMBEDDING_DIMS), model: 'm', created_at: 1 }));
    await store.upsert(scope, records);
    expect(fake.calls.map((c) => (c.method === 'upsert' ? c.vectors.length : 0))).toEqual([1000, 1000, 500]);
    fake.calls.length = 0;
    await expect(store.upsert(scope, [{ id: 'big', text: 'é'.repeat(5200), metadata: {}, vector: unit(0), model: 'm', created_at: 1 }])).rejects.toMatchObject({ code: 'E2BIG' });
    expect(fake.calls).toEqual([]);
  });
});

describe('embeddings', () => {
  const base = () => `${env.TEST_SERVER}/llm/openai/v1`;
  const requests = async (model: string) => (await (await fetch(`${env.TEST_SERVER}/llm/requests/${model}`)).json()) as { body: { input: string[]; dimensions: number; model: string } }[];

  it('OpenAI-compatible: asks for 384 dimensions, deduplicates, batches misses and caches by content hash', async () => {
    const model = `emb-${crypto.randomUUID()}`;
    const embedder = new CachedEmbedder(new OpenAiEmbedder({ model, apiKey: 'sk-test', baseURL: base() }), new LruEmbeddingCache(1000));
    const [a, b, a2] = await embedder.embed(['alpha', 'beta', 'alpha']);
    expect(a).toHaveLength(EMBEDDING_DIMS);
    expect(dot(a as Float32Array, a as Float32Array)).toBeCloseTo(1, 5);
    expect(a2).toEqual(a);
    expect(dot(a as Float32Array, b as Float32Array)).toBeLessThan(0.99);
    let sent = await requests(model);
    expect(sent.map((r) => r.body.input)).toEqual([['alpha', 'beta']]);
    expect(sent[0]?.body).toMatchObject({ model, dimensions: EMBEDDING_DIMS, encoding_format: 'float' });
    // Cached: no request. New texts: 130 misses go in ceil(130 / 64) = 3 requests.
    await embedder.embed(['beta', 'alpha']);
    await embedder.embed(Array.from({ length: 130 }, (_, i) => `text ${i}`));
    sent = await requests(model);
    expect(sent.map((r) => r.body.input.length)).toEqual([2, 64, 64, 2]);
  });

  it('refuses an endpoint that answers with another dimension (EIO), and a misconfiguration (EINVAL)', async () => {
    const embedder = new OpenAiEmbedder({ model: 'dims-768', apiKey: 'sk-test', baseURL: base() });
    await expect(embedder.embed(['x'])).rejects.toMatchObject({ code: 'EIO', message: expect.stringMatching(/768-dimensional/) });
    expect(() => createEmbedder({ EMBEDDING_PROVIDER: 'workers-ai' })).toThrow(/no AI binding/);
    expect(() => createEmbedder({ EMBEDDING_PROVIDER: 'magic' })).toThrow(/unknown EMBEDDING_PROVIDER/);
    expect(createEmbedder({}).model).toBe('lexical-hash-v1');
  });

  it('Workers AI: one run per batch of up to 100 texts with the bge model', async () => {
    const runs: { model: string; input: Record<string, unknown> }[] = [];
    const ai = {
      run: async (model: string, input: Record<string, unknown>) => {
        runs.push({ model, input });
        const texts = input.text as string[];
        return { shape: [texts.length, EMBEDDING_DIMS], data: texts.map((_, i) => Array.from(unit(i % EMBEDDING_DIMS))) };
      },
    };
    const embedder = createEmbedder({ AI: ai }, new LruEmbeddingCache(1000));
    expect(embedder.model).toBe('@cf/baai/bge-small-en-v1.5');
    await embedder.embed(Array.from({ length: 150 }, (_, i) => `t${i}`));
    expect(runs.map((r) => [r.model, (r.input.text as string[]).length])).toEqual([
      ['@cf/baai/bge-small-en-v1.5', 100],
      ['@cf/baai/bge-small-en-v1.5', 50],
    ]);
    await expect(new WorkersAiEmbedder({ run: async () => ({ data: [[1, 2]] }) }).embed(['x'])).rejects.toMatchObject({ code: 'EIO' });
  });

  it('lexical: deterministic unit vectors that see shared words and stems, not meaning', async () => {
    const lex = new LexicalEmbedder();
    const [q, same, stem, synonym, other] = await lex.embed(['the invoice was paid late', 'the invoice was paid late', 'late invoices get paid', 'the bill was settled after the due date', 'penguins live in antarctica']);
    expect(same).toEqual(q);
    expect(dot(q as Float32Array, q as Float32Array)).toBeCloseTo(1, 5);
    expect(dot(q as Float32Array, stem as Float32Array)).toBeGreaterThan(0.4);
    expect(dot(q as Float32Array, stem as Float32Array)).toBeGreaterThan(dot(q as Float32Array, synonym as Float32Array) + 0.2);
    expect(Math.abs(dot(q as Float32Array, other as Float32Array))).toBeLessThan(0.15);
    expect(lex).toMatchObject({ model: 'lexical-hash-v1', lexical: true });
  });

  it('the service embeds a batch in one call and searches with the same model', async () => {
    const model = `emb-${crypto.randomUUID()}`;
    const embedder = new CachedEmbedder(new OpenAiEmbedder({ model, apiKey: 'sk-test', baseURL: base() }), new LruEmbeddingCache(1000));
    const service = new MemoryService(new VectorizeMemory(new FakeVectorize()), embedder, () => 7);
    const scope = { tenant: 'acme', namespace: 'kb' };
    await service.write(scope, [
      { id: 'a', text: 'first fact' },
      { id: 'b', text: 'second fact', metadata: { k: 1 } },
    ]);
    const found = await service.search(scope, { query: 'second fact', top_k: 1 });
    expect(found).toMatchObject({ store: 'vectorize', embedding: { model, lexical: false }, results: [{ id: 'b', text: 'second fact', metadata: { k: 1 }, created_at: 7 }] });
    expect(found.results[0]?.score).toBeCloseTo(1, 5);
    expect((await requests(model)).map((r) => r.body.input)).toEqual([['first fact', 'second fact']]);
  });
});
