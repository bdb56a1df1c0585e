/**
 * GET /v1/scheduler: the LLM scheduler's pools and their numbers (queue, in flight, rates, 429s,
 * waits by priority class). Pools are those named in SCHEDULER_POOLS plus every pool a scheduler
 * object has served (listed in D1 by the object itself), by name, paged like every list (the
 * cursor is the last pool name of the previous page); each listed pool's shards are asked in parallel.
 */
import { z } from 'zod';
import { poolsFromEnv } from '../kernel/scheduler.ts';
import type { ShardStats } from '../rpc/contracts.ts';
import { schedulerStub } from '../rpc/stubs.ts';
import { KernelError } from '../kernel/errors.ts';
import { PRIORITY_CLASSES, type PoolConfig, shardsOf } from '../kernel/scheduler.ts';
import { E } from './common.ts';
import { pageOf, pageParams, paged } from './paging.ts';
import type { ApiRegistry } from './registry.ts';

const WaitsSchema = z.object({ granted: z.number(), mean_ms: z.number().nullable(), p50_ms: z.number().nullable(), p95_ms: z.number().nullable(), max_ms: z.number() });
/** Pool names are "<provider>:<model>" (or "*" in the configuration only). */
const PoolNameCursor = z.string().min(1).max(256);

const PoolStatsSchema = z.object({
  pool: z.string(),
  shards: z.number(),
  config: z.unknown(),
  queue_length: z.number(),
  in_flight: z.number(),
  tokens_per_min: z.number(),
  requests_per_min: z.number(),
  granted: z.number(),
  released: z.number(),
  expired: z.number().describe('slices whose lease ran out (their process died holding them)'),
  denied: z.number().describe('calls refused because a token budget (own or an ancestor\'s) was spent'),
  abandoned: z.number(),
  rate_limited: z.number().describe('429s the provider still answered'),
  paused_until: z.number().nullable(),
  rate_factor: z.number().describe('1 unless 429s slowed the pool down'),
  waits: z.record(z.string(), WaitsSchema).describe('time from queueing to grant, by priority class (p50/p95: histogram bucket bounds)'),
});

function merge(pool: string, config: PoolConfig | null, shards: ShardStats[]): z.infer<typeof PoolStatsSchema> {
  const sum = (f: (s: ShardStats) => number) => shards.reduce((a, s) => a + f(s), 0);
  const pauses = shards.map((s) => s.paused_until).filter((x): x is number => x !== null);
  const max = (xs: (number | null)[]) => (xs.some((x) => x !== null) ? Math.max(...xs.filter((x): x is number => x !== null)) : null);
  return {
    pool,
    shards: shards.length,
    config,
    queue_length: sum((s) => s.queue_length),
    in_flight: sum((s) => s.in_flight),
    tokens_per_min: sum((s) => s.tokens_per_min),
    requests_per_min: sum((s) => s.requests_per_min),
    granted: sum((s) => s.granted),
    released: sum((s) => s.released),
    expired: sum((s) => s.expired),
    denied: sum((s) => s.denied),
    abandoned: sum((s) => s.abandoned),
    rate_limited: sum((s) => s.rate_limited),
    paused_until: pauses.length ? Math.max(...pauses) : null,
    rate_factor: Math.min(...shards.map((s) => s.rate_factor)),
    waits: Object.fromEntries(
      PRIORITY_CLASSES.map((c) => {
        const ws = shards.map((s) => s.waits[c]).filter((w) => w !== undefined);
        const granted = ws.reduce((a, w) => a + w.granted, 0);
        const mean = granted ? Math.round(ws.reduce((a, w) => a + (w.mean_ms ?? 0) * w.granted, 0) / granted) : null;
        // Across shards the quantiles are bounds: the worst shard's.
        return [c, { granted, mean_ms: mean, p50_ms: max(ws.map((w) => w.p50_ms)), p95_ms: max(ws.map((w) => w.p95_ms)), max_ms: Math.max(0, ...ws.map((w) => w.max_ms)) }];
      }),
    ),
  };
}

export function registerScheduler(api: ApiRegistry): void {
  api.route(
    {
      method: 'get',
      path: '/v1/scheduler',
      operationId: 'getScheduler',
      summary: "The LLM scheduler's pools by name: queue length, in flight, tokens and requests per minute, 429s, waits by priority; the cursor is the last pool name of the previous page",
      tag: 'scheduler',
      role: 'reader',
      query: z.object(pageParams(100, 500, PoolNameCursor)),
      responses: { 200: { description: 'a page of pools', schema: paged('pools', PoolStatsSchema) }, 400: E('SCHEDULER_POOLS is invalid, or a bad query') },
    },
    async ({ query, c }) => {
      const pools = poolsFromEnv(c.env.SCHEDULER_POOLS);
      if (pools instanceof Error) throw new KernelError('EINVAL', pools.message);
      const after = query.cursor ?? '';
      // One page of names from both sources, in one order: the configured pools after the cursor and
      // the next limit + 1 the objects listed; the first limit + 1 of their union decide the page.
      const known = new Map<string, number>();
      for (const [id, config] of Object.entries(pools)) if (id !== '*' && id > after) known.set(id, shardsOf(config));
      const rows = await c.env.DB.prepare('SELECT pool, shards FROM scheduler_pools WHERE pool > ? ORDER BY pool LIMIT ?').bind(after, query.limit + 1).all<{ pool: string; shards: number }>();
      for (const r of rows.results) if (!known.has(r.pool)) known.set(r.pool, r.shards);
      const page = pageOf([...known].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)), query.limit, ([pool]) => pool);
      const out = await Promise.all(
        page.rows.map(async ([pool, n]) => {
          const config = pools[pool] ?? (pool.startsWith('scripted:') ? null : (pools['*'] ?? null));
          const shards = await Promise.all(Array.from({ length: config ? shardsOf(config) : n }, (_, i) => schedulerStub(c.env, pool, i).stats(pool, i)));
          return merge(pool, config, shards);
        }),
      );
      return c.json({ pools: out, next_cursor: page.next_cursor });
    },
  );
}
