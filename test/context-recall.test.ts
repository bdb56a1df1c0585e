/**
 * Recall by meaning into the context: pages a compaction swaps out are chunked, embedded and indexed
 * in pages/<pid>; the newest input is searched against them; steps both vector and lexical search
 * rank high are faulted in; failures of the embedder leave the process running; removing a process
 * removes its page vectors.
 */
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { type PageBody, embeddingText } from '../src/kernel/context.ts';
import { LexicalIndex } from '../src/kernel/lexical.ts';
import { DEFAULT_PAGER, agreeingSteps } from '../src/kernel/pager.ts';
import { type Embedder, LexicalEmbedder, normalize } from '../src/memory/embeddings.ts';
import { CHUNK_CHARS, MAX_CHUNKS, chunkText, topSteps } from '../src/memory/recall.ts';
import { MemoryService } from '../src/memory/service.ts';
import type { MemoryMatch, MemoryQuery, MemoryRecord, MemoryScope, VectorMemory } from '../src/memory/types.ts';
import { type ContextHost, EMBED_CHUNKS_PER_STEP, findSwapped, vectorRecall } from '../src/process/context-manager.ts';
import type { PageRow } from '../src/process/store.ts';
import { api, eventsOf, runUntil, spawn } from './support/helpers.ts';

const scripted = { provider: 'scripted', model: 'scripted' };
const call = (name: string, args: Record<string, unknown> = {}) => ({ tool_calls: [{ name, args }] });
const filler = (i: number) => `Log ${i}: ` + Array.from({ length: 120 }, (_, k) => `entry${(i * 7 + k) % 97} status ok latency ${(k * 13) % 50}ms`).join('; ');
type Hit = { id: string; score: number; text: string; metadata: Record<string, unknown> };

describe('chunks and texts for the vector index', () => {
  it('indexes a page line by line, without lines too short to mean anything, cutting long lines at a space', () => {
    const long = Array.from({ length: 80 }, (_, i) => `word${i}`).join(' ');
    const chunks = chunkText(['/logs/a.log', 'status: 200', '2025-01-02T10:00:00Z NOTE the access code for vault 17 is 4431.', '', long].join('\n'));
    expect(chunks[0]).toBe('2025-01-02T10:00:00Z NOTE the access code for vault 17 is 4431.');
    expect(chunks.slice(1).join(' ')).toBe(long);
    for (const c of chunks) expect(c.length).toBeLessThanOrEqual(CHUNK_CHARS);
    expect(chunkText(Array.from({ length: 200 }, (_, i) => `line number ${i} here`).join('\n'))).toHaveLength(MAX_CHUNKS);
    expect(chunkText('')).toEqual([]);
  });

  it('embeds a tool result as its text, not as escaped JSON', () => {
    const body: PageBody = { kind: 'result', call_id: 'c', name: 'fs_read', via: 'native', result: { ok: true, value: { path: '/inbox/m.txt', content: 'From: Ann\nWhich code opens vault 17?', size: 40 } } };
    expect(embeddingText(body)).toBe('fs_read\n/inbox/m.txt\nFrom: Ann\nWhich code opens vault 17?\nsize: 40');
    const failed: PageBody = { kind: 'result', call_id: 'c', name: 'fs_read', via: 'native', result: { ok: false, error: { code: 'ENOENT', message: 'no such file' } } };
    expect(embeddingText(failed)).toBe('fs_read\nENOENT\nno such file');
  });

  it('faults in only what both searches put near the top', () => {
    const hits = [0.9, 0.8, 0.85, 0.7, 0.6].map((score, i) => ({ score, metadata: { step: [4, 4, 7, 9, 11][i] as number } }));
    expect(topSteps(hits, 3)).toEqual([{ step: 4, score: 0.9 }, { step: 7, score: 0.85 }, { step: 9, score: 0.7 }]);
    const similar = new Map([[4, 0.9], [7, 0.85], [9, 0.7]]);
    // Lexical: 9 best, 30 (the newest) ignored, 7 too weak, 4 fourth.
    const relevance = new Map([[9, 0.5], [30, 0.9], [12, 0.4], [13, 0.3], [4, 0.2], [7, 0.05]]);
    expect([...agreeingSteps(similar, relevance, 30, DEFAULT_PAGER).keys()]).toEqual([9]);
    expect(agreeingSteps(new Map(), relevance, 30, DEFAULT_PAGER).size).toBe(0);
  });
});

