import { describe, expect, it } from 'vitest';
import { keywords } from './lexical.ts';
import { DEFAULT_PAGER, type PageInfo, RECALL_OVERHEAD_TOKENS, STUB_TOKENS, groupSteps, plan, stubText, swappedRuns, workingSetTokens } from './pager.ts';

const page = (seq: number, step: number, tokens: number, over: Partial<PageInfo> = {}): PageInfo => ({ seq, step, tokens, importance: 0.5, pinned: false, resident: true, access_count: 0, text: `step ${step}`, ...over });
/** One task page and `n` steps of two pages each, every page `t` tokens. */
const session = (n: number, t: number) => [page(0, 0, 50, { importance: 1 }), ...Array.from({ length: n }, (_, i) => [page(2 * i + 1, i + 1, t), page(2 * i + 2, i + 1, t)]).flat()];

describe('plan', () => {
  it('does nothing while the working set fits: prompts only append (stable prefix)', () => {
    const p = plan(session(5, 100), { ...DEFAULT_PAGER, budget: 5000 }, 6, new Map());
    expect(p).toMatchObject({ recall: [], evict: [] });
  });

  it('over budget, evicts in one batch down to the low-water mark, never the task, pinned or newest steps', () => {
    const pages = session(20, 100).map((p) => (p.step === 3 ? { ...p, pinned: true } : p));
    const cfg = { ...DEFAULT_PAGER, budget: 2000 };
    const p = plan(pages, cfg, 21, new Map());
    expect(p.evict.length).toBeGreaterThan(3);
    expect(p.tokens).toBeLessThanOrEqual(cfg.budget * cfg.low_water);
    expect(p.evict).not.toContain(0);
    expect(p.evict).not.toContain(3);
    expect(p.evict).not.toContain(20);
    // Oldest (least recent) go first when nothing else distinguishes them.
    expect(p.evict[0]).toBe(1);
  });

  it('keeps a relevant old step over irrelevant newer ones, and recalls relevant swapped steps within the allowance', () => {
    const pages = session(20, 100);
    const relevance = new Map([[2, 0.9]]);
    const p = plan(pages, { ...DEFAULT_PAGER, budget: 2000 }, 21, relevance);
    expect(p.evict).not.toContain(2);
    const swapped = pages.map((x) => (x.step >= 1 && x.step <= 10 ? { ...x, resident: false, batch: 1 } : x));
    const faulted = plan(swapped, { ...DEFAULT_PAGER, budget: 4000, fault_share: 0.25 }, 21, new Map([[4, 0.8], [5, 0.05], [6, 0.9]]));
    expect(faulted.recall).toEqual([6, 4]);
    // A step already recalled (its copy is resident) is not recalled twice.
    expect(plan(swapped, { ...DEFAULT_PAGER, budget: 4000, fault_share: 0.25 }, 21, new Map([[4, 0.8], [6, 0.9]]), new Set([6])).recall).toEqual([4]);
    const tight = plan(swapped, { ...DEFAULT_PAGER, budget: 1000, fault_share: 0.25 }, 21, new Map([[4, 0.8], [6, 0.9]]));
    expect(tight.recall).toEqual([6]); // the allowance is 25% of 1,000 tokens: one 200-token step (+ header) fits, not two
  });

  it('counts recalled tokens against the budget, and numbers each compaction', () => {
    const pages = session(20, 100).map((x) => (x.step >= 1 && x.step <= 4 ? { ...x, resident: false, batch: 3 } : x));
    const cfg = { ...DEFAULT_PAGER, budget: 3400 };
    const p = plan(pages, cfg, 21, new Map([[2, 0.9]]));
    expect(p.recall).toEqual([2]);
    expect(p.batch).toBe(4);
    expect(p.evict.length).toBeGreaterThan(0);
    expect(p.tokens).toBeLessThanOrEqual(cfg.budget * cfg.low_water);
    // Without the recall the same session fits: the recall's tokens are what forced the compaction.
    expect(plan(pages, cfg, 21, new Map()).evict).toEqual([]);
    expect(RECALL_OVERHEAD_TOKENS).toBeGreaterThan(0);
  });
});

