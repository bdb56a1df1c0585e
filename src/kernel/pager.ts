/**
 * The context pager: which pages are in the prompt (the working set) under a token budget. Pure.
 *
 * Unit of paging: a step's pages (its assistant turn and every result it produced) move together,
 * because providers reject a tool result whose call is not in the prompt. The task (step 0) and
 * pinned pages are never evicted, and neither are the newest `recent_steps` steps.
 *
 * Cache stability: new pages are only appended until the working set exceeds the budget. Then one
 * compaction evicts the lowest-scored steps down to `low_water` × budget, so the following steps
 * append again to an unchanged prefix and providers' prompt caches keep hitting. Each run of
 * consecutive evicted steps is replaced by one stub that says what was swapped out and how to fault
 * it back in; a stub's text depends only on the run, so it is stable too.
 *
 * Score of a step (higher stays):
 *   0.35·relevance + 0.25·recency + 0.25·importance + 0.15·frequency
 *   relevance  lexical similarity (BM25, normalised) to the newest input: what the model is working on
 *   recency    exp(−Δsteps / 50)
 *   importance the highest importance of its pages (task 1, results 0.5, assistant 0.4, notices 0.3)
 *   frequency  log(1 + accesses) / log(1 + most accesses)
 * Agent-OS-Kernel scores LRU × importance; relevance to the current input is what lets an old but
 * pertinent fact survive, and what page faults use to bring swapped facts back.
 */

export interface PageInfo {
  readonly seq: number;
  readonly step: number;
  readonly tokens: number;
  readonly importance: number;
  readonly pinned: boolean;
  readonly resident: boolean;
  readonly access_count: number;
  /** Searchable text (a bounded excerpt). */
  readonly text: string;
}

export interface PagerConfig {
  readonly budget: number;
  readonly low_water: number;
  readonly recent_steps: number;
  /** Swapped steps whose relevance to the newest input reaches this are faulted back in automatically. */
  readonly fault_threshold: number;
  /** At most this share of the budget is faulted in automatically per step. */
  readonly fault_share: number;
}

export const DEFAULT_PAGER: Omit<PagerConfig, 'budget'> = { low_water: 0.6, recent_steps: 2, fault_threshold: 0.35, fault_share: 0.25 };

export const KIND_IMPORTANCE: Readonly<Record<string, number>> = { task: 1, result: 0.5, assistant: 0.4, notice: 0.3 };

/**
 * Tokens a stub may cost in the prompt: an upper bound of its text (step range, counts, up to 12
 * topic words, the page_in hint), which the context benchmark measured at up to 97 tokens.
 */
export const STUB_TOKENS = 110;

// --- lexical relevance --------------------------------------------------------------------------

const STOP = new Set('the a an and or of to in on for is are was were be by with as at it this that from not no yes you your i we our ok true false null value args result name path content'.split(' '));

export function terms(text: string): string[] {
  return (text.toLowerCase().match(/[a-z0-9]{2,}/g) ?? []).filter((t) => !STOP.has(t));
}

/** A small BM25 index over documents (steps); scores are normalised to [0, 1] per query. */
export class LexicalIndex {
  readonly #docs = new Map<number, Map<string, number>>();
  readonly #lengths = new Map<number, number>();
  readonly #df = new Map<string, number>();
  #totalLength = 0;

  add(id: number, text: string): void {
    this.remove(id);
    const tf = new Map<string, number>();
    const ts = terms(text);
    for (const t of ts) tf.set(t, (tf.get(t) ?? 0) + 1);
    for (const t of tf.keys()) this.#df.set(t, (this.#df.get(t) ?? 0) + 1);
    this.#docs.set(id, tf);
    this.#lengths.set(id, ts.length);
    this.#totalLength += ts.length;
  }

  remove(id: number): void {
    const tf = this.#docs.get(id);
    if (!tf) return;
    for (const t of tf.keys()) this.#df.set(t, (this.#df.get(t) ?? 1) - 1);
    this.#totalLength -= this.#lengths.get(id) ?? 0;
    this.#docs.delete(id);
    this.#lengths.delete(id);
  }

