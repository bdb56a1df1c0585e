/**
 * Context benchmark: the simulation (bundled with esbuild and run by ./run.mjs; no LLM, no network).
 *
 * It replays one synthetic session (./workload.ts) through several context strategies at the same
 * token budget and measures what each prompt contains:
 *
 *  - kernel: the Durable Object's own `prepareContext` (src/process/context-manager.ts), called
 *    unchanged before every LLM call against an in-memory stand-in for the process runtime (./host.ts: page
 *    table, BM25 index and page bodies exactly as ProcessRuntime.addPage writes them). So relevance
 *    search, `plan`, page faults, batched compaction and stubs are the shipping code, not a copy.
 *    Variant `kernel + page_in`: when a queried fact is not in the prompt, the simulated model spends
 *    one extra turn on page_in {"query": <the question>} (optionally with "limit"), served as the
 *    page_in handler does (src/process/handlers.ts and StepLoop's searchSteps: relevanceByStep over
 *    steps 0 < step < current, score ≥ 0.1, best `limit` (default 3), set resident). Other labelled
 *    variants patch DEFAULT_PAGER's fields in this bundle (never in src/) or change the workload.
 *  - window: sliding-window truncation: the task plus the newest whole steps that fit.
 *  - summary: summarise-everything: the task, a running summary of every step older than the window
 *    (≤ summaryTokens), and the newest steps that fit the rest. The summary is rewritten whenever a
 *    step leaves the window (most steps); what it reads (its previous text + the steps that just left
 *    the window + an instruction) and writes is counted separately. It is simulated, generously: each step contributes one verbatim line (the planted fact sentence
 *    if the step has one, else a one-line digest of the step) and the summary keeps the newest lines
 *    that fit. An LLM summary would paraphrase and could drop or garble facts; this one never does.
 *    Variant `summary (fact-aware oracle)`: the summariser knows which lines are the planted facts and
 *    keeps them first: an upper bound no real summariser reaches.
 *
 * Prompts are rendered with the kernel's buildRequest (src/kernel/context.ts, native tool mode); a
 * message's text is its content (assistant turns plus their tool calls, tool results prefixed by the
 * tool name, i.e. pageText) and every message is tokenized with the kernel's tokenizer (o200k_base).
 *
 * Metrics per strategy: prompts whose context (every message but the system prompt) fits the budget;
 * recall (the queried fact's sentence is in the prompt the model answers the question from, i.e. the
 * one right after the query turn; with page_in, also the prompt after the page_in turn); prefix reuse
 * (Σ tokens each prompt shares as a prefix with the previous one, token by token across messages,
 * system prompt included, ÷ Σ prompt tokens); page-fault latency (wall time in this Node process from
 * prepareContext's start to the commit of the transaction that applied an auto fault: page totals,
 * page table read, BM25 search, plan, setResident; steps with an auto fault only); prompt tokens.
 */
import { encode } from 'gpt-tokenizer/encoding/o200k_base';
import { type PageBody, buildRequest, pageText } from '../../../src/kernel/context.ts';
import { IMAGES } from '../../../src/kernel/images.ts';
import { DEFAULT_PAGER, type PagerConfig, STUB_TOKENS } from '../../../src/kernel/pager.ts';
import { countTokens } from '../../../src/llm/tokens.ts';
import type { ChatMessage } from '../../../src/llm/types.ts';
import { type ContextHost, type ContextPage, findSwapped, prepareContext, recallSteps, relevanceByStep, searchSwapped, vectorRecall } from '../../../src/process/context-manager.ts';
import type { MemoryService } from '../../../src/memory/service.ts';
import { SimRuntime } from './host.ts';
import { type EmbedderKind, simMemory } from './vectors.ts';
import { type Fact, type Turn, type Workload, generateWorkload } from './workload.ts';

export interface BenchOptions {
  readonly turns: number;
  readonly facts: number;
  readonly budget: number;
  readonly seed: number;
  readonly minGap: number;
  readonly summaryTokens: number;
  readonly log: (line: string) => void;
  /** Where the semantic embedder caches vectors (vectors.ts). */
  readonly embeddingCache?: string;
}

// --- prompts, tokens and metrics ---------------------------------------------------------------------

interface Msg {
  readonly text: string;
  readonly toks: Uint32Array;
}