describe('stubs and runs', () => {
  it('one stub per run of consecutive swapped steps, with stable text', () => {
    const pages = session(6, 100).map((x) => ([2, 3, 5].includes(x.step) ? { ...x, resident: false, batch: 1 } : x));
    const groups = groupSteps(pages, 7, 2);
    const runs = swappedRuns(groups);
    expect(runs).toEqual([
      { from: 2, to: 3, pages: 4, tokens: 400, batch: 1 },
      { from: 5, to: 5, pages: 2, tokens: 200, batch: 1 },
    ]);
    expect(workingSetTokens(groups)).toBe(50 + 3 * 200 + 2 * STUB_TOKENS);
    const text = stubText(runs[0]!, ['vault', 'access']);
    expect(text).toBe(stubText(runs[0]!, ['vault', 'access']));
    expect(text).toMatch(/steps 2-3 \(4 pages, 400 tokens\).*Topics: vault, access.*page_in/);
    expect(keywords(['the vault access code', 'vault door'])).toEqual(['vault', 'access', 'code', 'door']);
  });
});

describe('runs never grow across compactions', () => {
  it('a later compaction next to an earlier run starts its own run, so the earlier stub keeps its text', () => {
    const first = session(8, 100).map((x) => ([2, 3].includes(x.step) ? { ...x, resident: false, batch: 1 } : x));
    const before = swappedRuns(groupSteps(first, 9, 2));
    const second = first.map((x) => ([4, 5].includes(x.step) ? { ...x, resident: false, batch: 2 } : x));
    const after = swappedRuns(groupSteps(second, 9, 2));
    expect(after[0]).toEqual(before[0]);
    expect(after[1]).toEqual({ from: 4, to: 5, pages: 4, tokens: 400, batch: 2 });
  });
});

describe('page faults', () => {
  it('recall a swapped step only when it matches clearly better than anything resident', () => {
    const pages = session(20, 100).map((x) => (x.step >= 1 && x.step <= 10 ? { ...x, resident: false, batch: 1 } : x));
    const cfg = { ...DEFAULT_PAGER, budget: 8000 };
    expect(plan(pages, cfg, 21, new Map([[4, 0.5]])).recall).toEqual([4]);
    // A resident step (not the newest input itself) matches nearly as well: the input is routine.
    expect(plan(pages, cfg, 21, new Map([[4, 0.5], [15, 0.45]])).recall).toEqual([]);
    // The newest step is the input; its own match does not count.
    expect(plan(pages, cfg, 21, new Map([[4, 0.5], [20, 1]])).recall).toEqual([4]);
    expect(plan(pages, cfg, 21, new Map([[4, cfg.fault_threshold / 2]])).recall).toEqual([]);
  });
});

describe('generational compaction', () => {
  it('a minor compaction evicts only steps newer than every swapped step; a major one merges the runs', () => {
    const pages = session(30, 100).map((x) => (x.step >= 1 && x.step <= 5 ? { ...x, resident: false, batch: 1 } : x));
    const cfg = { ...DEFAULT_PAGER, budget: 4000 };
    const minor = plan(pages, cfg, 31, new Map());
    expect(minor.rebatch).toBe(false);
    expect(minor.evict.length).toBeGreaterThan(0);
    expect(Math.min(...minor.evict)).toBeGreaterThan(5);
    // Old survivors (steps 6-9) and little room: the minor pass cannot reach the mark, so a major one runs.
    const crowded = session(30, 100).map((x) => (x.step >= 10 && x.step <= 12 ? { ...x, resident: false, batch: 1 } : x));
    const major = plan(crowded, { ...DEFAULT_PAGER, budget: 1600 }, 31, new Map());
    expect(major.rebatch).toBe(true);
    expect(major.evict.some((s) => s < 10)).toBe(true);
    expect(major.tokens).toBeLessThanOrEqual(1600 * DEFAULT_PAGER.major_water);
  });
});
