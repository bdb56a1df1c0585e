/**
 * The context manager: before each LLM call, decide the working set (src/kernel/pager.ts) and build
 * the page list the prompt is made from.
 *
 * 1. Page faults: swapped steps lexically relevant to the newest input are recalled automatically
 *    (up to a share of the budget); `page_in` does the same on request. A recall appends a copy of
 *    the step's content to the newest step, so the prompt before it is unchanged (provider caches
 *    keep hitting); the original stays swapped and keeps its stub.
 * 2. Compaction: if the working set is over budget, the lowest-scored unprotected steps are evicted
 *    down to the low-water mark, in one batch, so the next steps append to a stable prefix.
 * 3. The prompt: resident pages in order, with one stub per run of steps a compaction swapped out.
 * Faults and compactions are recorded in the event log.
 *
 * Recall by meaning (`vectorRecall`, run before `prepareContext` where long-term memory is
 * configured): pages swapped out by a compaction are chunked, embedded and indexed in `pages/<pid>`;
 * the newest input is searched against them, and steps it singles out (src/memory/recall.ts
 * `standoutSteps`) are faulted in like lexically relevant ones, so a question worded differently
 * from the page that answers it still finds it (with a semantic embedder).
 */
import { type PageBody, embeddingText, pageText } from '../kernel/context.ts';
import { type LexicalIndex, keywords } from '../kernel/lexical.ts';
import { DEFAULT_PAGER, agreeingSteps, type SwappedRun, groupSteps, plan, scoreGroup, stubText, swappedRuns, workingSetTokens } from '../kernel/pager.ts';
import { type PageOwner, chunkText, embedAndIndexSwappedPages, pageScope, topSteps } from '../memory/recall.ts';
import type { MemoryService } from '../memory/service.ts';
import type { PageMetaRow, PageRow, PageStore } from './pages.ts';
import type { PageTableView } from '../rpc/contracts.ts';

export type ContextPage = PageBody & { readonly step: number };

/** What the context manager needs of a process (ProcessRuntime; the context benchmark's stand-in). */
export interface ContextHost {
  readonly now: number;
  readonly store: {
    readonly pages: Pick<PageStore, 'totals' | 'meta' | 'resident' | 'ofSteps' | 'setResident' | 'touchSteps' | 'rebatchSwapped' | 'recalledSteps' | 'unembeddedSwapped' | 'markEmbedded' | 'newestStep'>;
    transaction<T>(fn: () => T): T;
  };
  index(): LexicalIndex;
  addPage(step: number, body: PageBody): void;
  emit(type: string, data: unknown): void;
}

/** Lexical relevance of each step to a query (the best of its pages). */
export function relevanceByStep(rt: Pick<ContextHost, 'index'>, meta: readonly PageMetaRow[], query: string, querySeqs: readonly number[] = []): Map<number, number> {
  const stepOf = new Map(meta.map((p) => [p.seq, p.step]));
  const out = new Map<number, number>();
  for (const hit of rt.index().search(query, undefined, 200, querySeqs)) {
    const step = stepOf.get(hit.id);
    if (step !== undefined && hit.score > (out.get(step) ?? 0)) out.set(step, hit.score);
  }
  return out;
}

/** Which steps page_in may bring back: swapped, before `before`, not the task, not already recalled. */
function pageable(rt: Pick<ContextHost, 'store'>, meta: readonly PageMetaRow[], before: number): (step: number) => boolean {
  const swapped = new Set(meta.filter((p) => !p.resident).map((p) => p.step));
  const recalled = rt.store.pages.recalledSteps();
  return (step) => step > 0 && step < before && swapped.has(step) && !recalled.has(step);
}

/** Swapped steps (as `pageable`) that match a query lexically, best first. */
export function searchSwapped(rt: Pick<ContextHost, 'index' | 'store'>, query: string, before: number, meta: readonly PageMetaRow[] = rt.store.pages.meta()): { step: number; score: number }[] {
  const ok = pageable(rt, meta, before);
  return [...relevanceByStep(rt, meta, query).entries()]
    .filter(([step]) => ok(step))
    .sort((a, b) => b[1] - a[1])
    .map(([step, score]) => ({ step, score }));
}