const tokenCache = new Map<string, Uint32Array>();
function tokens(text: string, cache = true): Uint32Array {
  const hit = tokenCache.get(text);
  if (hit) return hit;
  const t = Uint32Array.from(encode(text));
  if (cache) tokenCache.set(text, t);
  return t;
}

function messageText(m: ChatMessage): string {
  switch (m.role) {
    case 'assistant':
      return m.tool_calls?.length ? `${m.content}\n${m.tool_calls.map((c) => `${c.name} ${typeof c.args === 'string' ? c.args : JSON.stringify(c.args)}`).join('\n')}` : m.content;
    case 'tool':
      return `${m.name} ${m.content}`;
    case 'user':
      return m.content;
  }
}

const SYSTEM_PROMPT = IMAGES.default?.system_prompt ?? '';

/** The prompt as token arrays: the system prompt, then one entry per message. `uncached`: indexes of messages whose tokens are not cached (summaries). */
function render(pages: readonly (PageBody & { step?: number })[], uncached?: ReadonlySet<number>): Msg[] {
  const req = buildRequest({ system_prompt: SYSTEM_PROMPT, tool_mode: 'native', model: 'bench', pages });
  const out: Msg[] = [{ text: req.system, toks: tokens(req.system) }];
  req.messages.forEach((m, i) => {
    const text = messageText(m);
    out.push({ text, toks: tokens(text, !uncached?.has(i)) });
  });
  return out;
}

function commonPrefix(prev: readonly Msg[], cur: readonly Msg[]): number {
  let n = 0;
  for (let i = 0; i < Math.min(prev.length, cur.length); i++) {
    const a = prev[i] as Msg;
    const b = cur[i] as Msg;
    if (a.toks === b.toks || a.text === b.text) {
      n += b.toks.length;
      continue;
    }
    let j = 0;
    while (j < a.toks.length && j < b.toks.length && a.toks[j] === b.toks[j]) j++;
    return n + j;
  }
  return n;
}

const median = (xs: readonly number[]): number | null => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const pct = (xs: readonly number[], p: number): number | null => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
};

interface QueryDiag {
  fact: number;
  template: string;
  fact_turn: number;
  query_turn: number;
  in_prompt: boolean;
  was_resident: boolean;
  faulted: boolean;
  /** Normalised BM25 relevance of the fact's step to the newest input, and its rank among steps other than the query's. */
  relevance: number;
  rank: number;
  /** The three best-matching steps (other than the query's): what produced them, and their scores. */
  top: string[];
  page_in?: { steps: number[]; /** Rank of the fact's step among the steps page_in's search returned (0: not in the top 200). */ fact_rank: number; fact_score: number; query_step_in_results: boolean; /** What the returned steps were (their newest input's kind: a tool name, fact, query, page_in). */ returned: string[]; hit: boolean };
}

interface MissInfo {
  fact: number;
  template: string;
  fact_turn: number;
  query_turn: number;
  /** Relevance of the fact's step to the query page (normalised BM25), and its rank among all steps. */
  relevance: number;
  rank: number;
  /** Why the kernel did not fault it in. */
  reason: string;
}

class Meter {
  prompts = 0;
  fits = 0;
  maxContextTokens = 0;
  promptTokens = 0;
  prefixTokens = 0;
  summaryInput = 0;
  summaryOutput = 0;
  hits = 0;
  queries = 0;
  explicitHits = 0;
  extraTurns = 0;
  readonly faultLatency: number[] = [];
  readonly prepareLatency: number[] = [];
  readonly misses: MissInfo[] = [];
  /** Per-step prefix reuse, for the breakdown (compaction / fault / neither). */
  readonly reuseByKind = new Map<string, { prefix: number; tokens: number; steps: number }>();
  #prev: Msg[] | null = null;

  constructor(readonly budget: number) {}

  add(msgs: Msg[], kind = 'append'): void {
    const total = msgs.reduce((n, m) => n + m.toks.length, 0);
    const context = total - (msgs[0]?.toks.length ?? 0);
    this.prompts += 1;
    if (context <= this.budget) this.fits += 1;
    this.maxContextTokens = Math.max(this.maxContextTokens, context);
    this.promptTokens += total;
    const prefix = this.#prev ? commonPrefix(this.#prev, msgs) : 0;
    this.prefixTokens += prefix;
    const k = this.reuseByKind.get(kind) ?? { prefix: 0, tokens: 0, steps: 0 };
    this.reuseByKind.set(kind, { prefix: k.prefix + prefix, tokens: k.tokens + total, steps: k.steps + 1 });
    this.#prev = msgs;
  }

