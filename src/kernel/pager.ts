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
 * consecutive steps one compaction evicted is replaced by one stub that says what was swapped out
 * and how to fault it back in; a stub's text depends only on its run, and a later compaction starts
 * new runs instead of growing old ones, so stubs never change. Page faults append: a swapped step
 * that is needed again comes back as a recall page at the end of the prompt, not at its old place.
 *
 * Score of a step (higher stays):
 *   0.35·relevance + 0.25·recency + 0.25·importance + 0.15·frequency
 *   relevance  lexical similarity (BM25, normalised; lexical.ts) to the newest input: what the model is working on
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
  /** The compaction that swapped the page out (0 while it has never been). Runs of swapped steps never span two. */
  readonly batch?: number;
}

export interface PagerConfig {
  readonly budget: number;
  readonly low_water: number;
  readonly recent_steps: number;
  /** Swapped steps whose relevance to the newest input reaches this are faulted back in automatically. */
  readonly fault_threshold: number;
  /** … and reaches this multiple of the best relevance of a resident step (the input refers to something missing). */
  readonly fault_margin: number;
  /** At most this share of the budget is faulted in automatically per step. */
  readonly fault_share: number;
  /** A major compaction (one that rewrites the whole prompt) goes down to this share of the budget. */
  readonly major_water: number;
  /** Recall by meaning: a step vector search found is faulted in when lexical search ranks it among its best this many steps … */
  readonly similar_lexical_top: number;
  /** … with at least this lexical relevance (it shares some distinctive term with the input). */
  readonly similar_min_relevance: number;
}

export const DEFAULT_PAGER: Omit<PagerConfig, 'budget'> = {
  low_water: 0.6,
  major_water: 0.4,
  recent_steps: 2,
  fault_threshold: 0.12,
  fault_margin: 1.5,
  fault_share: 0.1,
  similar_lexical_top: 3,
  similar_min_relevance: 0.1,
};

/**
 * Hybrid page faults: of the steps vector search found similar to the newest input (`similar`, step →
 * similarity), those lexical search also ranks among its best `similar_lexical_top` steps (other than
 * the newest). Either search alone is noisy at the top: vectors rank lines of the same shape alike (every
 * log line resembles every other), words match entities mentioned everywhere. A step both put near the
 * top is what the input is about, even when the question shares only a name with the page that answers
 * it (measured in docs/BENCHMARKS.md, paraphrased questions).
 */
export function agreeingSteps(similar: ReadonlyMap<number, number>, relevance: ReadonlyMap<number, number>, newest: number, cfg: Pick<PagerConfig, 'similar_lexical_top' | 'similar_min_relevance'>): Map<number, number> {
  if (similar.size === 0) return new Map();
  const lexicalTop = new Set(
    [...relevance.entries()]
      .filter(([step, rel]) => step !== newest && rel >= cfg.similar_min_relevance)
      .sort((a, b) => b[1] - a[1])
      .slice(0, cfg.similar_lexical_top)
      .map(([step]) => step),
  );
  return new Map([...similar].filter(([step]) => lexicalTop.has(step)));
}

export const KIND_IMPORTANCE: Readonly<Record<string, number>> = { task: 1, result: 0.5, recall: 0.5, assistant: 0.4, notice: 0.3 };

/**
 * Tokens a stub may cost in the prompt: an upper bound of its text (step range, counts, up to 12
 * topic words, the page_in hint), which the context benchmark measured at up to 97 tokens.
 */
export const STUB_TOKENS = 110;

// --- planning -----------------------------------------------------------------------------------

export interface StepGroup {
  readonly step: number;
  readonly pages: readonly PageInfo[];
  readonly tokens: number;
  readonly protected: boolean;
  readonly resident: boolean;
  /** The compaction that swapped the step out (0 if none). */
  readonly batch: number;
}

export function groupSteps(pages: readonly PageInfo[], currentStep: number, recentSteps: number): StepGroup[] {
  const by = new Map<number, PageInfo[]>();
  for (const p of pages) {
    const list = by.get(p.step);
    if (list) list.push(p);
    else by.set(p.step, [p]);
  }
  return [...by.entries()]
    .sort(([a], [b]) => a - b)
    .map(([step, ps]) => ({
      step,
      pages: ps,
      tokens: ps.reduce((n, p) => n + p.tokens, 0),
      protected: step === 0 || ps.some((p) => p.pinned) || step > currentStep - recentSteps,
      resident: ps.every((p) => p.resident),
      batch: ps.reduce((n, p) => Math.max(n, p.batch ?? 0), 0),
    }));
}

