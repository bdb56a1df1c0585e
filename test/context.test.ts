/**
 * Context as virtual memory, end to end: a process whose context grows to many times its budget
 * keeps running with prompts under the budget; compactions evict in batches; a swapped fact is
 * faulted back in when the newest input is about it; page_in, pin and unpin work.
 */
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { api, eventsOf, runUntil, spawn } from './support/helpers.ts';

const scripted = { provider: 'scripted', model: 'scripted' };
const call = (name: string, args: Record<string, unknown> = {}) => ({ tool_calls: [{ name, args }] });
const filler = (i: number) => `Log ${i}: ` + Array.from({ length: 120 }, (_, k) => `entry${(i * 7 + k) % 97} status ok latency ${(k * 13) % 50}ms`).join('; ');

type Ctx = { budget: number; tokens: number; steps: { step: number; resident: boolean; recalled: boolean; protected: boolean; tokens: number; pages: { pinned: boolean; kind: string; excerpt: string }[] }[] };

describe('context paging', () => {
  it('runs a process whose context is 10x its budget, keeping every prompt under budget with batched compactions', async () => {
    const turns = Array.from({ length: 40 }, (_, i) => call('fs_write', { path: `log/${i}.txt`, content: filler(i) }));
    const { pid } = await spawn({ name: 'long', task: 'keep logging', model: scripted, script: [...turns, call('exit', { code: 0 })], max_context_tokens: 4000, quotas: { max_steps: 100 } });
    const done = await runUntil(pid, ['terminated'], 100);
    expect(done.exit?.code).toBe(0);
    const ctx = (await api<Ctx>('GET', `/v1/processes/${pid}/context`)).body;
    const total = ctx.steps.reduce((n, s) => n + s.tokens, 0);
    expect(total).toBeGreaterThan(10 * ctx.budget);
    const events = await eventsOf(pid);
    const compactions = events.filter((e) => e.type === 'compaction');
    // Batches, not one eviction per step: far fewer compactions than steps.
    expect(compactions.length).toBeGreaterThan(0);
    expect(compactions.length).toBeLessThan(20);
    for (const c of compactions) expect(c.data.tokens_after as number).toBeLessThanOrEqual(4000);
    // Every prompt stayed under budget: the LLM calls' prompt tokens are estimates, so check the pager's own figure.
    expect(ctx.tokens).toBeLessThanOrEqual(ctx.budget);
    expect(ctx.steps.find((s) => s.step === 0)?.resident).toBe(true);
  });

  it('faults a swapped fact back in when the newest input asks about it; page_in, pin and unpin work', async () => {
    const turns = [
      call('fs_write', { path: 'locker.txt', content: 'The spare key for locker 12 is in drawer 3 of the grey cabinet.' }),
      call('fs_write', { path: 'fact.txt', content: 'The access code for vault 17 is 4431.' }),
      call('pin', { step: 1 }),
      ...Array.from({ length: 25 }, (_, i) => call('fs_write', { path: `log/${i}.txt`, content: filler(i) })),
      call('unpin', { step: 1 }),
      ...Array.from({ length: 25 }, (_, i) => call('fs_write', { path: `more/${i}.txt`, content: filler(i + 100) })),
      call('net_fetch', { url: `${env.TEST_SERVER}/page?body=${encodeURIComponent('Question: which access code opens vault 17?')}` }),
      call('page_in', { step: 2 }),
      call('exit', { code: 0 }),
    ];
    const { pid } = await spawn({ name: 'fact', task: 'remember things', model: scripted, script: turns, max_context_tokens: 4000, capabilities: ['fs:/**:rw', 'net:127.0.0.1'], quotas: { max_steps: 100 } });
    const done = await runUntil(pid, ['terminated'], 150);
    expect(done.exit?.code).toBe(0);
    const events = await eventsOf(pid);
    // While pinned (steps 4-28) no compaction evicts step 1, though they evict the fact at step 2.
    const unpinAt = events.find((e) => e.type === 'llm_call' && e.data.step === 29)?.seq ?? 0;
    const compactions = events.filter((e) => e.type === 'compaction');
    const evictedWhilePinned = compactions.filter((e) => e.seq < unpinAt).flatMap((e) => e.data.evicted_steps as number[]);
    expect(evictedWhilePinned).not.toContain(1);
    expect(evictedWhilePinned).toContain(2);
    const ctx = (await api<Ctx>('GET', `/v1/processes/${pid}/context`)).body;
    expect(ctx.steps.find((s) => s.step === 1)).toMatchObject({ protected: false });
    // The question (net_fetch's result) faulted step 2 in: a copy appended to the net_fetch step, so
    // the prompt before it is unchanged; the original stays swapped.
    const asked = events.find((e) => e.type === 'syscall' && e.data.name === 'net_fetch')?.data.step as number;
    const fault = events.filter((e) => e.type === 'page_fault').findLast((f) => (f.data.steps as number[]).includes(2));
    expect(fault?.data).toMatchObject({ reason: 'auto', into_step: asked });
    expect(ctx.steps.find((s) => s.step === 2)).toMatchObject({ resident: false, recalled: true });
    const recall = ctx.steps.find((s) => s.step === asked)?.pages.find((p) => p.kind === 'recall');
    expect(recall?.excerpt).toContain('page fault: step 2');
    // page_in of a step whose copy is already in the context brings nothing twice.
    const pageIn = events.find((e) => e.type === 'syscall' && e.data.name === 'page_in');
    expect(pageIn?.data).toMatchObject({ ok: true, result: { recalled_steps: [], already_in_context: [2] } });
  });

  it('page_in by query recalls the matching swapped step after its own result, and the next prompt carries it', async () => {
    const turns = [
      call('fs_write', { path: 'review.txt', content: 'The migration review with kestrel is booked in room 412 on Friday.' }),
      ...Array.from({ length: 20 }, (_, i) => call('fs_write', { path: `log/${i}.txt`, content: filler(i) })),
      call('page_in', { query: 'room booked for the kestrel migration review' }),
      call('exit', { code: 0 }),
    ];
    const { pid } = await spawn({ name: 'recall', task: 'remember the review', model: scripted, script: turns, max_context_tokens: 3000, capabilities: ['fs:/**:rw'], quotas: { max_steps: 100 } });
    const done = await runUntil(pid, ['terminated'], 100);
    expect(done.exit?.code).toBe(0);
    const events = await eventsOf(pid);
    const pageIn = events.find((e) => e.type === 'syscall' && e.data.name === 'page_in');
    expect(pageIn?.data).toMatchObject({ ok: true, result: { recalled_steps: [1] } });
    const ctx = (await api<{ steps: { step: number; resident: boolean; recalled: boolean; pages: { kind: string; excerpt: string }[] }[] }>('GET', `/v1/processes/${pid}/context`)).body;
    expect(ctx.steps.find((s) => s.step === 1)).toMatchObject({ resident: false, recalled: true });
    const kinds = ctx.steps.find((s) => s.step === 22)?.pages.map((p) => p.kind);
    // The recall copy is written while page_in runs, before its result; the prompt puts it after the
    // step's results (unit-tested in src/kernel/context.test.ts).
    expect(kinds).toEqual(['assistant', 'recall', 'result']);
  });

  it('explains what is missing: stubs name swapped steps, and bad page_in / pin calls are typed errors', async () => {
    const turns = [...Array.from({ length: 20 }, (_, i) => call('fs_write', { path: `f${i}`, content: filler(i) })), call('pin', { step: 999 }), call('page_in', { step: 999 }), call('page_in', { query: 'zebra quantum marmalade' }), call('exit', { code: 0 })];
    const { pid } = await spawn({ name: 'stub', task: 't', model: scripted, script: turns, max_context_tokens: 3000 });
    await runUntil(pid, ['terminated'], 60);
    const results = (await eventsOf(pid)).filter((e) => e.type === 'syscall').map((e) => e.data);
    expect(results.at(-4)).toMatchObject({ name: 'pin', ok: false, error: { code: 'ENOENT' } });
    expect(results.at(-3)).toMatchObject({ name: 'page_in', ok: false, error: { code: 'ENOENT' } });
    expect(results.at(-2)).toMatchObject({ name: 'page_in', ok: false, error: { code: 'ENOENT' } });
    const ctx = (await api<Ctx & { swapped_runs: { from: number; to: number }[] }>('GET', `/v1/processes/${pid}/context`)).body;
    expect(ctx.swapped_runs.length).toBeGreaterThan(0);
  });
});
