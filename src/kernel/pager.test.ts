import { describe, expect, it } from 'vitest';
import { DEFAULT_PAGER, LexicalIndex, type PageInfo, STUB_TOKENS, groupSteps, keywords, plan, stubText, swappedRuns, workingSetTokens } from './pager.ts';

const page = (seq: number, step: number, tokens: number, over: Partial<PageInfo> = {}): PageInfo => ({ seq, step, tokens, importance: 0.5, pinned: false, resident: true, access_count: 0, text: `step ${step}`, ...over });
/** One task page and `n` steps of two pages each, every page `t` tokens. */
const session = (n: number, t: number) => [page(0, 0, 50, { importance: 1 }), ...Array.from({ length: n }, (_, i) => [page(2 * i + 1, i + 1, t), page(2 * i + 2, i + 1, t)]).flat()];

describe('plan', () => {
  it('does nothing while the working set fits: prompts only append (stable prefix)', () => {
    const p = plan(session(5, 100), { ...DEFAULT_PAGER, budget: 5000 }, 6, new Map());
    expect(p).toMatchObject({ page_in: [], evict: [] });
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

  it('keeps a relevant old step over irrelevant newer ones, and faults relevant swapped steps back in within the allowance', () => {
    const pages = session(20, 100);
    const relevance = new Map([[2, 0.9]]);
    const p = plan(pages, { ...DEFAULT_PAGER, budget: 2000 }, 21, relevance);
    expect(p.evict).not.toContain(2);
    const swapped = pages.map((x) => (x.step >= 1 && x.step <= 10 ? { ...x, resident: false } : x));
    const faulted = plan(swapped, { ...DEFAULT_PAGER, budget: 4000 }, 21, new Map([[4, 0.8], [5, 0.2], [6, 0.9]]));
    expect(faulted.page_in).toEqual([6, 4]);
    const tight = plan(swapped, { ...DEFAULT_PAGER, budget: 1000 }, 21, new Map([[4, 0.8], [6, 0.9]]));
    expect(tight.page_in).toEqual([6]); // the allowance is 25% of 1,000 tokens: one 200-token step fits, not two
  });
});

describe('stubs and runs', () => {
  it('one stub per run of consecutive swapped steps, with stable text', () => {
    const pages = session(6, 100).map((x) => ([2, 3, 5].includes(x.step) ? { ...x, resident: false } : x));
    const groups = groupSteps(pages, 7, 2);
    const runs = swappedRuns(groups);
    expect(runs).toEqual([
      { from: 2, to: 3, pages: 4, tokens: 400 },
      { from: 5, to: 5, pages: 2, tokens: 200 },
    ]);
    expect(workingSetTokens(groups)).toBe(50 + 3 * 200 + 2 * STUB_TOKENS);
    const text = stubText(runs[0]!, ['vault', 'access']);
    expect(text).toBe(stubText(runs[0]!, ['vault', 'access']));
    expect(text).toMatch(/steps 2-3 \(4 pages, 400 tokens\).*Topics: vault, access.*page_in/);
    expect(keywords(['the vault access code', 'vault door'])).toEqual(['vault', 'access', 'code', 'door']);
  });
});

describe('LexicalIndex', () => {
  it('scores by distinctive terms, ignoring scaffolding every document shares and words none contains', () => {
    const index = new LexicalIndex();
    for (let i = 1; i <= 30; i++) index.add(i, `status ok latency ${i}ms entry${i} result value path`);
    index.add(100, 'The access code for vault 17 is 4431.');
    const hits = index.search('{"status":200,"value":{"body":"Question: which access code opens vault 17?","path":"/x"}}');
    expect(hits[0]?.id).toBe(100);
    expect(hits[0]?.score).toBeGreaterThan(0.9);
    expect(index.search('status ok value path')).toEqual([]);
    index.remove(100);
    expect(index.search('access code vault')).toEqual([]);
  });
});
