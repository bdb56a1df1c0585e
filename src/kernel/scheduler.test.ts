import { describe, expect, it } from 'vitest';
import { INITIAL_STATE, release } from './pool-rate.ts';
import {
  type PickInput,
  type PoolConfig,
  PoolConfigSchema,
  type QueuedTicket,
  type VirtualTimes,
  agedClass,
  jain,
  joinVirtualTimes,
  order,
  pick,
  poolId,
  quantileOf,
  resolvePool,
  shardOf,
  waitBucket,
  withVtimes,
} from './scheduler.ts';

const cfg = (c: Partial<PoolConfig> = {}): PoolConfig => PoolConfigSchema.parse(c);
const NO_V: VirtualTimes = { tenant: new Map(), pid: new Map() };
let n = 0;
const ticket = (t: Partial<QueuedTicket> = {}): QueuedTicket => {
  n++;
  return { id: `t${n}`, pid: `p${n}`, tenant: 'a', priority: 50, est_tokens: 100, enqueued_at: 0, lineage: [{ pid: t.pid ?? `p${n}`, max_tokens: 1e9 }], ...t };
};
const input = (over: Partial<PickInput>): PickInput => ({ config: cfg(), shards: 1, state: INITIAL_STATE, queue: [], in_flight: 0, vtimes: NO_V, windows: new Map(), subtree: new Map(), now: 1_000_000, ...over });
const granted = (r: ReturnType<typeof pick>) => r.decisions.filter((d) => d.kind === 'grant').map((d) => d.ticket.id);

/** Drive a pool: grant, then release each grant at once with its estimate, until the queue drains or `limit` grants. */
function drain(queue: QueuedTicket[], config: PoolConfig, limit: number, now = 1_000_000): string[] {
  let state = INITIAL_STATE;
  let vtimes = NO_V;
  const order: string[] = [];
  let q = [...queue];
  while (q.length > 0 && order.length < limit) {
    const r = pick({ ...input({ config, state, vtimes, queue: q, now }) });
    const g = r.decisions.filter((d) => d.kind === 'grant').slice(0, limit - order.length);
    state = r.state;
    vtimes = withVtimes(vtimes, r.vtimes);
    if (g.length === 0) break;
    for (const d of g) order.push(d.ticket.id);
    q = q.filter((t) => !order.includes(t.id));
  }
  return order;
}

describe('pools', () => {
  it('names a pool by provider, model and custom endpoint, and schedules "*" for network providers only', () => {
    expect(poolId({ provider: 'openai', model: 'gpt-4o' })).toBe('openai:gpt-4o');
    expect(poolId({ provider: 'openai', model: 'llama', base_url: 'http://127.0.0.1:8000/v1' })).toBe('openai:llama@127.0.0.1:8000');
    const pools = { '*': cfg({ rpm: 30_000 }), 'scripted:x': cfg() };
    expect(resolvePool({ provider: 'anthropic', model: 'claude' }, pools)).toMatchObject({ id: 'anthropic:claude', shards: 3 });
    expect(resolvePool({ provider: 'scripted', model: 'scripted' }, pools)).toBeNull();
    expect(resolvePool({ provider: 'scripted', model: 'x' }, pools)).toMatchObject({ shards: 1 });
    expect(resolvePool({ provider: 'openai', model: 'y' }, {})).toBeNull();
  });

  it('shards by root pid, deterministically and spread out', () => {
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 400; i++) counts[shardOf(`p${i.toString(36).padStart(20, '0')}`, 4)]!++;
    expect(Math.min(...counts)).toBeGreaterThan(60);
    expect(shardOf('pabc', 4)).toBe(shardOf('pabc', 4));
  });
});

describe('priority and aging', () => {
  it('grants the most urgent class first, whatever the arrival order', () => {
    const low = ticket({ priority: 90, enqueued_at: 0 });
    const normal = ticket({ priority: 50, enqueued_at: 1 });
    const high = ticket({ priority: 5, enqueued_at: 2 });
    expect(drain([low, normal, high], cfg(), 3, 3)).toEqual([high.id, normal.id, low.id]);
  });

  it('ages a waiting call one class per aging period, so low priority never starves', () => {
    expect(agedClass(90, 0, 60_000)).toBe(2);
    expect(agedClass(90, 60_000, 60_000)).toBe(1);
    expect(agedClass(90, 10 * 60_000, 60_000)).toBe(0);
    const now = 1_000_000;
    const oldLow = ticket({ priority: 90, enqueued_at: now - 130_000 });
    const freshHigh = ticket({ priority: 0, enqueued_at: now });
    // Aged to the high class and older: it goes first.
    expect(drain([freshHigh, oldLow], cfg({ aging_seconds: 60 }), 1, now)).toEqual([oldLow.id]);
    expect(drain([freshHigh, oldLow], cfg({ aging_seconds: 600 }), 1, now)).toEqual([freshHigh.id]);
  });
});