/** Just enough of a process for vectorRecall: pages in memory. */
function host(pages: { step: number; text: string; resident: boolean }[]): ContextHost & { events: { type: string; data: unknown }[]; chunks: Map<number, number> } {
  const rows: PageRow[] = pages.map((p, i) => ({ seq: i + 1, step: p.step, kind: p.step === 0 ? 'task' : 'notice', body: { kind: 'notice', text: p.text } }));
  const chunks = new Map<number, number>();
  const events: { type: string; data: unknown }[] = [];
  const resident = (seq: number) => pages[seq - 1]?.resident ?? true;
  const unsupported = () => {
    throw new Error('not used by vectorRecall');
  };
  const index = new LexicalIndex();
  for (const r of rows) index.add(r.seq, (r.body as { text: string }).text);
  return {
    events,
    chunks,
    now: 0,
    store: {
      pages: {
        totals: () => ({ tokens: 0, swapped: pages.some((p) => !p.resident) }),
        meta: () => rows.map((r) => ({ seq: r.seq, step: r.step, kind: r.kind, tokens: 1, importance: 0.5, pinned: false, resident: resident(r.seq), access_count: 0, last_access: 0, text: '', batch: 0 })),
        resident: unsupported,
        ofSteps: (steps) => rows.filter((r) => steps.includes(r.step)),
        setResident: unsupported,
        touchSteps: unsupported,
        rebatchSwapped: unsupported,
        recalledSteps: () => new Set<number>(),
        unembeddedSwapped: (limit) => rows.filter((r) => !resident(r.seq) && !chunks.has(r.seq)).slice(0, limit),
        markEmbedded: (done) => {
          for (const p of done) chunks.set(p.seq, p.chunks);
        },
        newestStep: () => Math.max(...rows.map((r) => r.step)),
      },
      transaction: (fn) => fn(),
    },
    index: () => index,
    addPage: unsupported,
    emit: (type, data) => void events.push({ type, data }),
  };
}