  result(name: string, extra: Record<string, unknown> = {}) {
    const round = (x: number | null, d = 3) => (x === null ? null : Math.round(x * 10 ** d) / 10 ** d);
    return {
      strategy: name,
      prompts: this.prompts,
      fits_budget: round(this.fits / this.prompts, 4),
      max_context_tokens: this.maxContextTokens,
      recall: round(this.hits / this.queries, 4),
      recall_hits: this.hits,
      queries: this.queries,
      prefix_reuse: round(this.prefixTokens / this.promptTokens, 4),
      median_fault_ms: round(median(this.faultLatency)),
      p95_fault_ms: round(pct(this.faultLatency, 95)),
      faults: this.faultLatency.length,
      median_prepare_ms: round(median(this.prepareLatency)),
      prompt_tokens: this.promptTokens,
      cached_prefix_tokens: this.prefixTokens,
      summary_input_tokens: this.summaryInput,
      summary_output_tokens: this.summaryOutput,
      reuse_by_step_kind: Object.fromEntries([...this.reuseByKind].map(([k, v]) => [k, { steps: v.steps, reuse: round(v.prefix / v.tokens, 4) }])),
      ...(this.misses.length ? { misses: this.misses } : {}),
      ...extra,
    };
  }
}

export type StrategyResult = ReturnType<Meter['result']>;

const hasFact = (msgs: readonly Msg[], fact: Fact) => msgs.some((m) => m.text.includes(fact.sentence));

/** Tuning knobs for recall by meaning (defaults: the kernel's): BENCH_VECTOR='{"queryLines":8,"topSteps":5}'; pager fields through BENCH_PAGER='{"similar_lexical_top":5}'. */
const VECTOR_TUNING = JSON.parse(process.env.BENCH_VECTOR ?? '{}') as { queryLines?: number; topSteps?: number };
Object.assign(DEFAULT_PAGER, JSON.parse(process.env.BENCH_PAGER ?? '{}'));

// --- strategy 1: the kernel pager ---------------------------------------------------------------------