/** The newest input: what the model is about to respond to (the latest step's results, or the task), and its pages. */
function newestInput(meta: readonly PageMetaRow[]): { text: string; seqs: number[] } {
  const last = meta.at(-1);
  if (!last) return { text: '', seqs: [] };
  const pages = meta.filter((p) => p.step === last.step && p.kind !== 'assistant' && p.kind !== 'recall');
  return { text: pages.map((p) => p.text).join('\n'), seqs: pages.map((p) => p.seq) };
}

/** Relevance of each step to the newest input. */
function relevanceToNewest(rt: Pick<ContextHost, 'index'>, meta: readonly PageMetaRow[]): Map<number, number> {
  const input = newestInput(meta);
  return relevanceByStep(rt, meta, input.text, input.seqs);
}

/**
 * Append a recall page to step `into` for each of `steps` (swapped steps): the step's pages as the
 * model read them (earlier recall pages inside it are left out: their originals can be recalled
 * themselves). Untrusted content stays labelled. Part of the caller's transaction.
 */
export function recallSteps(rt: ContextHost, steps: readonly number[], into: number): { step: number; pages: number }[] {
  if (steps.length === 0) return [];
  const rows = rt.store.pages.ofSteps(steps);
  const out: { step: number; pages: number }[] = [];
  for (const step of steps) {
    const bodies = rows.filter((r) => r.step === step && r.kind !== 'recall').map((r) => r.body as PageBody);
    if (bodies.length === 0) continue;
    const tainted = bodies.find((b) => 'untrusted' in b && b.untrusted === true) as { source?: string } | undefined;
    const text = bodies.map((b) => pageText(b)).join('\n');
    rt.addPage(into, { kind: 'recall', from_step: step, text, ...(tainted ? { untrusted: true, source: tainted.source ?? 'outside' } : {}) });
    out.push({ step, pages: bodies.length });
  }
  rt.store.pages.touchSteps(steps, rt.now);
  return out;
}

/** Stub texts by run: a run never changes once a compaction made it, so neither does its stub. */
const stubCache = new WeakMap<object, Map<string, string>>();

function stubFor(rt: ContextHost, meta: readonly PageMetaRow[], run: SwappedRun): string {
  let cache = stubCache.get(rt);
  if (!cache) stubCache.set(rt, (cache = new Map()));
  const key = `${run.batch}:${run.from}-${run.to}:${run.pages}:${run.tokens}`;
  let text = cache.get(key);
  if (text === undefined) {
    const texts = meta.filter((m) => m.step >= run.from && m.step <= run.to).map((m) => m.text);
    text = stubText(run, keywords(texts)).replace(/^\[kernel\] /, '');
    cache.set(key, text);
  }
  return text;
}

/**
 * The prompt's pages for the next LLM call, after faulting in and compacting as the pager decides.
 * `similar`: swapped steps vector search found similar to the newest input (vectorRecall); those
 * lexical search ranks high too are faulted in (pager.ts agreeingSteps).
 */
