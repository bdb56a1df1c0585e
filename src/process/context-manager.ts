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
 */
import { type PageBody, pageText } from '../kernel/context.ts';
import { DEFAULT_PAGER, type LexicalIndex, type SwappedRun, groupSteps, keywords, plan, scoreGroup, stubText, swappedRuns, workingSetTokens } from '../kernel/pager.ts';
import type { PageMetaRow, PageRow } from './store.ts';

export type ContextPage = PageBody & { readonly step: number };

/** What the context manager needs of a process (ProcessRuntime; the context benchmark's stand-in). */
export interface ContextHost {
  readonly now: number;
  readonly store: {
    pageTotals(): { tokens: number; swapped: boolean };
    pageMeta(): PageMetaRow[];
    residentPages(): PageRow[];
    pagesOfSteps(steps: readonly number[]): PageRow[];
    setResident(steps: readonly number[], resident: boolean, now: number, batch?: number): void;
    touchSteps(steps: readonly number[], now: number): void;
    rebatchSwapped(batch: number): void;
    recalledSteps(): Set<number>;
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

/**
 * Swapped steps (not the task, not already recalled) that match a query, best first: what `page_in`
 * may bring back.
 */
export function searchSwapped(rt: Pick<ContextHost, 'index' | 'store'>, query: string, before: number): { step: number; score: number }[] {
  const meta = rt.store.pageMeta();
  const swapped = new Set(meta.filter((p) => !p.resident).map((p) => p.step));
  const recalled = rt.store.recalledSteps();
  return [...relevanceByStep(rt, meta, query).entries()]
    .filter(([step]) => step > 0 && step < before && swapped.has(step) && !recalled.has(step))
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
  const rows = rt.store.pagesOfSteps(steps);
  const out: { step: number; pages: number }[] = [];
  for (const step of steps) {
    const bodies = rows.filter((r) => r.step === step && r.kind !== 'recall').map((r) => r.body as PageBody);
    if (bodies.length === 0) continue;
    const tainted = bodies.find((b) => 'untrusted' in b && b.untrusted === true) as { source?: string } | undefined;
    const text = bodies.map((b) => pageText(b)).join('\n');
    rt.addPage(into, { kind: 'recall', from_step: step, text, ...(tainted ? { untrusted: true, source: tainted.source ?? 'outside' } : {}) });
    out.push({ step, pages: bodies.length });
  }
  rt.store.touchSteps(steps, rt.now);
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

export function prepareContext(rt: ContextHost, budget: number, currentStep: number): { pages: ContextPage[]; tokens: number } {
  // Fast path: everything resident and within budget — nothing to fault in, nothing to evict.
  const totals = rt.store.pageTotals();
  if (!totals.swapped && totals.tokens <= budget) {
    return { pages: rt.store.residentPages().map((r) => ({ ...(r.body as PageBody), step: r.step })), tokens: totals.tokens };
  }
  let meta = rt.store.pageMeta();
  const relevance = relevanceToNewest(rt, meta);
  const cfg = { ...DEFAULT_PAGER, budget };
  const p = plan(meta, cfg, currentStep, relevance, rt.store.recalledSteps());
  if (p.recall.length > 0 || p.evict.length > 0) {
    const before = workingSetTokens(groupSteps(meta, currentStep, cfg.recent_steps));
    const newest = meta.at(-1)?.step ?? 0;
    rt.store.transaction(() => {
      if (p.recall.length > 0) {
        recallSteps(rt, p.recall, newest);
        rt.emit('page_fault', { reason: 'auto', steps: p.recall, into_step: newest, relevance: p.recall.map((s) => Math.round((relevance.get(s) ?? 0) * 100) / 100) });
      }
      if (p.evict.length > 0) {
        rt.store.setResident(p.evict, false, rt.now, p.batch);
        if (p.rebatch) rt.store.rebatchSwapped(p.batch);
        rt.emit('compaction', { batch: p.batch, kind: p.rebatch ? 'major' : 'minor', evicted_steps: p.evict, tokens_before: before, tokens_after: p.tokens, budget });
      }
    });
    meta = rt.store.pageMeta();
  }
  const groups = groupSteps(meta, currentStep, cfg.recent_steps);
  const runs = swappedRuns(groups);
  const stubAt = new Map(runs.map((r) => [r.from, r]));
  const bodies = new Map(rt.store.residentPages().map((r) => [r.seq, r.body as PageBody]));
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

/** The page table as the API shows it. */
export function pageTable(rt: ContextHost, budget: number, currentStep: number) {
  const meta = rt.store.pageMeta();
  const groups = groupSteps(meta, currentStep, DEFAULT_PAGER.recent_steps);
  const recalled = rt.store.recalledSteps();
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