async function runKernel(w: Workload, o: BenchOptions, cfg: { pageInLimit: number; label: string; memory?: MemoryService }): Promise<StrategyResult> {
  const rt = new SimRuntime();
  const sim: ContextHost = rt;
  const m = new Meter(o.budget);
  const pager: PagerConfig = { ...DEFAULT_PAGER, budget: o.budget };
  rt.addPage(0, w.task);
  const stepOfTurn = new Map<number, number>();
  let step = 0;
  let compactions = 0;
  const queries: QueryDiag[] = [];
  let maxStub = 0;
  let maxPagerTokens = 0;
  let over = 0;
  let overOnlyByStubs = 0;
  const overStubExcess: number[] = [];
  const stubCounts: number[] = [];
  /** What produced each step's newest input: the tool name, or "query"/"page_in". */
  const kindOfStep = new Map<number, string>([[0, 'task']]);
  const faultsByInput: Record<string, number> = {};
  const faultedByKind: Record<string, number> = {};
  let faultedPages = 0;
  /** page_in calls whose result included the fact's step, and how many of those the next compaction evicted again. */
  let pageInFound = 0;
  let pageInUndone = 0;
  const returnedKinds: Record<string, number> = {};
  /** Steps faulted in because vector search singled them out, and what they were. */
  let vectorFaults = 0;
  const vectorFaultKinds: Record<string, number> = {};

  /** Prepare the prompt for `step` exactly as StepEngine.#think does, timing it; returns the messages. */
  const prepare = async (): Promise<{ msgs: Msg[]; pages: ContextPage[]; faulted: number[] }> => {
    rt.now += 1000;
    const before = rt.events.length;
    // Recall by meaning, as StepLoop.#think runs it before prepareContext (not in the timed part: its
    // cost is the embedder's and the store's, measured by scripts/bench/memory).
    const semantic = cfg.memory ? await vectorRecall(sim, { memory: cfg.memory, owner: { tenant: 'bench', pid: 'p' }, ...VECTOR_TUNING }) : new Map<number, number>();
    const vectorError = rt.events.slice(before).find((e) => e.type === 'vector_recall_error');
    if (vectorError) throw new Error(`vector recall failed: ${JSON.stringify(vectorError.data)}`);
    const t0 = performance.now();
    const { pages, tokens: pagerTokens } = prepareContext(sim, o.budget, step, semantic);
    const t2 = performance.now();
    const evs = rt.events.slice(before);
    const fault = evs.find((e) => e.type === 'page_fault');
    for (const b of (fault?.data as { by_similarity?: { step: number }[] } | undefined)?.by_similarity ?? []) {
      vectorFaults += 1;
      vectorFaultKinds[kindOfStep.get(b.step) ?? '?'] = (vectorFaultKinds[kindOfStep.get(b.step) ?? '?'] ?? 0) + 1;
    }
    const compaction = evs.some((e) => e.type === 'compaction');
    const faultedSteps = fault ? ((fault.data as { steps: number[] }).steps ?? []) : [];
    if (fault) {
      m.faultLatency.push(rt.store.lastCommit - t0);
      const input = kindOfStep.get(step - 1) ?? '?';
      faultsByInput[input] = (faultsByInput[input] ?? 0) + 1;
      for (const s of faultedSteps) faultedByKind[kindOfStep.get(s) ?? '?'] = (faultedByKind[kindOfStep.get(s) ?? '?'] ?? 0) + 1;
      faultedPages += faultedSteps.length;
    }
    if (compaction) compactions += 1;
    m.prepareLatency.push(t2 - t0);
    const msgs = render(pages);
    let stubs = 0;
    let stubTokens = 0;
    for (const x of msgs) {
      if (!x.text.startsWith('[kernel] ') || x.text.startsWith('[kernel] page fault')) continue;
      stubs += 1;
      stubTokens += x.toks.length;
      maxStub = Math.max(maxStub, x.toks.length);
    }
    stubCounts.push(stubs);
    const context = msgs.reduce((n, x) => n + x.toks.length, 0) - (msgs[0]?.toks.length ?? 0);
    maxPagerTokens = Math.max(maxPagerTokens, pagerTokens);
    if (context > o.budget) {
      over += 1;
      if (pagerTokens <= o.budget) overOnlyByStubs += 1;
      // The pager counts STUB_TOKENS per stub; the real stubs cost stubTokens.
      overStubExcess.push(stubTokens - stubs * STUB_TOKENS);
    }
    m.add(msgs, fault && compaction ? 'fault+compaction' : fault ? 'fault' : compaction ? 'compaction' : 'append');
    return { msgs, pages, faulted: faultedSteps };
  };

  for (const turn of w.turns) {
    step += 1;
    const residentBefore = (f: Fact) => rt.store.stepResident(stepOfTurn.get(f.factTurn) ?? -1);
    const pending = turn.turn > 1 ? w.turns[turn.turn - 2]?.queryOf : undefined;
    const pendingFact = pending === undefined ? undefined : w.facts[pending];
    const wasResident = pendingFact ? residentBefore(pendingFact) : false;
    const { msgs, faulted } = await prepare();
    if (pendingFact) {
      // The prompt the model answers the question from (the query turn's result is the newest input).
      m.queries += 1;
      const factStep = stepOfTurn.get(pendingFact.factTurn) as number;
      const queryStep = step - 1;
      const hit = hasFact(msgs, pendingFact);
      if (hit) m.hits += 1;
      // Diagnostics: the fact step's relevance to the newest input, and its rank among the other steps.
      const queryText = pageText(w.turns[pendingFact.queryTurn - 1]?.result as PageBody);
      const rel = relevanceByStep(sim, rt.store.pages.meta(), queryText, rt.store.rows.filter((x) => x.step === queryStep && x.kind === 'result').map((x) => x.seq));
      const r = rel.get(factStep) ?? 0;
      const ranked = [...rel.entries()].filter(([s]) => s !== queryStep).sort((a, b) => b[1] - a[1]);
      const rank = ranked.findIndex(([s]) => s === factStep) + 1;
      const d: QueryDiag = { fact: pendingFact.id, template: pendingFact.template, fact_turn: pendingFact.factTurn, query_turn: pendingFact.queryTurn, in_prompt: hit, was_resident: wasResident, faulted: faulted.includes(factStep), relevance: Math.round(r * 1000) / 1000, rank, top: ranked.slice(0, 3).map(([x, sc]) => `${x === factStep ? 'FACT' : (kindOfStep.get(x) ?? '?')} ${sc.toFixed(2)}`) };
      queries.push(d);
      if (!hit) {
        const groupTokens = rt.store.rows.filter((x) => x.step === factStep).reduce((n, x) => n + x.tokens, 0);
        const reason =
          r < pager.fault_threshold
            ? `relevance ${r.toFixed(2)} < fault_threshold ${pager.fault_threshold}`
            : `relevance ${r.toFixed(2)} ≥ threshold but not faulted: the fault_share allowance (${pager.budget * pager.fault_share} tokens) went to ${faulted.length} more relevant step(s) (fact step: ${groupTokens} tokens)`;
        m.misses.push({ fact: pendingFact.id, template: pendingFact.template, fact_turn: pendingFact.factTurn, query_turn: pendingFact.queryTurn, relevance: Math.round(r * 100) / 100, rank, reason: wasResident ? `was resident, evicted; ${reason}` : reason });
        if (cfg.pageInLimit) {
          // The model sees the stub and spends this step on page_in {"query": <the question>}.
          const call_id = `pagein_${turn.turn}`;
          const query = pendingFact.question;
          const args = cfg.pageInLimit === 3 ? { query } : { query, limit: cfg.pageInLimit };
          rt.addPage(step, { kind: 'assistant', text: 'That detail is in a paged-out step; bringing it back.', tool_calls: [{ id: call_id, name: 'page_in', args }] });
          // As the page_in handler (src/process/handlers.ts + context-manager's findSwapped): swapped steps
          // with 0 < step < current matching the query lexically (score >= 0.1) and, with vector recall, by
          // meaning, merged by reciprocal rank, at most `limit` (default 3), recalled. `found` (lexical) is for diagnostics.
          const found = searchSwapped(sim, query, step).map((h) => [h.step, h.score] as const);
          const steps = await findSwapped(sim, query, step, cfg.pageInLimit, cfg.memory ? { memory: cfg.memory, owner: { tenant: 'bench', pid: 'p' } } : undefined);
          rt.store.transaction(() => recallSteps(sim, steps, step));
          rt.addPage(step, { kind: 'result', call_id, name: 'page_in', via: 'native', result: steps.length ? { ok: true, value: { recalled_steps: steps } } : { ok: false, error: { code: 'ENOENT', message: `no paged-out step matches "${query.slice(0, 80)}"` } } });
          m.extraTurns += 1;
          kindOfStep.set(step, 'page_in');
          step += 1;
          const again = await prepare();
          const ok = hasFact(again.msgs, pendingFact);
          if (ok) m.explicitHits += 1;
          const factRank = found.findIndex(([s]) => s === factStep) + 1;
          const what = (x: number) => (x === factStep ? 'the fact' : x === queryStep ? 'this query' : kindOfStep.get(x) === 'fact' ? 'another fact' : kindOfStep.get(x) === 'query' ? 'an earlier query' : kindOfStep.get(x) === 'page_in' ? 'an earlier page_in' : `filler (${kindOfStep.get(x) ?? '?'})`);
          if (steps.includes(factStep)) {
            pageInFound += 1;
            if (!ok) pageInUndone += 1;
          }
          d.page_in = { steps, fact_rank: factRank, fact_score: Math.round((found.find(([s]) => s === factStep)?.[1] ?? 0) * 1000) / 1000, query_step_in_results: steps.includes(queryStep), returned: steps.map(what), hit: ok };
          for (const x of steps) returnedKinds[what(x)] = (returnedKinds[what(x)] ?? 0) + 1;
        }
      }
    }
    stepOfTurn.set(turn.turn, step);
    kindOfStep.set(step, turn.queryOf !== undefined ? 'query' : turn.factId !== undefined ? 'fact' : turn.result.name);
    rt.addPage(step, turn.assistant);
    rt.addPage(step, turn.result);
    if (turn.turn % 500 === 0) o.log(`  ${cfg.label}: turn ${turn.turn}/${w.turns.length}`);
  }
  return m.result(cfg.label, {
    compactions,
    fault_steps: m.faultLatency.length,
    faulted_steps: faultedPages,
    faults_by_newest_input: faultsByInput,
    faulted_step_kinds: faultedByKind,
    over_budget_prompts: over,
    over_budget_only_because_of_stub_estimate: overOnlyByStubs,
    median_stub_excess_when_over: median(overStubExcess),
    stubs_per_prompt: { median: median(stubCounts), max: Math.max(0, ...stubCounts) },
    max_pager_tokens: maxPagerTokens,
    ...(cfg.memory ? { vector_recall: { embedder: cfg.memory.embedder.model, lexical: cfg.memory.embedder.lexical, faulted_steps: vectorFaults, faulted_step_kinds: vectorFaultKinds } } : {}),
    ...(cfg.pageInLimit ? { recall_with_page_in: Math.round(((m.hits + m.explicitHits) / m.queries) * 1e4) / 1e4, page_in_turns: m.extraTurns, page_in_hits: m.explicitHits, page_in_limit: cfg.pageInLimit, page_in_brought_fact: pageInFound, page_in_fact_evicted_by_next_compaction: pageInUndone, page_in_returned_kinds: returnedKinds } : {}),
    max_stub_tokens: maxStub,
    planned_stub_tokens: STUB_TOKENS,
    pager: { ...pager },
    queries_detail: queries,
  });
}