export function prepareContext(rt: ContextHost, budget: number, currentStep: number, similar: ReadonlyMap<number, number> = new Map()): { pages: ContextPage[]; tokens: number } {
  // Fast path: everything resident and within budget — nothing to fault in, nothing to evict.
  const totals = rt.store.pages.totals();
  if (!totals.swapped && totals.tokens <= budget) {
    return { pages: rt.store.pages.resident().map((r) => ({ ...(r.body as PageBody), step: r.step })), tokens: totals.tokens };
  }
  let meta = rt.store.pages.meta();
  const relevance = relevanceToNewest(rt, meta);
  const cfg = { ...DEFAULT_PAGER, budget };
  const semantic = agreeingSteps(similar, relevance, meta.at(-1)?.step ?? 0, cfg);
  const p = plan(meta, cfg, currentStep, relevance, rt.store.pages.recalledSteps(), semantic);
  if (p.recall.length > 0 || p.evict.length > 0) {
    const before = workingSetTokens(groupSteps(meta, currentStep, cfg.recent_steps));
    const newest = meta.at(-1)?.step ?? 0;
    rt.store.transaction(() => {
      if (p.recall.length > 0) {
        recallSteps(rt, p.recall, newest);
        const bySimilarity = p.recall.filter((s) => semantic.has(s));
        rt.emit('page_fault', {
          reason: 'auto',
          steps: p.recall,
          into_step: newest,
          relevance: p.recall.map((s) => Math.round((relevance.get(s) ?? 0) * 100) / 100),
          ...(bySimilarity.length > 0 ? { by_similarity: bySimilarity.map((s) => ({ step: s, score: Math.round((semantic.get(s) ?? 0) * 1000) / 1000 })) } : {}),
        });
      }
      if (p.evict.length > 0) {
        rt.store.pages.setResident(p.evict, false, rt.now, p.batch);
        if (p.rebatch) rt.store.pages.rebatchSwapped(p.batch);
        rt.emit('compaction', { batch: p.batch, kind: p.rebatch ? 'major' : 'minor', evicted_steps: p.evict, tokens_before: before, tokens_after: p.tokens, budget });
      }
    });
    meta = rt.store.pages.meta();
  }
  const groups = groupSteps(meta, currentStep, cfg.recent_steps);
  const runs = swappedRuns(groups);
  const stubAt = new Map(runs.map((r) => [r.from, r]));
  const bodies = new Map(rt.store.pages.resident().map((r) => [r.seq, r.body as PageBody]));
  const pages: ContextPage[] = [];
  for (const g of groups) {
    const run = stubAt.get(g.step);
    if (run) pages.push({ kind: 'notice', text: stubFor(rt, meta, run), step: run.from });
    if (!g.resident) continue;
    for (const page of g.pages) {
      const body = bodies.get(page.seq);
      if (body) pages.push({ ...body, step: page.step });
    }
  }
  return { pages, tokens: workingSetTokens(groups) };
}

// --- recall by meaning -----------------------------------------------------------------------------

/**
 * Chunks embedded per step at most (whole pages; at least one): a major compaction can swap out
 * hundreds of pages, and embedding calls and store writes count against the invocation's subrequests.
 * The rest wait for the next step.
 */
export const EMBED_CHUNKS_PER_STEP = 500;
/** Lines of the newest input searched (a long tool result is searched by its first lines). */
export const QUERY_CHUNKS = 4;
/** Per line searched, this many most similar steps are candidates. */
export const VECTOR_TOP_STEPS = 3;

export interface VectorRecallOptions {
  readonly memory: MemoryService;
  readonly owner: PageOwner;
  /** Lines of the newest input searched (default QUERY_CHUNKS). */
  readonly queryLines?: number;
  /** Candidate steps per line (default VECTOR_TOP_STEPS). */
  readonly topSteps?: number;
}

/**
 * Index the pages compactions swapped out since the last call, then search the newest input, line by
 * line, against every indexed page; returns the steps among the VECTOR_TOP_STEPS most similar to
 * some line, step → similarity. `prepareContext` faults in those of them that are swapped out and
 * that lexical search ranks high too (pager.ts `agreeingSteps`, then `plan`).
 *
 * Never throws: if the embedder or the store fails, the step goes on with lexical relevance alone and
 * the failure is in the event log (`vector_recall_error`); unindexed pages are tried again next step.
 */
export async function vectorRecall(rt: ContextHost, opts: VectorRecallOptions): Promise<Map<number, number>> {
  if (!rt.store.pages.totals().swapped) return new Map();
  const found = new Map<number, number>();
  let phase = 'index';
  try {
    const pending = rt.store.pages.unembeddedSwapped(64);
    if (pending.length > 0) {
      const indexed = await embedAndIndexSwappedPages(
        opts.memory,
        opts.owner,
        pending.map((r) => ({ seq: r.seq, step: r.step, text: embeddingText(r.body as PageBody) })),
        EMBED_CHUNKS_PER_STEP,
      );
      rt.store.transaction(() => {
        rt.store.pages.markEmbedded(indexed);
        rt.emit('pages_indexed', { pages: indexed.length, chunks: indexed.reduce((n, p) => n + p.chunks, 0), steps: [...new Set(indexed.map((p) => p.step))] });
      });
    }
    phase = 'search';
    const newest = rt.store.pages.newestStep();
    const input = rt.store.pages
      .ofSteps([newest])
      .filter((r) => r.kind !== 'assistant' && r.kind !== 'recall')
      .map((r) => embeddingText(r.body as PageBody))
      .join('\n');
    const queries = chunkText(input).slice(0, opts.queryLines ?? QUERY_CHUNKS);
    if (queries.length === 0) return found;
    const results = await opts.memory.searchMany(pageScope(opts.owner), queries, 20);
    // Which of these may be faulted in (swapped, not recalled, not the task) is the pager's decision.
    for (const hits of results) {
      for (const hit of topSteps(hits, opts.topSteps ?? VECTOR_TOP_STEPS)) found.set(hit.step, Math.max(found.get(hit.step) ?? -1, hit.score));
    }
  } catch (e) {
    rt.emit('vector_recall_error', { phase, error: e instanceof Error ? e.message : String(e) });
  }
  return found;
}