export function scoreGroup(g: StepGroup, currentStep: number, relevance: number, maxAccess: number): number {
  const recency = Math.exp(-(currentStep - g.step) / 50);
  const importance = Math.max(...g.pages.map((p) => p.importance));
  const accesses = Math.max(...g.pages.map((p) => p.access_count));
  const frequency = maxAccess > 0 ? Math.log(1 + accesses) / Math.log(1 + maxAccess) : 0;
  return 0.35 * relevance + 0.25 * recency + 0.25 * importance + 0.15 * frequency;
}

export interface SwappedRun {
  readonly from: number;
  readonly to: number;
  readonly pages: number;
  readonly tokens: number;
  readonly batch: number;
}

/**
 * Runs of consecutive swapped steps (after the task) that one compaction swapped out; each becomes
 * one stub. A later compaction never extends an earlier run, so an earlier stub's text never changes
 * and the prompt prefix up to the new stub stays cached.
 */
export function swappedRuns(groups: readonly StepGroup[]): SwappedRun[] {
  const runs: SwappedRun[] = [];
  let prev: StepGroup | undefined;
  for (const g of groups) {
    if (!g.resident && g.step !== 0) {
      const last = runs.at(-1);
      if (last && prev && !prev.resident && prev.step === last.to && prev.batch === g.batch) {
        runs[runs.length - 1] = { ...last, to: g.step, pages: last.pages + g.pages.length, tokens: last.tokens + g.tokens };
      } else runs.push({ from: g.step, to: g.step, pages: g.pages.length, tokens: g.tokens, batch: g.batch });
    }
    prev = g;
  }
  return runs;
}

export function workingSetTokens(groups: readonly StepGroup[]): number {
  return groups.filter((g) => g.resident).reduce((n, g) => n + g.tokens, 0) + swappedRuns(groups).length * STUB_TOKENS;
}

/** Tokens a recall page adds to its step's pages: the header naming the step it comes from. */
export const RECALL_OVERHEAD_TOKENS = 24;

export interface Plan {
  /** Swapped steps to recall: their content is appended to the newest step (relevant to the newest input). */
  readonly recall: readonly number[];
  /** Steps to evict (a compaction), lowest score first. */
  readonly evict: readonly number[];
  /** The compaction's number, recorded on the pages it swaps out. */
  readonly batch: number;
  /** A major compaction: every swapped page joins `batch`, so adjacent runs merge into one stub each. */
  readonly rebatch: boolean;
  /** Working-set tokens after applying the plan. */
  readonly tokens: number;
  readonly relevance: ReadonlyMap<number, number>;
}

/**
 * Decide recalls and evictions for the next prompt. `relevance` maps steps to their lexical relevance
 * to the newest input (0 when absent); `recalled` are swapped steps whose content is already in the
 * working set through a recall page; `singledOut` are swapped steps vector search found the newest
 * input to single out by meaning (step → similarity): they are faulted in after the lexical ones,
 * within the same allowance.
 *
 * Page faults. A swapped step is recalled when its relevance reaches `fault_threshold` and is
 * `fault_margin` times the best relevance of any resident step other than the newest: the input
 * refers to something the working set lacks. (A routine input, such as a directory listing much like
 * the last one, matches resident pages as well as swapped ones, and faults nothing in.) A recall does
 * not put the step back at its old place in the prompt (that would change the prompt from there on
 * and miss the provider's cache): its content is appended to the newest step as a recall page, and
 * the original stays swapped and keeps its stub.
 *
 * Compaction, when the working set is over budget, is generational. A minor compaction evicts, lowest
 * score first, only steps newer than every swapped step (those appended since the last compaction),
 * down to `low_water` × budget: the older part of the prompt and its stubs stay as they were, so the
 * provider's cache still holds that prefix. When that cannot reach the mark, a major compaction
 * scores every unprotected step, merges all runs of swapped steps (one stub per run), and goes down to
 * `major_water` × budget, which leaves room for several minor ones.
 */
