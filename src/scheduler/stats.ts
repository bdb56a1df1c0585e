/**
 * What one LLM scheduler shard counts about itself (kept in its kv table, src/scheduler/store.ts)
 * and the view of it that `GET /v1/scheduler` shows: tickets by outcome, the wait of each grant by
 * priority class as a histogram, and the tokens and requests of the last minute in 10-second buckets.
 */
import { factorAt, type PoolState } from '../kernel/pool-rate.ts';
import { PRIORITY_CLASSES, type PoolConfig, WAIT_BOUNDS, quantileOf, waitBucket } from '../kernel/scheduler.ts';
import type { ShardStats } from '../rpc/contracts.ts';

export interface Stats {
  granted: number;
  released: number;
  expired: number;
  denied: number;
  abandoned: number;
  rate_limited: number;
  waits: Record<string, { hist: number[]; sum: number; max: number }>;
  /** 10-second buckets: [start, tokens, requests]. */
  recent: [number, number, number][];
}

export const emptyStats = (): Stats => ({
  granted: 0,
  released: 0,
  expired: 0,
  denied: 0,
  abandoned: 0,
  rate_limited: 0,
  waits: Object.fromEntries(PRIORITY_CLASSES.map((c) => [c, { hist: new Array<number>(WAIT_BOUNDS.length + 1).fill(0), sum: 0, max: 0 }])),
  recent: [],
});

/** A grant in priority class `cls` after waiting `waitedMs`. */
export function countGrant(stats: Stats, cls: number, waitedMs: number): void {
  stats.granted++;
  const w = stats.waits[PRIORITY_CLASSES[cls] ?? 'low'];
  if (!w) return;
  w.hist[waitBucket(waitedMs)] = (w.hist[waitBucket(waitedMs)] ?? 0) + 1;
  w.sum += waitedMs;
  w.max = Math.max(w.max, waitedMs);
}

/** Tokens and requests used at `now`, in its 10-second bucket; buckets older than 70 s go. */
export function countRecent(stats: Stats, now: number, tokens: number, requests: number): void {
  const start = now - (now % 10_000);
  const last = stats.recent.at(-1);
  if (last && last[0] === start) {
    last[1] += tokens;
    last[2] += requests;
  } else stats.recent.push([start, tokens, requests]);
  stats.recent = stats.recent.filter(([at]) => at > now - 70_000);
}

/** The shard as `GET /v1/scheduler` shows it. */
export function shardView(
  where: { pool: string; shard: number; config: PoolConfig | null },
  s: Stats,
  state: PoolState,
  tickets: { queued: number; granted: number },
  now: number,
): ShardStats {
  const recent = s.recent.filter(([at]) => at > now - 60_000);
  return {
    ...where,
    queue_length: tickets.queued,
    in_flight: tickets.granted,
    tokens_per_min: recent.reduce((a, [, tk]) => a + tk, 0),
    requests_per_min: recent.reduce((a, [, , r]) => a + r, 0),
    granted: s.granted,
    released: s.released,
    expired: s.expired,
    denied: s.denied,
    abandoned: s.abandoned,
    rate_limited: s.rate_limited,
    paused_until: state.paused_until > now ? state.paused_until : null,
    rate_factor: Math.round(factorAt(state, now) * 1000) / 1000,
    est_ratio: Math.round(state.est_ratio * 1000) / 1000,
    waits: Object.fromEntries(
      Object.entries(s.waits).map(([cls, w]) => {
        const n = w.hist.reduce((a, b) => a + b, 0);
        return [cls, { granted: n, mean_ms: n ? Math.round(w.sum / n) : null, p50_ms: quantileOf(w.hist, 0.5), p95_ms: quantileOf(w.hist, 0.95), max_ms: w.max }];
      }),
    ),
  };
}