// --- strategies 2 and 3: sliding window and summarise-everything ---------------------------------------

interface StepPages {
  readonly step: number;
  readonly pages: readonly (PageBody & { step: number })[];
  readonly tokens: number;
  readonly turn: Turn;
}

const SUMMARISER_PROMPT = 'Rewrite the running summary of this agent session so far: keep every detail that may be asked about later (codes, names, versions, rooms, dates), drop the rest. At most N tokens.';

function runBaseline(w: Workload, o: BenchOptions, mode: 'window' | 'summary' | 'summary-oracle', label: string): StrategyResult {
  const m = new Meter(o.budget);
  const taskTokens = countTokens(pageText(w.task));
  const steps: StepPages[] = [];
  const factOf = new Map(w.facts.map((f) => [f.factTurn, f]));
  /** One verbatim summary line per step: its planted fact, else a digest. */
  const lines: { text: string; tokens: number; fact: boolean }[] = [];
  const summarise = mode !== 'window';
  const header = (to: number) => `Summary of steps 1-${to} (oldest first):`;
  const instrTokens = countTokens(SUMMARISER_PROMPT);
  let summarisedTo = 0;
  let summaryText = '';
  let summaryTokens = 0;
  let rewrites = 0;
  for (const turn of w.turns) {
    const step = turn.turn;
    // Prompt for `step`: the task, [summary], the newest whole steps that fit.
    const avail = o.budget - taskTokens - (summarise ? o.summaryTokens : 0);
    let used = 0;
    let from = steps.length;
    while (from > 0 && used + (steps[from - 1] as StepPages).tokens <= avail) {
      from -= 1;
      used += (steps[from] as StepPages).tokens;
    }
    const pages: (PageBody & { step: number })[] = [{ ...w.task, step: 0 }];
    const uncached = new Set<number>();
    if (summarise && from > 0) {
      const to = (steps[from - 1] as StepPages).step;
      if (to !== summarisedTo) {
        // Rewrite: read the previous summary and every step that just fell out of the window.
        const dropped = steps.filter((s) => s.step > summarisedTo && s.step <= to);
        m.summaryInput += instrTokens + summaryTokens + dropped.reduce((n, s) => n + s.tokens, 0);
        const room = o.summaryTokens - countTokens(`[kernel] ${header(to)}`) - 2;
        const keep = new Set<number>();
        let n = 0;
        if (mode === 'summary-oracle') {
          for (let i = to - 1; i >= 0; i--) {
            const l = lines[i] as (typeof lines)[number];
            if (l.fact && n + l.tokens + 1 <= room) {
              keep.add(i);
              n += l.tokens + 1;
            }
          }
        }
        for (let i = to - 1; i >= 0; i--) {
          const l = lines[i] as (typeof lines)[number];
          if (keep.has(i)) continue;
          if (n + l.tokens + 1 > room) break;
          keep.add(i);
          n += l.tokens + 1;
        }
        const kept = [...keep].sort((a, b) => a - b).map((i) => (lines[i] as (typeof lines)[number]).text);
        for (;;) {
          summaryText = `${header(to)}\n${kept.join('\n')}`;
          summaryTokens = countTokens(`[kernel] ${summaryText}`);
          if (summaryTokens <= o.summaryTokens || kept.length === 0) break;
          kept.shift();
        }
        m.summaryOutput += summaryTokens;
        rewrites += 1;
        summarisedTo = to;
      }
      uncached.add(pages.length);
      pages.push({ kind: 'notice', text: summaryText, step: 0 });
    }
    for (let i = from; i < steps.length; i++) pages.push(...(steps[i] as StepPages).pages);
    const msgs = render(pages, uncached);
    m.add(msgs, summarise ? 'summary' : 'window');
    const prev = w.turns[turn.turn - 2];
    if (prev?.queryOf !== undefined) {
      const fact = w.facts[prev.queryOf] as Fact;
      m.queries += 1;
      if (hasFact(msgs, fact)) m.hits += 1;
    }
    // The model's turn and its result.
    const ps = [
      { ...turn.assistant, step },
      { ...turn.result, step },
    ];
    steps.push({ step, pages: ps, tokens: ps.reduce((n, p) => n + countTokens(pageText(p)), 0), turn });
    const fact = factOf.get(step);
    const text = fact ? fact.sentence : `s${step}: ${turn.digest}`;
    lines.push({ text, tokens: countTokens(text), fact: !!fact });
    if (turn.turn % 500 === 0) o.log(`  ${label}: turn ${turn.turn}/${w.turns.length}`);
  }
  return m.result(label, summarise ? { summary_max_tokens: o.summaryTokens, summary_rewrites: rewrites } : {});
}