export function plan(
  pages: readonly PageInfo[],
  cfg: PagerConfig,
  currentStep: number,
  relevance: ReadonlyMap<number, number>,
  recalled: ReadonlySet<number> = new Set(),
  singledOut: ReadonlyMap<number, number> = new Map(),
): Plan {
  const groups = groupSteps(pages, currentStep, cfg.recent_steps);
  const newest = groups.at(-1)?.step ?? 0;
  const rel = (step: number) => relevance.get(step) ?? 0;

  let bestResident = 0;
  for (const g of groups) if (g.resident && g.step !== newest && g.step !== 0) bestResident = Math.max(bestResident, rel(g.step));
  const faultFloor = Math.max(cfg.fault_threshold, cfg.fault_margin * bestResident);
  const faultAllowance = cfg.budget * cfg.fault_share;
  const recall: number[] = [];
  let faulted = 0;
  // Lexically relevant steps first (best first), then those only vector search singled out (most similar first).
  const lexical = (step: number) => rel(step) >= faultFloor;
  const swappedByRelevance = groups
    .filter((g) => !g.resident && g.step !== 0 && !recalled.has(g.step) && (lexical(g.step) || singledOut.has(g.step)))
    .sort((a, b) => Number(lexical(b.step)) - Number(lexical(a.step)) || rel(b.step) - rel(a.step) || (singledOut.get(b.step) ?? 0) - (singledOut.get(a.step) ?? 0));
  for (const g of swappedByRelevance) {
    const cost = g.tokens + RECALL_OVERHEAD_TOKENS;
    if (faulted + cost > faultAllowance) continue;
    recall.push(g.step);
    faulted += cost;
  }

  const batch = 1 + groups.reduce((n, g) => Math.max(n, g.batch), 0);
  const resident = groups.map((g) => g.resident);
  const batchOf = groups.map((g) => g.batch);
  const countRuns = () => {
    let runs = 0;
    for (let i = 0; i < groups.length; i++) if (!resident[i] && !(i > 0 && !resident[i - 1] && batchOf[i - 1] === batchOf[i])) runs += 1;
    return runs;
  };
  let residentTokens = groups.reduce((n, g) => n + (g.resident ? g.tokens : 0), 0);
  let runs = countRuns();
  const total = () => residentTokens + runs * STUB_TOKENS + faulted;
  /** Swap out group i as part of this compaction, keeping the run count current. */
  const swapOut = (i: number) => {
    const joinsLeft = i > 0 && !resident[i - 1] && batchOf[i - 1] === batch;
    const joinsRight = i + 1 < groups.length && !resident[i + 1] && batchOf[i + 1] === batch;
    resident[i] = false;
    batchOf[i] = batch;
    residentTokens -= (groups[i] as StepGroup).tokens;
    runs += 1 - Number(joinsLeft) - Number(joinsRight);
  };

  const evict: number[] = [];
  let rebatch = false;
  if (total() > cfg.budget) {
    const maxAccess = Math.max(0, ...pages.map((p) => p.access_count));
    const frontier = groups.reduce((n, g) => (g.resident ? n : Math.max(n, g.step)), 0);
    const candidates = groups
      .map((g, i) => ({ g, i, score: scoreGroup(g, currentStep, rel(g.step), maxAccess) }))
      .filter(({ g }) => g.resident && !g.protected)
      .sort((a, b) => a.score - b.score);
    const minorTarget = cfg.budget * cfg.low_water;
    for (const c of candidates) {
      if (total() <= minorTarget) break;
      if (c.g.step <= frontier) continue;
      swapOut(c.i);
      evict.push(c.g.step);
    }
    if (total() > minorTarget) {
      rebatch = true;
      for (let i = 0; i < groups.length; i++) if (!resident[i]) batchOf[i] = batch;
      runs = countRuns();
      const majorTarget = cfg.budget * cfg.major_water;
      for (const c of candidates) {
        if (total() <= majorTarget) break;
        if (!resident[c.i]) continue;
        swapOut(c.i);
        evict.push(c.g.step);
      }
    }
  }
  return { recall, evict, batch, rebatch, tokens: total(), relevance };
}

/** The stub that stands for a run of swapped steps. Depends only on the run, so it is stable. */
export function stubText(run: SwappedRun, keywords: readonly string[]): string {
  const span = run.from === run.to ? `step ${run.from}` : `steps ${run.from}-${run.to}`;
  const kw = keywords.length ? ` Topics: ${keywords.slice(0, 12).join(', ')}.` : '';
  return `[kernel] ${span} (${run.pages} pages, ${run.tokens} tokens) are paged out of this context.${kw} Bring them back with page_in {"query": "..."} or page_in {"step": ${run.from}}.`;
}
