/**
 * A pool's rate limits, pure: what a provider allows per minute, as token buckets, and how the pool
 * adapts when the provider says no. The scheduler's policy (scheduler.ts) grants a ticket only when
 * these limits have room for it.
 *
 * Each shard of a pool keeps two token buckets, requests and tokens, refilled continuously at its
 * share of `rpm` and `tpm` times `headroom` and holding at most `burst_seconds` of rate: they pace
 * grants evenly, so urgent work that arrives later still finds room. When the provider's
 * enforcement window is given (`window_seconds`), a grant must also fit a **sliding window** like
 * the provider's own: at most `headroom` × a window's allowance in any window, counting each request
 * from when its process sent it (reported on release) with the tokens it used, and every call still
 * in flight. The buckets pace grants, but a runtime that is slow to send them bunches the requests;
 * the window sees that bunching as the provider will, and holds the next grant until it fits.
 * and a cap on calls in flight. A 429 the provider still answers pauses the whole pool until its
 * `retry-after`: the pool adapts, rather than each process backing off on its own. Only a 429 that
 * persists after a pause (for a call granted after the pause began, within a minute of its end)
 * also scales the rates down by 15% (recovering 5% per minute): a bunch of requests that a slow
 * runtime sent late pauses the pool once, and does not cut its rate for the rest of the run. Token
 * estimates are corrected by the usage reported on release, and the pool learns the ratio of real
 * to estimated tokens.
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
  readonly window_seconds?: number | null;
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
  /** When the latest pause began (0: never paused); absent in states saved before it existed. */
  readonly paused_at?: number;
  /** Rate multiplier after 429s, and when it was last lowered. */
  readonly factor: number;
  readonly factor_at: number;
  /** Learned ratio of reported to estimated tokens. */
  readonly est_ratio: number;
}

export const INITIAL_STATE: PoolState = { requests: { level: Number.NaN, at: 0 }, tokens: { level: Number.NaN, at: 0 }, paused_until: 0, paused_at: 0, factor: 1, factor_at: 0, est_ratio: 1 };

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

/** How long after a pause's end a 429 still counts as persisting after it. */
const PERSIST_MS = 60_000;

/**
 * A slice comes back. Tokens: the buckets and shares are corrected from the estimate charged at
 * grant to what the provider reported. A 429 (adaptive pools): pause until retry-after (1 s if none)
 * and empty the buckets; lower the rate factor only if the call was granted after the latest pause
 * began (the 429s persist after it), not for the rest of a bunch granted before it.
 */
export function release(config: RateConfig, state: PoolState, charged: number, estimated: number, outcome: Outcome, now: number, grantedAt = now): PoolState {
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
    const pausedAt = s.paused_at ?? 0;
    const persists = pausedAt > 0 && grantedAt >= pausedAt && grantedAt <= s.paused_until + PERSIST_MS;
    s = {
      ...s,
      paused_until: Math.max(s.paused_until, until),
      paused_at: persists || now >= s.paused_until ? now : pausedAt,
      ...(persists ? { factor: Math.max(0.5, factorAt(s, now) * 0.85), factor_at: now } : {}),
      requests: { level: Math.min(0, s.requests.level), at: now },
      tokens: { level: Math.min(0, s.tokens.level), at: now },
    };
  }
  return s;
}

// --- the sliding window ---------------------------------------------------------------------------

/** Requests the provider has counted in its window: [sent at, tokens used], oldest first. */
export type WindowEntries = readonly (readonly [number, number])[];

/** What counts in the window at `now`, besides the calls in flight (which count until released). */
export interface WindowUse {
  readonly entries: WindowEntries;
  readonly in_flight: number;
  readonly in_flight_tokens: number;
}

/** One window's allowance for a shard at `now`: headroom × rate × window, slowed by 429s. */
export function windowAllowance(config: RateConfig, shards: number, state: PoolState, now: number): { requests: number; tokens: number; ms: number } | null {
  const seconds = config.window_seconds;
  if (!seconds) return null;
  const f = factorAt(state, now) * config.headroom;
  const per = (perMin: number | null) => (perMin === null ? Infinity : (perMin / shards / 60) * seconds * f);
  return { requests: Math.max(1, Math.floor(per(config.rpm))), tokens: Math.max(1, per(config.tpm)), ms: seconds * 1000 };
}

/**
 * Whether one more request of `tokens` fits the window at `now`; if not, why, and when the entries
 * that leave it first make room (null: only a release can). A call bigger than a whole window's
 * tokens goes alone into an empty window, so it cannot starve.
 */
export function windowRoom(allow: { requests: number; tokens: number; ms: number }, use: WindowUse, tokens: number, now: number): { ok: true } | { ok: false; blocked_by: 'requests' | 'tokens'; next_at: number | null } {
  // Live while at + ms > now: the same sum as next_at below, so a wait never ends where it began.
  const live = use.entries.filter(([at]) => at + allow.ms > now);
  let reqs = live.length + use.in_flight;
  let toks = live.reduce((a, [, t]) => a + t, 0) + use.in_flight_tokens;
  const need = Math.min(tokens, allow.tokens);
  if (reqs + 1 <= allow.requests && toks + need <= allow.tokens) return { ok: true };
  const blocked_by = reqs + 1 > allow.requests ? 'requests' : 'tokens';
  for (const [at, t] of live) {
    reqs--;
    toks -= t;
    if (reqs + 1 <= allow.requests && toks + need <= allow.tokens) return { ok: false, blocked_by, next_at: at + allow.ms };
  }
  return { ok: false, blocked_by, next_at: null };
}

/** The entries with a released request added (kept in order of sending) and those past the window dropped. */
export function recordSent(entries: WindowEntries, sentAt: number, tokens: number, windowMs: number, now: number): WindowEntries {
  const out = entries.filter(([at]) => at + windowMs > now);
  if (sentAt + windowMs <= now) return out;
  let i = out.length;
  while (i > 0 && (out[i - 1] as readonly [number, number])[0] > sentAt) i--;
  return [...out.slice(0, i), [sentAt, tokens] as const, ...out.slice(i)];
}