/** Lexical matches below this relevance are not page_in results. */
export const PAGE_IN_MIN_RELEVANCE = 0.1;

/**
 * page_in by query: swapped steps before `before` (not the task, not already recalled) that match the
 * query, best first, at most `limit`. Lexical matches (relevance ≥ PAGE_IN_MIN_RELEVANCE) and, with
 * long-term memory and a semantic embedder, the steps most similar by meaning after them, so a query
 * worded differently from every page still finds something.
 * (Nearest neighbours have no calibrated cut-off: with a semantic embedder a query always finds its
 * nearest steps, however far.) If vector search fails, the lexical matches alone (and a
 * `vector_recall_error` event).
 */
export async function findSwapped(rt: ContextHost, query: string, before: number, limit: number, vector?: VectorRecallOptions): Promise<number[]> {
  const meta = rt.store.pages.meta();
  const lexical = searchSwapped(rt, query, before, meta)
    .filter((h) => h.score >= PAGE_IN_MIN_RELEVANCE)
    .map((h) => h.step);
  let similar: number[] = [];
  // The lexical embedding would only repeat the lexical search, with every near miss as a result.
  if (vector && !vector.memory.embedder.lexical && query.trim() !== '' && meta.some((p) => !p.resident)) {
    try {
      const [hits = []] = await vector.memory.searchMany(pageScope(vector.owner), [query.slice(0, 2000)], 20);
      const ok = pageable(rt, meta, before);
      similar = topSteps(hits, 20)
        .map((h) => h.step)
        .filter(ok)
        .slice(0, limit);
    } catch (e) {
      rt.emit('vector_recall_error', { phase: 'page_in', error: e instanceof Error ? e.message : String(e) });
    }
  }
  // Lexical matches first (when a query shares distinctive words with a page, that page is what it
  // asks for), then the nearest steps by meaning fill the places left. Measured against reciprocal
  // rank fusion, which let the encoder's near misses push lexical hits out (docs/BENCHMARKS.md).
  return [...new Set([...lexical, ...similar])].slice(0, limit);
}

/** The page table as the API shows it. */
export function pageTable(rt: ContextHost, budget: number, currentStep: number): PageTableView {
  const meta = rt.store.pages.meta();
  const groups = groupSteps(meta, currentStep, DEFAULT_PAGER.recent_steps);
  const recalled = rt.store.pages.recalledSteps();
  const relevance = relevanceToNewest(rt, meta);
  const maxAccess = Math.max(0, ...meta.map((p) => p.access_count));
  return {
    budget,
    tokens: workingSetTokens(groups),
    steps: groups.map((g) => ({
      step: g.step,
      resident: g.resident,
      recalled: recalled.has(g.step),
      protected: g.protected,
      tokens: g.tokens,
      batch: g.batch,
      relevance: Math.round((relevance.get(g.step) ?? 0) * 1000) / 1000,
      score: Math.round(scoreGroup(g, currentStep, relevance.get(g.step) ?? 0, maxAccess) * 1000) / 1000,
      pages: g.pages.map((pg) => {
        const m = pg as PageMetaRow;
        return { seq: m.seq, kind: m.kind, tokens: m.tokens, importance: m.importance, pinned: m.pinned, access_count: m.access_count, last_access: m.last_access, excerpt: m.text.slice(0, 160) };
      }),
    })),
    swapped_runs: swappedRuns(groups),
  };
}

export { pageText };