describe('fair share', () => {
  it('alternates between equal-priority processes instead of serving one to completion', () => {
    const a = Array.from({ length: 3 }, (_, i) => ticket({ pid: 'pa', enqueued_at: i }));
    const b = Array.from({ length: 3 }, (_, i) => ticket({ pid: 'pb', enqueued_at: 10 + i }));
    const order = drain([...a, ...b], cfg(), 6).map((id) => ([...a, ...b].find((t) => t.id === id) as QueuedTicket).pid);
    expect(order).toEqual(['pa', 'pb', 'pa', 'pb', 'pa', 'pb']);
  });

  it('splits between tenants by weight, not by how many processes each has', () => {
    const many = Array.from({ length: 30 }, (_, i) => ticket({ tenant: 'big', pid: `b${i}`, enqueued_at: i }));
    const few = Array.from({ length: 30 }, (_, i) => ticket({ tenant: 'small', pid: 's0', enqueued_at: i }));
    const order = drain([...many, ...few], cfg({ tenant_weights: { small: 2 } }), 30);
    const small = order.filter((id) => few.some((t) => t.id === id)).length;
    expect(small).toBe(20);
  });

  it('starts an idle newcomer at the current minimum, so it cannot bank credit', () => {
    const waiting = ticket({ pid: 'old' });
    const v: VirtualTimes = { tenant: new Map([['a', 5000]]), pid: new Map([['old', 5000]]) };
    const joined = joinVirtualTimes(v, [waiting], ticket({ pid: 'new' }));
    expect(joined.pid.get('new')).toBe(5000);
    // The first of its tenant: no one to compare with, nothing changes.
    expect(joinVirtualTimes(v, [], ticket({ tenant: 'b' })).tenant.get('b')).toBeUndefined();
  });
});

describe('buckets and caps', () => {
  it('admits requests at rpm × headroom with a burst, then says when the next fits', () => {
    const config = cfg({ rpm: 600, burst_seconds: 1, headroom: 1 });
    const queue = Array.from({ length: 20 }, () => ticket());
    const r = pick(input({ config, queue }));
    expect(granted(r)).toHaveLength(10); // a 1 s burst at 10/s
    expect(r.blocked_by).toBe('requests');
    expect(r.next_at).toBe(1_000_000 + 100);
    // 1 s later, 10 more.
    const rest = queue.filter((t) => !granted(r).includes(t.id));
    expect(granted(pick(input({ config, queue: rest, state: r.state, now: 1_001_000 })))).toHaveLength(10);
  });

  it('holds tokens per minute, charging estimates scaled by the learned ratio', () => {
    const config = cfg({ tpm: 60_000, burst_seconds: 1, headroom: 1 }); // 1,000 tokens/s
    const r = pick(input({ config, queue: [ticket({ est_tokens: 600 }), ticket({ est_tokens: 600 })] }));
    expect(granted(r)).toHaveLength(1);
    expect(r.blocked_by).toBe('tokens');
    expect(r.next_at).toBe(1_000_000 + 200);
    // The provider reported twice the estimate: the bucket is corrected and the ratio learned.
    const after = release(config, r.state, 600, 600, { kind: 'ok', tokens: 1200 }, 1_000_000);
    expect(after.tokens.level).toBe(400 - 600);
    expect(after.est_ratio).toBeCloseTo(1.2);
  });

  it('caps calls in flight', () => {
    const r = pick(input({ config: cfg({ concurrency: 2 }), in_flight: 1, queue: [ticket(), ticket()] }));
    expect(granted(r)).toHaveLength(1);
    expect(r).toMatchObject({ blocked_by: 'concurrency', next_at: null });
  });

  it('splits limits between shards', () => {
    const r = pick(input({ config: cfg({ rpm: 1200, burst_seconds: 1, headroom: 1, concurrency: 3 }), shards: 2, queue: Array.from({ length: 20 }, () => ticket()) }));
    expect(granted(r)).toHaveLength(2); // concurrency ⌈3/2⌉ = 2 and 10 requests/s
  });
});