// --- the run ---------------------------------------------------------------------------------------

export type Job =
  | {
      readonly kind: 'kernel';
      readonly label: string;
      readonly pageInLimit: number;
      readonly override?: Partial<Omit<PagerConfig, 'budget'>>;
      readonly noisy?: boolean;
      readonly distractors?: boolean;
      /** Paraphrased questions (workload.ts). */
      readonly paraphrase?: boolean;
      /** Recall by meaning with this embedder (vectors.ts). */
      readonly vector?: EmbedderKind;
      readonly variant: boolean;
    }
  | { readonly kind: 'baseline'; readonly label: string; readonly mode: 'window' | 'summary' | 'summary-oracle'; readonly variant: boolean };

/** Pager parameter overrides tried as labelled variants (src/ is not changed; DEFAULT_PAGER is patched in this bundle only). */
export const OVERRIDES: readonly Partial<Omit<PagerConfig, 'budget'>>[] = [{ fault_threshold: 0.25 }, { fault_threshold: 0.5 }, { fault_threshold: 0.5, low_water: 0.4 }];

/**
 * Recall by meaning, before and after, on paraphrased questions (and on the plain ones, to see what it
 * costs there): the kernel pager without vector recall, with the lexical embedding, with a semantic one.
 */
export function paraphraseJobs(): Job[] {
  const out: Job[] = [];
  for (const paraphrase of [true, false]) {
    const q = paraphrase ? 'paraphrased questions' : 'plain questions';
    for (const vector of [undefined, 'lexical', 'semantic'] as const) {
      const how = vector === undefined ? 'lexical paging only' : vector === 'lexical' ? '+ vector recall, lexical embedding' : '+ vector recall, semantic embedding (USE)';
      out.push({ kind: 'kernel', label: `${q}: kernel pager, ${how}`, pageInLimit: 0, paraphrase, ...(vector ? { vector } : {}), variant: false });
      out.push({ kind: 'kernel', label: `${q}: kernel pager + page_in, ${how}`, pageInLimit: 3, paraphrase, ...(vector ? { vector } : {}), variant: true });
    }
  }
  return out;
}

