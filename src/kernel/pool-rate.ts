/**
 * A pool's rate limits, pure: what a provider allows per minute, as token buckets, and how the pool
 * adapts when the provider says no. The scheduler's policy (scheduler.ts) grants a ticket only when
 * these limits have room for it.
 *
 * Each shard of a pool keeps two buckets, requests and tokens, refilled continuously at its share
 * of `rpm` and `tpm` times `headroom`, holding at most `burst_seconds` of rate, and a cap on calls
 * in flight. A 429 the provider still answers pauses the whole pool until its `retry-after` and
 * scales the rates down by 15% (recovering 5% per minute): the pool adapts, rather than each process
 * backing off on its own. Token estimates are corrected by the usage reported on release, and the
 * pool learns the ratio of real to estimated tokens.
 *
 * Time is an argument everywhere: the scheduler object passes its clock in.
 */

/** What of a pool's configuration (PoolConfig, scheduler.ts) the rate limits read. */
export interface RateConfig {
  readonly rpm: number | null;
  readonly tpm: number | null;
  readonly concurrency: number | null;
  readonly burst_seconds: number;
  readonly headroom: number;
  readonly adaptive: boolean;
}

export interface Bucket {
  readonly level: number;
  readonly at: number;
}

/** A pool shard's rate state: its buckets, a 429's pause and the adaptive factor, the learned estimate ratio. */
export interface PoolState {
  readonly requests: Bucket;
  readonly tokens: Bucket;
  readonly paused_until: number;
  /** Rate multiplier after 429s, and when it was last lowered. */
  readonly factor: number;
  readonly factor_at: number;
  /** Learned ratio of reported to estimated tokens. */
  readonly est_ratio: number;
}

export const INITIAL_STATE: PoolState = { requests: { level: Number.NaN, at: 0 }, tokens: { level: Number.NaN, at: 0 }, paused_until: 0, factor: 1, factor_at: 0, est_ratio: 1 };

export interface Limits {
  /** Per millisecond; null: unlimited. */
  readonly req_rate: number | null;
  readonly req_cap: number;
  readonly tok_rate: number | null;
  readonly tok_cap: number;
  readonly concurrency: number | null;
}

/** The current rate multiplier: lowered by 15% per 429, back up by 5% per minute since. */
export function factorAt(state: PoolState, now: number): number {
  return Math.min(1, state.factor + (Math.max(0, now - state.factor_at) / 60_000) * 0.05);
}

/** One shard's limits at `now`. */
export function limitsOf(config: RateConfig, shards: number, state: PoolState, now: number): Limits {
  const f = factorAt(state, now) * config.headroom;
  const rate = (perMin: number | null) => (perMin === null ? null : (perMin / shards / 60_000) * f);
  const req = rate(config.rpm);
  const tok = rate(config.tpm);
  return {
    req_rate: req,
    req_cap: req === null ? Infinity : Math.max(1, req * config.burst_seconds * 1000),
    tok_rate: tok,
    tok_cap: tok === null ? Infinity : Math.max(1, tok * config.burst_seconds * 1000),
    concurrency: config.concurrency === null ? null : Math.max(1, Math.ceil(config.concurrency / shards)),
  };
}

/** A token bucket refilled to `now`. A new bucket (level NaN) starts full. */
export function refill(b: Bucket, rate: number | null, cap: number, now: number): Bucket {
  if (rate === null) return { level: Infinity, at: now };
  if (Number.isNaN(b.level)) return { level: cap, at: now };
  return { level: Math.min(cap, b.level + Math.max(0, now - b.at) * rate), at: Math.max(b.at, now) };
}

/** Milliseconds until the bucket holds `need` (0 if it does). */
export function timeToFill(b: Bucket, rate: number | null, need: number): number {
  if (rate === null || b.level >= need) return 0;
  return Math.ceil((need - b.level) / rate);
}

// --- release --------------------------------------------------------------------------------------

export type Outcome = { readonly kind: 'ok'; readonly tokens: number } | { readonly kind: 'rate_limited'; readonly retry_after_ms: number | null } | { readonly kind: 'error' } | { readonly kind: 'expired' };

/**
 * A slice comes back. Tokens: the buckets and shares are corrected from the estimate charged at
 * grant to what the provider reported. A 429 (adaptive pools): pause until retry-after (1 s if none),
 * empty the buckets and lower the rate factor.
 */
export function release(config: RateConfig, state: PoolState, charged: number, estimated: number, outcome: Outcome, now: number): PoolState {
  let s = state;
  if (outcome.kind === 'ok') {
    const delta = outcome.tokens - charged;
    if (Number.isFinite(s.tokens.level)) s = { ...s, tokens: { ...s.tokens, level: s.tokens.level - delta } };
    if (estimated > 0 && outcome.tokens > 0) {
      const ratio = Math.min(10, Math.max(0.1, outcome.tokens / estimated));
      s = { ...s, est_ratio: s.est_ratio * 0.8 + ratio * 0.2 };
    }
  } else if (outcome.kind === 'rate_limited' && config.adaptive) {
    const until = now + Math.max(outcome.retry_after_ms ?? 1000, 0);
    s = {
      ...s,
      paused_until: Math.max(s.paused_until, until),
      factor: Math.max(0.5, factorAt(s, now) * 0.85),
      factor_at: now,
      requests: { level: Math.min(0, s.requests.level), at: now },
      tokens: { level: Math.min(0, s.tokens.level), at: now },
    };
  }
  return s;
}
