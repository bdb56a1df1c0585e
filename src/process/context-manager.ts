/**
 * The context manager: before each LLM call, decide the working set (src/kernel/pager.ts) and build
 * the page list the prompt is made from.
 *
 * 1. Page faults: swapped steps lexically relevant to the newest input come back automatically (up
 *    to a share of the budget); `page_in` does the same on request.
 * 2. Compaction: if the working set is over budget, the lowest-scored unprotected steps are evicted
 *    down to the low-water mark, in one batch, so the next steps append to a stable prefix.
 * 3. The prompt: resident pages in order, with one stub per run of swapped steps.
 * Faults and compactions are recorded in the event log.
 */
import { type PageBody, pageText } from '../kernel/context.ts';
import { DEFAULT_PAGER, groupSteps, keywords, plan, stubText, swappedRuns, workingSetTokens } from '../kernel/pager.ts';
import type { ProcessRuntime } from './runtime.ts';
import type { PageMetaRow } from './store.ts';

export type ContextPage = PageBody & { readonly step: number };

/** Lexical relevance of each step to a query (the best of its pages). */
export function relevanceByStep(rt: ProcessRuntime, meta: readonly PageMetaRow[], query: string): Map<number, number> {
  const stepOf = new Map(meta.map((p) => [p.seq, p.step]));
  const out = new Map<number, number>();
  for (const hit of rt.index().search(query, undefined, 200)) {
    const step = stepOf.get(hit.id);
    if (step !== undefined && hit.score > (out.get(step) ?? 0)) out.set(step, hit.score);
  }
  return out;
}

/** The newest input: what the model is about to respond to (the latest step's results, or the task). */
function newestInput(meta: readonly PageMetaRow[]): string {
  const last = meta.at(-1);
  if (!last) return '';
  return meta
    .filter((p) => p.step === last.step && p.kind !== 'assistant')
    .map((p) => p.text)
    .join('\n');
}

export function prepareContext(rt: ProcessRuntime, budget: number, currentStep: number): { pages: ContextPage[]; tokens: number } {
  // Fast path: everything resident and within budget — nothing to fault in, nothing to evict.
  const totals = rt.store.pageTotals();
  if (!totals.swapped && totals.tokens <= budget) {
    return { pages: rt.store.residentPages().map((r) => ({ ...(r.body as PageBody), step: r.step })), tokens: totals.tokens };
  }
  let meta = rt.store.pageMeta();
  const relevance = relevanceByStep(rt, meta, newestInput(meta));
  const cfg = { ...DEFAULT_PAGER, budget };
  const p = plan(meta, cfg, currentStep, relevance);
  if (p.page_in.length > 0 || p.evict.length > 0) {
    const before = workingSetTokens(groupSteps(meta, currentStep, cfg.recent_steps));
    rt.store.transaction(() => {
      if (p.page_in.length > 0) {
        rt.store.setResident(p.page_in, true, rt.now);
        rt.emit('page_fault', { reason: 'auto', steps: p.page_in, relevance: p.page_in.map((s) => Math.round((relevance.get(s) ?? 0) * 100) / 100) });
      }
      if (p.evict.length > 0) {
        rt.store.setResident(p.evict, false, rt.now);
        rt.emit('compaction', { evicted_steps: p.evict, tokens_before: before, tokens_after: p.tokens, budget });
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
    if (run) {
      const texts = meta.filter((m) => m.step >= run.from && m.step <= run.to).map((m) => m.text);
      pages.push({ kind: 'notice', text: stubText(run, keywords(texts)).replace(/^\[kernel\] /, ''), step: run.from });
    }
    if (!g.resident) continue;
    for (const page of g.pages) {
      const body = bodies.get(page.seq);
      if (body) pages.push({ ...body, step: page.step });
    }
  }
  return { pages, tokens: workingSetTokens(groups) };
}

/** The page table as the API shows it. */
export function pageTable(rt: ProcessRuntime, budget: number, currentStep: number) {
  const meta = rt.store.pageMeta();
  const groups = groupSteps(meta, currentStep, DEFAULT_PAGER.recent_steps);
  return {
    budget,
    tokens: workingSetTokens(groups),
    steps: groups.map((g) => ({
      step: g.step,
      resident: g.resident,
      protected: g.protected,
      tokens: g.tokens,
      pages: g.pages.map((pg) => {
        const m = pg as PageMetaRow;
        return { seq: m.seq, kind: m.kind, tokens: m.tokens, importance: m.importance, pinned: m.pinned, access_count: m.access_count, last_access: m.last_access, excerpt: m.text.slice(0, 160) };
      }),
    })),
    swapped_runs: swappedRuns(groups),
  };
}

export { pageText };