/** The jobs of a run, longest first; `variants` adds page_in with limit 10, the parameter overrides and the noisy-query workload. */
export function jobs(variants: boolean): Job[] {
  const out: Job[] = [
    { kind: 'kernel', label: 'kernel pager (auto faults)', pageInLimit: 0, variant: false },
    { kind: 'kernel', label: 'kernel pager + model page_in on a miss', pageInLimit: 3, variant: true },
  ];
  if (variants) {
    out.push({ kind: 'kernel', label: 'kernel pager + model page_in (limit 10) on a miss', pageInLimit: 10, variant: true });
    const name = (o: object) => Object.entries(o).map(([k, v]) => `${k}=${v}`).join(' ');
    for (const override of OVERRIDES) out.push({ kind: 'kernel', label: `kernel pager, override ${name(override)}`, pageInLimit: 0, override, variant: true });
    const last = OVERRIDES.at(-1) ?? {};
    out.push({ kind: 'kernel', label: `kernel pager + page_in (limit 10), override ${name(last)}`, pageInLimit: 10, override: last, variant: true });
    out.push({ kind: 'kernel', label: 'kernel pager + page_in, noisy queries (question + 150-250 tokens of logs)', pageInLimit: 3, noisy: true, variant: true });
    out.push({ kind: 'kernel', label: 'kernel pager + page_in, filler without entity distractors', pageInLimit: 3, distractors: false, variant: true });
  }
  out.push(
    { kind: 'baseline', label: 'sliding window', mode: 'window', variant: false },
    { kind: 'baseline', label: 'summarise-everything', mode: 'summary', variant: false },
    { kind: 'baseline', label: 'summarise-everything (fact-aware oracle)', mode: 'summary-oracle', variant: true },
  );
  return out;
}