  /**
   * Normalised BM25 scores of the given ids (all documents when omitted), best first.
   *
   * Only the query's distinctive terms count: those that occur in some document but in at most 10%
   * of them. A query is usually a whole tool result, full of scaffolding (JSON keys, headers, dates,
   * numbers) that appears everywhere and says nothing about what the model is looking for; and terms
   * no document contains cannot match. Scores are normalised by the score of an average-length
   * document holding each distinctive term once, and capped at 1.
   */
  search(query: string, ids?: Iterable<number>, limit = 20): { id: number; score: number }[] {
    if (this.#docs.size === 0) return [];
    const n = this.#docs.size;
    const cutoff = Math.max(2, Math.floor(n * 0.1));
    const q = [...new Set(terms(query))].filter((t) => {
      const df = this.#df.get(t) ?? 0;
      return df > 0 && df <= cutoff;
    });
    if (q.length === 0) return [];
    const avg = this.#totalLength / n || 1;
    const k1 = 1.2;
    const b = 0.75;
    const idf = (t: string) => {
      const df = this.#df.get(t) ?? 0;
      return Math.log(1 + (n - df + 0.5) / (df + 0.5));
    };
    // The score of an average-length document holding each distinctive term once: BM25 gives idf per term.
    const maxPossible = q.reduce((s, t) => s + idf(t), 0) || 1;
    const out: { id: number; score: number }[] = [];
    for (const id of ids ?? this.#docs.keys()) {
      const tf = this.#docs.get(id);
      if (!tf) continue;
      const len = this.#lengths.get(id) ?? 0;
      let s = 0;
      for (const t of q) {
        const f = tf.get(t) ?? 0;
        if (f > 0) s += (idf(t) * f * (k1 + 1)) / (f + k1 * (1 - b + (b * len) / avg));
      }
      if (s > 0) out.push({ id, score: Math.min(1, s / maxPossible) });
    }
    return out.sort((x, y) => y.score - x.score).slice(0, limit);
  }
}

// --- planning -----------------------------------------------------------------------------------

export interface StepGroup {
  readonly step: number;
  readonly pages: readonly PageInfo[];
  readonly tokens: number;
  readonly protected: boolean;
  readonly resident: boolean;
}

export function groupSteps(pages: readonly PageInfo[], currentStep: number, recentSteps: number): StepGroup[] {
  const by = new Map<number, PageInfo[]>();
  for (const p of pages) by.set(p.step, [...(by.get(p.step) ?? []), p]);
  return [...by.entries()]
    .sort(([a], [b]) => a - b)
    .map(([step, ps]) => ({
      step,
      pages: ps,
      tokens: ps.reduce((n, p) => n + p.tokens, 0),
      protected: step === 0 || ps.some((p) => p.pinned) || step > currentStep - recentSteps,
      resident: ps.every((p) => p.resident),
    }));
}

export function scoreGroup(g: StepGroup, currentStep: number, relevance: number, maxAccess: number): number {
  const recency = Math.exp(-(currentStep - g.step) / 50);
  const importance = Math.max(...g.pages.map((p) => p.importance));
  const accesses = Math.max(...g.pages.map((p) => p.access_count));
  const frequency = maxAccess > 0 ? Math.log(1 + accesses) / Math.log(1 + maxAccess) : 0;
  return 0.35 * relevance + 0.25 * recency + 0.25 * importance + 0.15 * frequency;
}

/** Runs of consecutive swapped steps (after the task), each of which becomes one stub. */
export function swappedRuns(groups: readonly StepGroup[]): { from: number; to: number; pages: number; tokens: number }[] {
  const runs: { from: number; to: number; pages: number; tokens: number }[] = [];
  for (const g of groups) {
    if (g.resident || g.step === 0) continue;
    const last = runs.at(-1);
    const prevStep = groups[groups.indexOf(g) - 1];
    if (last && prevStep && !prevStep.resident && prevStep.step === last.to) {
      runs[runs.length - 1] = { ...last, to: g.step, pages: last.pages + g.pages.length, tokens: last.tokens + g.tokens };
    } else runs.push({ from: g.step, to: g.step, pages: g.pages.length, tokens: g.tokens });
  }
  return runs;
}

export function workingSetTokens(groups: readonly StepGroup[]): number {
  return groups.filter((g) => g.resident).reduce((n, g) => n + g.tokens, 0) + swappedRuns(groups).length * STUB_TOKENS;
}

export interface Plan {
  /** Steps to fault back in (relevant to the newest input). */
  readonly page_in: readonly number[];
  /** Steps to evict (a compaction), lowest score first. */
  readonly evict: readonly number[];
  /** Working-set tokens after applying the plan. */
  readonly tokens: number;
  readonly relevance: ReadonlyMap<number, number>;
}

/**
 * Decide page-ins and evictions for the next prompt. `relevance` maps steps to their lexical
 * relevance to the newest input (0 when absent).
 */
export function plan(pages: readonly PageInfo[], cfg: PagerConfig, currentStep: number, relevance: ReadonlyMap<number, number>): Plan {
  let groups = groupSteps(pages, currentStep, cfg.recent_steps);
  const faultAllowance = cfg.budget * cfg.fault_share;
  const pageIn: number[] = [];
  let faulted = 0;
  const swappedByRelevance = groups.filter((g) => !g.resident && (relevance.get(g.step) ?? 0) >= cfg.fault_threshold).sort((a, b) => (relevance.get(b.step) ?? 0) - (relevance.get(a.step) ?? 0));
  for (const g of swappedByRelevance) {
    if (faulted + g.tokens > faultAllowance) continue;
    pageIn.push(g.step);
    faulted += g.tokens;
  }
  const faultedSet = new Set(pageIn);
  groups = groups.map((g) => (faultedSet.has(g.step) ? { ...g, resident: true } : g));
  const evict: number[] = [];
  let tokens = workingSetTokens(groups);
  if (tokens > cfg.budget) {
    const maxAccess = Math.max(0, ...pages.map((p) => p.access_count));
    const candidates = groups
      .filter((g) => g.resident && !g.protected && !faultedSet.has(g.step))
      .map((g) => ({ g, score: scoreGroup(g, currentStep, relevance.get(g.step) ?? 0, maxAccess) }))
      .sort((a, b) => a.score - b.score);
    const target = cfg.budget * cfg.low_water;
    for (const { g } of candidates) {
      if (tokens <= target) break;
      evict.push(g.step);
      groups = groups.map((x) => (x.step === g.step ? { ...x, resident: false } : x));
      tokens = workingSetTokens(groups);
    }
  }
  return { page_in: pageIn, evict, tokens, relevance };
}

/** The stub that stands for a run of swapped steps. Depends only on the run, so it is stable. */
export function stubText(run: { from: number; to: number; pages: number; tokens: number }, keywords: readonly string[]): string {
  const span = run.from === run.to ? `step ${run.from}` : `steps ${run.from}-${run.to}`;
  const kw = keywords.length ? ` Topics: ${keywords.slice(0, 12).join(', ')}.` : '';
  return `[kernel] ${span} (${run.pages} pages, ${run.tokens} tokens) are paged out of this context.${kw} Bring them back with page_in {"query": "..."} or page_in {"step": ${run.from}}.`;
}

/** The most distinctive terms of some texts (for stubs). */
export function keywords(texts: readonly string[], limit = 12): string[] {
  const counts = new Map<string, number>();
  for (const t of texts) for (const w of new Set(terms(t))) counts.set(w, (counts.get(w) ?? 0) + 1);
  return [...counts.entries()]
    .filter(([w]) => w.length > 3 && !/^\d+$/.test(w))
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, limit)
    .map(([w]) => w);
}