describe('429 adaptation', () => {
  it('pauses the pool until retry-after; slows it down only when 429s persist after the pause', () => {
    const config = cfg({ rpm: 600, headroom: 1 });
    const s = release(config, INITIAL_STATE, 100, 100, { kind: 'rate_limited', retry_after_ms: 7000 }, 1_000_000, 999_000);
    expect(s.paused_until).toBe(1_007_000);
    expect(s.factor).toBe(1);
    const r = pick(input({ config, state: s, queue: [ticket()], now: 1_003_000 }));
    expect(r).toMatchObject({ blocked_by: 'paused', next_at: 1_007_000 });
    expect(granted(pick(input({ config, state: s, queue: [ticket()], now: 1_008_000 })))).toHaveLength(1);
    // A pool that is not adaptive only counts the 429.
    expect(release(cfg({ adaptive: false }), INITIAL_STATE, 1, 1, { kind: 'rate_limited', retry_after_ms: 7000 }, 0).paused_until).toBe(0);
  });
});

describe('the order of grants', () => {
  it('picks in the same order as a full sort by aged class, shares and arrival', () => {
    const now = 1_000_000;
    const queue = Array.from({ length: 40 }, (_, i) => ticket({ pid: `q${i % 13}`, tenant: `t${i % 3}`, priority: (i * 37) % 101, enqueued_at: now - ((i * 7919) % 200_000) }));
    const vtimes: VirtualTimes = { tenant: new Map([['t0', 50], ['t1', 0], ['t2', 50]]), pid: new Map(Array.from({ length: 13 }, (_, i) => [`q${i}`, (i * 31) % 7] as const)) };
    const r = pick(input({ queue, vtimes, now }));
    // One grant changes its tenant's and process's shares; the next head is the first in order under the new shares.
    let v = vtimes;
    let rest = [...queue];
    for (const d of r.decisions) {
      if (d.kind !== 'grant') throw new Error('no quota is set');
      expect(d.ticket.id).toBe(order(rest, v, 60_000, now)[0]?.id);
      rest = rest.filter((t) => t.id !== d.ticket.id);
      v = withVtimes(v, { tenant: new Map([[d.ticket.tenant, (v.tenant.get(d.ticket.tenant) ?? 0) + d.charged]]), pid: new Map([[d.ticket.pid, (v.pid.get(d.ticket.pid) ?? 0) + d.charged]]) });
    }
    expect(r.decisions).toHaveLength(40);
  });
});

describe('quotas', () => {
  it("denies a call when its own or an ancestor's subtree has spent its budget", () => {
    const child = ticket({ pid: 'child', lineage: [{ pid: 'child', max_tokens: 1000 }, { pid: 'parent', max_tokens: 5000 }, { pid: 'root', max_tokens: 1e9 }] });
    const ok = pick(input({ queue: [child], subtree: new Map([['child', 500], ['parent', 4000]]) }));
    expect(ok.decisions[0]?.kind).toBe('grant');
    // The child used little itself, but it and its siblings spent the parent's budget.
    const denied = pick(input({ queue: [child], subtree: new Map([['child', 500], ['parent', 5000]]) }));
    expect(denied.decisions[0]).toMatchObject({ kind: 'deny', pid: 'parent', used: 5000, max_tokens: 5000 });
  });

  it("holds a tenant over its window's token budget until the next window, without blocking others", () => {
    const config = cfg({ tenant_tokens: { tokens: 1000, window_seconds: 60 } });
    const windows = new Map([['a', { start: 990_000, tokens: 1000 }]]);
    const r = pick(input({ config, windows, queue: [ticket({ tenant: 'a', enqueued_at: 0 }), ticket({ tenant: 'b', enqueued_at: 5 })] }));
    expect(r.decisions.map((d) => d.ticket.tenant)).toEqual(['b']);
    expect(r).toMatchObject({ blocked_by: 'tenant_quota', next_at: 1_050_000 });
    expect(granted(pick(input({ config, windows, queue: [ticket({ tenant: 'a' })], now: 1_050_000 })))).toHaveLength(1);
  });
});

describe('statistics', () => {
  it("computes Jain's index and histogram quantiles", () => {
    expect(jain([1, 1, 1, 1])).toBe(1);
    expect(jain([1, 0, 0, 0])).toBe(0.25);
    const h = new Array(14).fill(0);
    for (const ms of [5, 5, 5, 80, 2000]) h[waitBucket(ms)]++;
    expect(quantileOf(h, 0.5)).toBe(10);
    expect(quantileOf(h, 0.95)).toBe(2500);
    expect(quantileOf(new Array(14).fill(0), 0.5)).toBeNull();
  });
});