const workloads = new Map<string, Workload>();
function workloadFor(o: BenchOptions, noisy = false, distractors = true, paraphrase = false): Workload {
  const key = `${o.turns}/${o.facts}/${o.seed}/${o.minGap}/${noisy}/${distractors}/${paraphrase}`;
  let w = workloads.get(key);
  if (!w) {
    w = generateWorkload({ turns: o.turns, facts: o.facts, seed: o.seed, minGap: o.minGap, noisyQueries: noisy, distractors, paraphrase });
    workloads.set(key, w);
  }
  return w;
}

export function describeWorkload(o: BenchOptions): Record<string, unknown> {
  const w = workloadFor(o);
  const resultTokens = w.turns.map((t) => countTokens(pageText(t.result)));
  const ordinary = w.turns.filter((t) => t.queryOf === undefined).map((t) => countTokens(pageText(t.result)));
  const stepTokens = w.turns.map((t, i) => countTokens(pageText(t.assistant)) + (resultTokens[i] as number));
  const gaps = w.facts.map((f) => f.queryTurn - f.factTurn);
  return {
    turns: w.turns.length,
    facts: w.facts.length,
    task_tokens: countTokens(pageText(w.task)),
    system_prompt_tokens: countTokens(SYSTEM_PROMPT),
    session_tokens: stepTokens.reduce((a, b) => a + b, 0),
    result_tokens: { min: Math.min(...ordinary), median: median(ordinary), max: Math.max(...ordinary) },
    query_page_tokens: { min: Math.min(...resultTokens.filter((_, i) => w.turns[i]?.queryOf !== undefined)), max: Math.max(...resultTokens.filter((_, i) => w.turns[i]?.queryOf !== undefined)) },
    step_tokens_median: median(stepTokens),
    query_gap_turns: { min: Math.min(...gaps), median: median(gaps), max: Math.max(...gaps) },
  };
}

export async function runJob(o: BenchOptions, job: Job): Promise<StrategyResult & { seconds: number; variant: boolean }> {
  const t = performance.now();
  let r: StrategyResult;
  if (job.kind === 'baseline') r = runBaseline(workloadFor(o), o, job.mode, job.label);
  else {
    const mutable = DEFAULT_PAGER as { -readonly [K in keyof typeof DEFAULT_PAGER]: number };
    const saved = { ...DEFAULT_PAGER };
    Object.assign(mutable, job.override ?? {});
    try {
      const memory = job.vector ? simMemory(job.vector, o.embeddingCache ?? '.embeddings') : undefined;
      r = await runKernel(workloadFor(o, job.noisy, job.distractors, job.paraphrase), o, { pageInLimit: job.pageInLimit, label: job.label, ...(memory ? { memory } : {}) });
    } finally {
      Object.assign(mutable, saved);
    }
  }
  const seconds = Math.round((performance.now() - t) / 100) / 10;
  o.log(`${job.label}: ${seconds} s`);
  return { ...r, seconds, variant: job.variant };
}