class ArrayStore implements VectorMemory {
  readonly kind = 'embedded' as const;
  readonly records = new Map<string, MemoryRecord>();
  failing = false;
  async upsert(_scope: MemoryScope, records: readonly MemoryRecord[]): Promise<void> {
    if (this.failing) throw new Error('store unreachable');
    for (const r of records) this.records.set(r.id, r);
  }
  async query(_scope: MemoryScope, q: MemoryQuery): Promise<MemoryMatch[]> {
    return [...this.records.values()]
      .map((r) => ({ id: r.id, text: r.text, metadata: r.metadata, created_at: 0, score: r.vector.reduce((s, x, i) => s + x * (q.vector[i] as number), 0) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, q.top_k);
  }
  async delete(_scope: MemoryScope, ids: readonly string[]): Promise<string[]> {
    return ids.filter((id) => this.records.delete(id));
  }
}

describe('vectorRecall', () => {
  const pages = [
    { step: 0, text: 'Task: keep notes and answer questions later.', resident: true },
    { step: 1, text: 'Ops note: the access code for vault 17 is 4431.\nnothing else of note here today', resident: false },
    { step: 2, text: 'Deploy of bluefin to staging started by Ann Lee', resident: false },
    { step: 3, text: 'Which access code opens vault 17 again?', resident: true },
  ];

  it('indexes swapped pages once, then returns the swapped steps similar to the newest input', async () => {
    const store = new ArrayStore();
    const rt = host(pages);
    const memory = new MemoryService(store, new LexicalEmbedder());
    const found = await vectorRecall(rt, { memory, owner: { tenant: 't', pid: 'p' } });
    expect([...found.keys()]).toContain(1);
    expect(found.has(0)).toBe(false);
    expect(found.has(3)).toBe(false);
    expect(rt.chunks).toEqual(new Map([[2, 2], [3, 1]]));
    expect([...store.records.keys()].sort()).toEqual(['page-2-0', 'page-2-1', 'page-3-0']);
    expect(rt.events.find((e) => e.type === 'pages_indexed')?.data).toEqual({ pages: 2, chunks: 3, steps: [1, 2] });
    // Nothing new swapped out: nothing embedded again.
    rt.events.length = 0;
    await vectorRecall(rt, { memory, owner: { tenant: 't', pid: 'p' } });
    expect(rt.events.filter((e) => e.type === 'pages_indexed')).toEqual([]);
  });

  it('embeds at most EMBED_CHUNKS_PER_STEP chunks per step; the rest follow on later steps', async () => {
    const big = Array.from({ length: 100 }, (_, i) => `log line number ${i} of a long result`).join('\n');
    const many = [{ step: 0, text: 'Task: keep notes.', resident: true }, ...Array.from({ length: 10 }, (_, i) => ({ step: i + 1, text: big, resident: false })), { step: 11, text: 'the newest input here', resident: true }];
    const rt = host(many);
    const memory = new MemoryService(new ArrayStore(), new LexicalEmbedder());
    await vectorRecall(rt, { memory, owner: { tenant: 't', pid: 'p' } });
    expect(rt.chunks.size).toBe(Math.floor(EMBED_CHUNKS_PER_STEP / MAX_CHUNKS));
    await vectorRecall(rt, { memory, owner: { tenant: 't', pid: 'p' } });
    expect(rt.chunks.size).toBe(10);
    expect([...rt.chunks.values()].every((n) => n === MAX_CHUNKS)).toBe(true);
  });

  it('a failing store leaves paging lexical for this step and retries the pages next time', async () => {
    const store = new ArrayStore();
    store.failing = true;
    const rt = host(pages);
    const memory = new MemoryService(store, new LexicalEmbedder());
    expect((await vectorRecall(rt, { memory, owner: { tenant: 't', pid: 'p' } })).size).toBe(0);
    expect(rt.events).toEqual([{ type: 'vector_recall_error', data: { phase: 'index', error: 'store unreachable' } }]);
    expect(rt.chunks.size).toBe(0);
    store.failing = false;
    expect([...(await vectorRecall(rt, { memory, owner: { tenant: 't', pid: 'p' } })).keys()]).toContain(1);
    expect(rt.chunks.size).toBe(2);
  });
});

/** A toy semantic embedder: words map to concepts, so synonyms land on the same dimension. */
class ConceptEmbedder implements Embedder {
  readonly model = 'concepts';
  readonly lexical = false;
  readonly maxBatch = 100;
  static readonly CONCEPTS: Record<string, number> = { access: 0, combination: 0, pin: 0, code: 0, vault: 1, safe: 1, strongbox: 1, deploy: 2, release: 2, ship: 2, started: 3, began: 3 };
  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    return texts.map((t) => {
      const v = new Float32Array(8);
      v[7] = 0.05;
      for (const w of t.toLowerCase().match(/[a-z]+/g) ?? []) {
        const c = ConceptEmbedder.CONCEPTS[w];
        if (c !== undefined) v[c] = (v[c] as number) + 1;
      }
      return normalize(v);
    });
  }
}

describe('page_in by meaning', () => {
  const pages = [
    { step: 0, text: 'Task: keep notes.', resident: true },
    { step: 1, text: 'Ops note: the access code for vault 17 is 4431.', resident: false },
    { step: 2, text: 'Deploy of bluefin to staging started by Ann Lee.', resident: false },
    { step: 3, text: 'Deploy of kestrel to production started by Bo Chen.', resident: false },
    { step: 4, text: 'An ordinary step.', resident: true },
  ];

  it('finds a page worded differently from the query; lexical matches come first', async () => {
    const rt = host(pages);
    const memory = new MemoryService(new ArrayStore(), new ConceptEmbedder());
    const vector = { memory, owner: { tenant: 't', pid: 'p' } };
    await vectorRecall(rt, vector);
    // No word in common with step 1: lexical search finds nothing, vector search finds it.
    expect(await findSwapped(rt, 'which combination opens the strongbox', 5, 3)).toEqual([]);
    expect((await findSwapped(rt, 'which combination opens the strongbox', 5, 3, vector))[0]).toBe(1);
    // Lexical matches come first, the nearest by meaning fill the rest.
    expect(await findSwapped(rt, 'when did the bluefin release begin', 5, 3)).toEqual([2]);
    expect(await findSwapped(rt, 'when did the bluefin release begin', 5, 3, vector)).toEqual([2, 3, 1]);
    // Limits and bounds: at most `limit`, only steps before `before`.
    expect((await findSwapped(rt, 'deploy started', 5, 1, vector)).length).toBe(1);
    expect(await findSwapped(rt, 'which combination opens the strongbox', 1, 3, vector)).toEqual([]);
  });
});

describe('recall by meaning in a running process', () => {
  it('indexes evicted pages in pages/<pid>, faults a step in that both searches find, and forgets the vectors with the process', async () => {
    const turns = [
      call('fs_write', { path: 'fact.txt', content: 'The access code for vault 17 is 4431.' }),
      ...Array.from({ length: 40 }, (_, i) => call('fs_write', { path: `log/${i}.txt`, content: filler(i) })),
      call('net_fetch', { url: `${env.TEST_SERVER}/page?body=${encodeURIComponent('Question: which access code opens vault 17?')}` }),
      call('exit', { code: 0 }),
    ];
    const { pid } = await spawn({ name: 'vec', task: 'remember things', model: scripted, script: turns, max_context_tokens: 4000, capabilities: ['fs:/**:rw', 'net:127.0.0.1'], quotas: { max_steps: 100 } });
    const done = await runUntil(pid, ['terminated'], 150);
    expect(done.exit?.code).toBe(0);
    const events = await eventsOf(pid);
    const indexed = events.filter((e) => e.type === 'pages_indexed');
    expect(indexed.length).toBeGreaterThan(0);
    expect(indexed.flatMap((e) => e.data.steps as number[])).toContain(1);
    expect(events.filter((e) => e.type === 'vector_recall_error')).toEqual([]);
    // Operators can search a process's page index like any namespace of their tenant.
    const search = () => api<{ results: Hit[]; embedding: { lexical: boolean } }>('GET', `/v1/memory/search?q=${encodeURIComponent('access code vault 17')}&namespace=pages/${pid}`);
    const found = (await search()).body;
    expect(found.results[0]).toMatchObject({ metadata: { step: 1 } });
    expect(found.results[0]?.text).toContain('vault 17 is 4431');
    // The question faulted step 1 back in, found by meaning and by words alike.
    const fault = events.filter((e) => e.type === 'page_fault').findLast((f) => (f.data.steps as number[]).includes(1));
    expect(fault?.data.by_similarity).toEqual(expect.arrayContaining([expect.objectContaining({ step: 1 })]));
    // Removing the process removes its page vectors.
    expect((await api('DELETE', `/v1/processes/${pid}`)).status).toBe(200);
    expect((await search()).body.results).toEqual([]);
    const audit = await api<{ rows: { kind: string; action: string; pid: string; outcome: string; detail: Record<string, unknown> }[] }>('GET', '/v1/audit?limit=1000');
    const forgot = audit.body.rows.filter((r) => r.kind === 'memory' && r.action === 'forget_pages' && r.pid === pid);
    expect(forgot).toEqual([expect.objectContaining({ outcome: 'ok', detail: expect.objectContaining({ namespace: `pages/${pid}` }) })]);
    expect(forgot[0]?.detail.chunks as number).toBeGreaterThan(0);
  });
});
