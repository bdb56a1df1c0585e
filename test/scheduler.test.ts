/**
 * The LLM scheduler end to end: processes ask their pool's scheduler for a slice before each LLM
 * call, park on their alarm when they must wait, and are woken by the scheduler. Time moves only by
 * firing alarms (a fired alarm counts as the time it was set for). The pools are configured for the
 * tests in vitest.config.ts (SCHEDULER_POOLS).
 */
import { abortAllDurableObjects, env, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { type Ev, api, eventsOf, pcbOf, runTree, runUntil, spawn, stubOf, tick } from './support/helpers.ts';

const sched = (pool: string, shard = 0) => env.SCHEDULER.get(env.SCHEDULER.idFromName(`${pool}#${shard}`));
const decisions = (events: Ev[]) => events.filter((e) => e.type === 'scheduler').map((e) => e.data);
const alarmOf = (pid: string) => runInDurableObject(stubOf(pid), (_i, state) => state.storage.getAlarm());
const tickets = (pool: string) =>
  runInDurableObject(sched(pool), (_i, state) => state.storage.sql.exec<{ id: string; pid: string; state: string; grants: number }>('SELECT id, pid, state, grants FROM tickets ORDER BY enqueued_at').toArray());

type PoolView = { pool: string; queue_length: number; in_flight: number; granted: number; released: number; expired: number; denied: number; rate_limited: number; paused_until: number | null; rate_factor: number; tokens_per_min: number; waits: Record<string, { granted: number; max_ms: number }> };
async function poolView(pool: string): Promise<PoolView> {
  const r = await api<{ pools: PoolView[] }>('GET', '/v1/scheduler');
  expect(r.status).toBe(200);
  const p = r.body.pools.find((x) => x.pool === pool);
  if (!p) throw new Error(`pool ${pool} not listed: ${JSON.stringify(r.body)}`);
  return p;
}

const write = (path: string) => ({ tool_calls: [{ name: 'fs_write', args: { path, content: 'x' } }] });

describe('grant', () => {
  it('grants a slice before each call, returns it with the usage, and shows the pool in GET /v1/scheduler', async () => {
    const { pid } = await spawn({ name: 'g', task: 'write', model: { provider: 'scripted', model: 'sched-open' }, script: [write('a'), write('b')] });
    const done = await runUntil(pid, ['terminated']);
    expect(done.exit?.code).toBe(0);
    const d = decisions(await eventsOf(pid));
    expect(d).toHaveLength(3);
    expect(d.every((x) => x.decision === 'granted' && x.pool === 'scripted:sched-open')).toBe(true);
    const view = await poolView('scripted:sched-open');
    expect(view).toMatchObject({ queue_length: 0, in_flight: 0 });
    expect(view.granted).toBeGreaterThanOrEqual(3);
    expect(view.released).toBe(view.granted);
    expect(view.tokens_per_min).toBeGreaterThan(0);
    // Models whose pool is not configured are not scheduled at all.
    const { pid: plain } = await spawn({ name: 'plain', task: 't', script: [write('a')] });
    await runUntil(plain, ['terminated']);
    expect(decisions(await eventsOf(plain))).toEqual([]);
  });

  it("charges a child's tokens to its parent's budget and denies the parent's next call once it is spent", async () => {
    const tree = (max_tokens: number) =>
      spawn({
        name: 'parent',
        task: 'delegate',
        model: { provider: 'scripted', model: 'sched-open' },
        quotas: { max_tokens },
        script: [{ tool_calls: [{ name: 'spawn', args: { name: 'kid', task: 'answer briefly', image: 'default' } }] }, { tool_calls: [{ name: 'wait', args: {} }] }, write('after')],
      });
    const used = (p: { usage: { prompt_tokens: number; completion_tokens: number } }) => p.usage.prompt_tokens + p.usage.completion_tokens;
    const kidOf = async (pid: string) => pcbOf((await api<{ processes: { pid: string }[] }>('GET', `/v1/processes?ppid=${pid}`)).body.processes[0]?.pid as string);
    // A dry run measures what the parent's first two calls and the child's one call cost (the scripted model is deterministic).
    const dry = await tree(1_000_000);
    const dryDone = await runTree(dry.pid);
    const llm = (await eventsOf(dry.pid)).filter((e) => e.type === 'llm_call').map((e) => (e.data.usage as { prompt_tokens: number; completion_tokens: number }));
    const firstTwo = llm.slice(0, 2).reduce((a, u) => a + u.prompt_tokens + u.completion_tokens, 0);
    const child = used(await kidOf(dry.pid));
    expect(dryDone.exit?.code).toBe(0);
    // The budget covers the parent's own two calls, but not them plus the child's.
    const budget = firstTwo + Math.floor(child / 2);
    const { pid } = await tree(budget);
    const done = await runTree(pid);
    expect(used(done)).toBe(firstTwo);
    expect(used(await kidOf(pid))).toBe(child);
    expect(done.exit?.code).toBe('EQUOTA');
    expect(done.exit?.reason).toMatch(new RegExp(`token budget of ${budget} is spent`));
    expect(decisions(await eventsOf(pid)).at(-1)).toMatchObject({ decision: 'denied', over: pid });
  });
});

describe('GET /v1/scheduler', () => {
  it('pages the pools by name (configured and used ones alike) with limit, cursor and next_cursor', async () => {
    // Pools the scheduler objects have listed; their numbers come from (new, idle) objects.
    const used = Array.from({ length: 7 }, (_, i) => `scripted:paged-${i}`);
    for (const pool of used) await env.DB.prepare('INSERT OR IGNORE INTO scheduler_pools (pool, shards, created_at) VALUES (?, 1, 0)').bind(pool).run();
    const all = (await api<{ pools: PoolView[]; next_cursor: string | null }>('GET', '/v1/scheduler?limit=500')).body;
    expect(all.next_cursor).toBeNull();
    const names = all.pools.map((p) => p.pool);
    expect(names).toEqual([...names].sort());
    expect(names).toEqual(expect.arrayContaining([...used, 'scripted:sched-open', 'openai:sched-lease']));
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r: { status: number; body: { pools: PoolView[]; next_cursor: string | null } } = await api('GET', `/v1/scheduler?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(r.status).toBe(200);
      expect(r.body.pools.length).toBeLessThanOrEqual(3);
      seen.push(...r.body.pools.map((p) => p.pool));
      cursor = r.body.next_cursor;
      pages++;
    } while (cursor !== null);
    // Every pool once, in order, and the last page is the one that says there are no more.
    expect(seen).toEqual(names);
    expect(pages).toBe(Math.ceil(names.length / 3));
    expect(all.pools.find((p) => p.pool === 'scripted:paged-3')).toMatchObject({ shards: 1, queue_length: 0, in_flight: 0 });
    expect((await api('GET', '/v1/scheduler?limit=0')).status).toBe(400);
  });
});

describe('park and wake', () => {
  it('parks a process that must wait on its alarm, and the scheduler wakes the most urgent first', async () => {
    const pool = 'scripted:sched-rpm';
    const model = { provider: 'scripted', model: 'sched-rpm' };
    // The first call takes the pool's one request of burst.
    const first = await spawn({ name: 'first', task: 't', model, script: [] });
    expect((await runUntil(first.pid, ['terminated'])).exit?.code).toBe(0);

    const low = await spawn({ name: 'low', task: 't', model, priority: 90, script: [] });
    await tick(low.pid);
    const high = await spawn({ name: 'high', task: 't', model, priority: 5, script: [] });
    await tick(high.pid);
    for (const p of [low.pid, high.pid]) {
      const pcb = await pcbOf(p);
      expect(pcb.state).toBe('ready');
      expect(pcb.usage.llm_calls).toBe(0);
      // Parked on a backstop far away: no polling.
      expect((await alarmOf(p)) ?? 0).toBeGreaterThan(Date.now() + 30_000);
    }
    expect(decisions(await eventsOf(low.pid))).toEqual([expect.objectContaining({ decision: 'queued', blocked_by: 'requests' })]);
    expect(await poolView(pool)).toMatchObject({ queue_length: 2, in_flight: 0 });

    // A minute later (the scheduler's alarm) one request fits again: the high-priority process gets it, although it came second.
    expect(await runDurableObjectAlarm(sched(pool))).toBe(true);
    expect((await alarmOf(high.pid)) ?? Infinity).toBeLessThanOrEqual(Date.now());
    expect((await alarmOf(low.pid)) ?? 0).toBeGreaterThan(Date.now() + 30_000);
    const h = await runUntil(high.pid, ['terminated'], 3);
    expect(h.exit?.code).toBe(0);
    expect(decisions(await eventsOf(high.pid)).at(-1)).toMatchObject({ decision: 'granted' });

    expect(await runDurableObjectAlarm(sched(pool))).toBe(true);
    expect((await runUntil(low.pid, ['terminated'], 3)).exit?.code).toBe(0);
    const view = await poolView(pool);
    expect(view).toMatchObject({ queue_length: 0, in_flight: 0 });
    expect(view.waits.high?.granted).toBe(1);
    expect(view.waits.low?.granted).toBe(1);
  });
});

describe('crashes', () => {
  it('expires the lease of a process that died holding a slice, and gives the slot to the next', async () => {
    const pool = 'openai:sched-lease';
    const model = 'sched-lease';
    const ok = (text: string) => ({ body: { id: 'c', object: 'chat.completion', created: 1, model, choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }], usage: { prompt_tokens: 50, completion_tokens: 5, total_tokens: 55 } } });
    await fetch(`${env.TEST_SERVER}/llm/scenario`, { method: 'POST', body: JSON.stringify({ model, responses: [{ hang: true }, ok('done'), ok('done')] }) });
    const holder = await spawn({ name: 'holder', task: 't', model: { provider: 'openai', model } });
    // Its first alarm is running: it holds the pool's one slot while the call hangs.
    void tick(holder.pid).catch(() => {});
    await (await fetch(`${env.TEST_SERVER}/llm/hanging/${model}`)).text();
    const next = await spawn({ name: 'next', task: 't', model: { provider: 'openai', model } });
    await tick(next.pid);
    expect(decisions(await eventsOf(next.pid))).toEqual([expect.objectContaining({ decision: 'queued', blocked_by: 'concurrency' })]);

    // The holder dies mid-call (and everything else restarts with it).
    await abortAllDurableObjects();
    // Its lease runs out: the scheduler's alarm expires it and grants the waiting process.
    expect(await runDurableObjectAlarm(sched(pool))).toBe(true);
    expect((await poolView(pool)).expired).toBe(1);
    expect((await runUntil(next.pid, ['terminated'], 4)).exit).toMatchObject({ code: 0, result: 'done' });
    // The holder comes back (its step lease), finds its ticket expired, and takes a new one.
    const h = await runUntil(holder.pid, ['terminated'], 6);
    expect(h.exit).toMatchObject({ code: 0, result: 'done' });
    expect(decisions(await eventsOf(holder.pid)).map((d) => d.decision)).toContain('lease_expired');
    const rows = await tickets(pool);
    expect(rows.every((r) => r.grants <= 1)).toBe(true);
    expect(rows.filter((r) => r.pid === holder.pid).map((r) => r.state)).toEqual(['expired', 'released']);
  });

  it('loses and duplicates no grant when the scheduler restarts mid-run', async () => {
    const pool = 'scripted:sched-restart';
    const model = { provider: 'scripted', model: 'sched-restart' };
    const pids: string[] = [];
    for (let i = 0; i < 3; i++) pids.push((await spawn({ name: `r${i}`, task: 't', model, script: [write(`f${i}`)] })).pid);
    const live = async () => (await Promise.all(pids.map((p) => pcbOf(p)))).filter((p) => p.state !== 'terminated').map((p) => p.pid);
    for (let round = 0; round < 30 && (await live()).length > 0; round++) {
      for (const p of await live()) await tick(p);
      // Crash everything twice along the way, in the middle of the queue.
      if (round === 1 || round === 3) await abortAllDurableObjects();
      await runDurableObjectAlarm(sched(pool));
    }
    expect(await live()).toEqual([]);
    for (const p of pids) {
      const pcb = await pcbOf(p);
      expect(pcb.exit?.code).toBe(0);
      expect(pcb.usage.llm_calls).toBe(2);
    }
    const rows = await tickets(pool);
    // Each LLM call had exactly one ticket, granted exactly once and released.
    expect(rows).toHaveLength(6);
    expect(rows.every((r) => r.grants === 1 && r.state === 'released')).toBe(true);
    const view = await poolView(pool);
    expect(view).toMatchObject({ granted: 6, released: 6, expired: 0, queue_length: 0, in_flight: 0 });
  });
});

describe('429 adaptation', () => {
  it('pauses the whole pool until retry-after, instead of each process retrying alone (a first 429 does not slow it down)', async () => {
    const pool = 'openai:sched-429';
    const model = 'sched-429';
    const ok = { body: { id: 'c', object: 'chat.completion', created: 1, model, choices: [{ index: 0, message: { role: 'assistant', content: 'fine' }, finish_reason: 'stop' }], usage: { prompt_tokens: 50, completion_tokens: 5, total_tokens: 55 } } };
    await fetch(`${env.TEST_SERVER}/llm/scenario`, { method: 'POST', body: JSON.stringify({ model, responses: [{ status: 429, headers: { 'retry-after': '20' }, body: { error: { message: 'Rate limit reached' } } }, ok, ok] }) });
    const a = await spawn({ name: 'a', task: 't', model: { provider: 'openai', model } });
    await tick(a.pid);
    const view = await poolView(pool);
    expect(view.rate_limited).toBe(1);
    expect(view.paused_until).toBeGreaterThanOrEqual(Date.now() + 15_000);
    // Only 429s that persist after a pause lower the rate (src/kernel/pool-rate.test.ts).
    expect(view.rate_factor).toBe(1);
    // Another process does not hit the provider while the pool is paused: it waits in the queue.
    const b = await spawn({ name: 'b', task: 't', model: { provider: 'openai', model } });
    await tick(b.pid);
    expect(decisions(await eventsOf(b.pid))).toEqual([expect.objectContaining({ decision: 'queued', blocked_by: 'paused' })]);
    const reqs = (await (await fetch(`${env.TEST_SERVER}/llm/requests/${model}`)).json()) as unknown[];
    expect(reqs).toHaveLength(1);
    // The pause ends (the scheduler's alarm): both finish.
    await runDurableObjectAlarm(sched(pool));
    expect((await runUntil(b.pid, ['terminated'], 4)).exit?.code).toBe(0);
    const done = await runUntil(a.pid, ['terminated'], 8);
    for (let i = 0; i < 4 && done.state !== 'terminated'; i++) await runDurableObjectAlarm(sched(pool));
    expect((await runUntil(a.pid, ['terminated'], 8)).exit?.code).toBe(0);
  });
});
