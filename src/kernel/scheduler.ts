/**
 * The LLM scheduler's policy, pure: which waiting LLM call (a ticket) gets the next slice of a pool.
 *
 * A pool is one provider + endpoint + model: the unit a provider rate-limits. Every scheduled LLM call
 * is a ticket: it is queued, granted (it holds a slice: a concurrency slot and its share of the
 * request and token buckets), then released with the real usage, or expired as a lease if its
 * process died holding it. The order of grants is:
 *
 *  1. priority class (high 0–32, normal 33–66, low 67–100; lower is more urgent, like nice), aged: a
 *     ticket rises one class per `aging_seconds` waited, so low work never starves;
 *  2. weighted fair share between tenants, then between processes: each keeps a virtual time (tokens
 *     charged / weight), and the lowest goes first; a tenant or process that was idle starts at the
 *     current minimum, so it cannot bank credit while away;
 *  3. arrival order.
 * The head of that order is granted when the pool allows it: not paused by a 429, under the
 * concurrency cap, within the per-tenant token window, and with one request and its estimated
 * tokens within the rate limits (token buckets and, when the provider's window is given, a sliding
 * window like the provider's; `headroom` below the provider's limits). The head is never bypassed by a smaller ticket, so big prompts
 * cannot starve either.
 *
 * The rate limits, the caps and the adaptation to 429s are pool-rate.ts.
 *
 * Cost: `pick` scans the queue once per decision (no sort, no copy of the shares: it returns only
 * the virtual times it changed), so a pass over n waiting tickets that grants k costs O(k·n) in
 * memory; the scheduler object keeps the queue and the shares in memory.
 *
 * Hierarchical quotas: a ticket carries its process's lineage (itself, then its ancestors, each with
 * its `max_tokens`). Usage is charged to every pid in the lineage, so a child's tokens count against
 * its parent's and grandparent's budgets; a ticket whose lineage has a budget spent is denied.
 *
 * Time is an argument everywhere: the scheduler object passes its clock in.
 */
import { z } from 'zod';
import type { ModelRef } from './pcb.ts';
import { type PoolState, type WindowUse, limitsOf, refill, timeToFill, windowAllowance, windowRoom } from './pool-rate.ts';

// --- configuration --------------------------------------------------------------------------------

export const PoolConfigSchema = z
  .object({
    rpm: z.number().positive().nullable().default(null).describe("the provider's requests per minute for this key and model; null: unlimited"),
    tpm: z.number().positive().nullable().default(null).describe("the provider's tokens per minute; null: unlimited"),
    concurrency: z.number().int().positive().nullable().default(null).describe('LLM calls in flight at once; null: unlimited'),
    burst_seconds: z.number().positive().max(60).default(1).describe('bucket capacity, in seconds of rate (without window_seconds)'),
    window_seconds: z.number().positive().max(3600).nullable().default(null).describe("the provider's enforcement window: admit at most headroom × a window's allowance in any such window; null: token buckets"),
    headroom: z.number().min(0.5).max(1).default(0.97).describe('fraction of rpm/tpm the scheduler aims for'),
    aging_seconds: z.number().positive().default(60).describe('a waiting call rises one priority class per this many seconds'),
    lease_seconds: z.number().int().min(5).default(180).describe('a granted slice not released by then is expired (its process died)'),
    tenant_weights: z.record(z.string(), z.number().positive()).default({}).describe('fair-share weight per tenant (default 1)'),
    tenant_tokens: z
      .object({ tokens: z.number().int().positive(), window_seconds: z.number().int().positive() })
      .strict()
      .nullable()
      .default(null)
      .describe('per-tenant token budget per fixed window; calls over it wait for the next window'),
    adaptive: z.boolean().default(true).describe('pause and slow the pool on a provider 429'),
    shards: z.number().int().min(1).max(64).optional().describe('scheduler objects for this pool (default: one per 12,000 rpm)'),
  })
  .strict();
export type PoolConfig = z.infer<typeof PoolConfigSchema>;

/** `SCHEDULER_POOLS`: pool id (or "*": every pool of a network provider) → its configuration. */
export const PoolsConfigSchema = z.record(z.string(), PoolConfigSchema);

/** Requests per minute one scheduler object is given before the pool is split into shards. */
export const SHARD_RPM = 12_000;

/** The pool a model belongs to: the provider, the model and, when the process set one, the endpoint's host. */
export function poolId(model: ModelRef): string {
  let host = '';
  if (model.base_url) {
    try {
      host = `@${new URL(model.base_url).host}`;
    } catch {
      host = `@${model.base_url}`;
    }
  }
  return `${model.provider}:${model.model}${host}`;
}

export interface ResolvedPool {
  readonly id: string;
  readonly shards: number;
  readonly config: PoolConfig;
}

/**
 * The scheduled pool of a model, or null when its calls go straight to the provider. Pools listed by
 * id are scheduled; "*" schedules every other pool except the in-process scripted provider's.
 */
export function resolvePool(model: ModelRef, pools: Readonly<Record<string, PoolConfig>>): ResolvedPool | null {
  const id = poolId(model);
  const config = pools[id] ?? (model.provider !== 'scripted' ? pools['*'] : undefined);
  if (!config) return null;
  return { id, config, shards: shardsOf(config) };
}

/** How many scheduler objects serve a pool: as configured, else one per SHARD_RPM requests per minute. */
export function shardsOf(config: PoolConfig): number {
  return config.shards ?? Math.max(1, Math.ceil((config.rpm ?? 0) / SHARD_RPM));
}

/** Which shard of a pool serves a process tree: by its root pid, so a whole tree is accounted in one place. */
export function shardOf(rootPid: string, shards: number): number {
  let h = 2166136261;
  for (let i = 0; i < rootPid.length; i++) h = Math.imul(h ^ rootPid.charCodeAt(i), 16777619);
  return (h >>> 0) % shards;
}

// --- tickets --------------------------------------------------------------------------------------

export const PRIORITY_CLASSES = ['high', 'normal', 'low'] as const;
export type PriorityClass = (typeof PRIORITY_CLASSES)[number];

export function classOf(priority: number): number {
  return priority < 33 ? 0 : priority < 67 ? 1 : 2;
}

/** The class a ticket competes in after waiting `waitedMs`: one class up per `agingMs`. */
export function agedClass(priority: number, waitedMs: number, agingMs: number): number {
  return Math.max(0, classOf(priority) - Math.floor(Math.max(0, waitedMs) / agingMs));
}

export interface LineageEntry {
  readonly pid: string;
  readonly max_tokens: number;
}

export interface QueuedTicket {
  readonly id: string;
  readonly pid: string;
  readonly tenant: string;
  readonly priority: number;
  readonly est_tokens: number;
  readonly enqueued_at: number;
  /** The process itself first, then its ancestors. */
  readonly lineage: readonly LineageEntry[];
}

// --- fair share -----------------------------------------------------------------------------------

/** Virtual times: tokens charged / weight, per tenant and per process. */
export interface VirtualTimes {
  readonly tenant: ReadonlyMap<string, number>;
  readonly pid: ReadonlyMap<string, number>;
}

export interface TenantWindow {
  readonly start: number;
  readonly tokens: number;
}

export interface PickInput {
  readonly config: PoolConfig;
  readonly shards: number;
  readonly state: PoolState;
  readonly queue: readonly QueuedTicket[];
  readonly in_flight: number;
  readonly vtimes: VirtualTimes;
  /** Tokens charged per tenant in its current window (tenant_tokens). */
  readonly windows: ReadonlyMap<string, TenantWindow>;
  /** Tokens used so far by each pid's subtree (the pid and its descendants), in this pool shard. */
  readonly subtree: ReadonlyMap<string, number>;
  /** With `window_seconds`: the requests the provider has counted in its window, and the calls in flight. */
  readonly window?: WindowUse;
  readonly now: number;
}

export type Decision =
  | { readonly kind: 'grant'; readonly ticket: QueuedTicket; readonly charged: number; readonly waited_ms: number; readonly class: number }
  | { readonly kind: 'deny'; readonly ticket: QueuedTicket; readonly pid: string; readonly used: number; readonly max_tokens: number };

export interface PickResult {
  readonly decisions: readonly Decision[];
  readonly state: PoolState;
  /** The virtual times this pass changed (apply them with `withVtimes`). */
  readonly vtimes: VirtualTimes;
  readonly windows: ReadonlyMap<string, TenantWindow>;
  /** When the head of the queue can next be granted if nothing else happens (a release also re-runs this); null: nothing waits on time. */
  readonly next_at: number | null;
  /** Why the head waits: 'paused', 'concurrency', 'requests', 'tokens', 'tenant_quota' (null if the queue is empty). */
  readonly blocked_by: string | null;
}

/** Virtual times with `changes` applied (copies; the scheduler object applies them in place). */
export function withVtimes(v: VirtualTimes, changes: VirtualTimes): VirtualTimes {
  return { tenant: new Map([...v.tenant, ...changes.tenant]), pid: new Map([...v.pid, ...changes.pid]) };
}

/** The order tickets compete in: aged class, tenant share, process share, arrival. */
export function order(queue: readonly QueuedTicket[], vtimes: VirtualTimes, agingMs: number, now: number): QueuedTicket[] {
  const v: Shares = { tenant: (k) => vtimes.tenant.get(k) ?? 0, pid: (k) => vtimes.pid.get(k) ?? 0 };
  return [...queue].sort((a, b) => compare(a, b, agedClass(a.priority, now - a.enqueued_at, agingMs), agedClass(b.priority, now - b.enqueued_at, agingMs), v));
}

/** Virtual times as lookups (0 for one not set). */
interface Shares {
  tenant(key: string): number;
  pid(key: string): number;
}

function compare(a: QueuedTicket, b: QueuedTicket, ca: number, cb: number, v: Shares): number {
  if (ca !== cb) return ca - cb;
  const ta = v.tenant(a.tenant);
  const tb = v.tenant(b.tenant);
  if (ta !== tb) return ta - tb;
  const pa = v.pid(a.pid);
  const pb = v.pid(b.pid);
  if (pa !== pb) return pa - pb;
  if (a.enqueued_at !== b.enqueued_at) return a.enqueued_at - b.enqueued_at;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * The virtual times to set for a ticket that joins the queue (only those that change): an idle
 * tenant or process starts at the lowest virtual time among those already waiting, so time spent
 * idle is not banked as credit. One pass over the queue.
 */
export function joinVirtualTimes(v: VirtualTimes, queue: readonly QueuedTicket[], t: QueuedTicket): VirtualTimes {
  let tenantWaits = false;
  let pidWaits = false;
  let minTenant = Infinity;
  let minPeer = Infinity;
  for (const q of queue) {
    if (q.id === t.id) continue;
    if (q.tenant === t.tenant) {
      tenantWaits = true;
      if (q.pid === t.pid) pidWaits = true;
      minPeer = Math.min(minPeer, v.pid.get(q.pid) ?? 0);
    } else minTenant = Math.min(minTenant, v.tenant.get(q.tenant) ?? 0);
  }
  const tenant = new Map<string, number>();
  const pid = new Map<string, number>();
  if (!tenantWaits && minTenant !== Infinity) tenant.set(t.tenant, Math.max(v.tenant.get(t.tenant) ?? 0, minTenant));
  if (!pidWaits && minPeer !== Infinity) pid.set(t.pid, Math.max(v.pid.get(t.pid) ?? 0, minPeer));
  return { tenant, pid };
}

/** The first pid in a lineage whose subtree has spent its budget, if any. */
export function quotaExceeded(lineage: readonly LineageEntry[], subtree: ReadonlyMap<string, number>): { pid: string; used: number; max_tokens: number } | null {
  for (const l of lineage) {
    const used = subtree.get(l.pid) ?? 0;
    if (used >= l.max_tokens) return { pid: l.pid, used, max_tokens: l.max_tokens };
  }
  return null;
}

function windowOf(w: TenantWindow | undefined, windowMs: number, now: number): TenantWindow {
  if (!w || now >= w.start + windowMs) return { start: now - (w ? (now - w.start) % windowMs : 0), tokens: 0 };
  return w;
}

/**
 * Grant (or deny) as many queued tickets as the pool allows at `now`, in order. Stops at the first
 * ticket that has to wait, and says until when.
 */
export function pick(input: PickInput): PickResult {
  const { config, shards, now } = input;
  const limits = limitsOf(config, shards, input.state, now);
  const allowance = windowAllowance(config, shards, input.state, now);
  let state: PoolState = {
    ...input.state,
    requests: refill(input.state.requests, limits.req_rate, limits.req_cap, now),
    tokens: refill(input.state.tokens, limits.tok_rate, limits.tok_cap, now),
  };
  // The shares this pass changed, read through to the input's.
  const changed = { tenant: new Map<string, number>(), pid: new Map<string, number>() };
  const v: Shares = { tenant: (k) => changed.tenant.get(k) ?? input.vtimes.tenant.get(k) ?? 0, pid: (k) => changed.pid.get(k) ?? input.vtimes.pid.get(k) ?? 0 };
  const windows = new Map(input.windows);
  const weight = (tenant: string) => config.tenant_weights[tenant] ?? 1;
  const decisions: Decision[] = [];
  let inFlight = input.in_flight;
  let inFlightTokens = input.window?.in_flight_tokens ?? 0;
  const agingMs = config.aging_seconds * 1000;
  const classes = input.queue.map((t) => agedClass(t.priority, now - t.enqueued_at, agingMs));
  const out = new Uint8Array(input.queue.length);
  const heldTenants = new Set<string>();
  let held: number | null = null;
  const done = (blocked: { next_at: number | null; blocked_by: string | null }): PickResult => ({ decisions, state, vtimes: changed, windows, ...blocked });
  for (;;) {
    // The head: the first of the remaining tickets in order.
    let h = -1;
    for (let i = 0; i < input.queue.length; i++) {
      if (out[i] || heldTenants.has((input.queue[i] as QueuedTicket).tenant)) continue;
      if (h === -1 || compare(input.queue[i] as QueuedTicket, input.queue[h] as QueuedTicket, classes[i] as number, classes[h] as number, v) < 0) h = i;
    }
    if (h === -1) break;
    const t = input.queue[h] as QueuedTicket;
    const over = quotaExceeded(t.lineage, input.subtree);
    if (over) {
      decisions.push({ kind: 'deny', ticket: t, ...over });
      out[h] = 1;
      continue;
    }
    if (state.paused_until > now) return done({ next_at: state.paused_until, blocked_by: 'paused' });
    if (limits.concurrency !== null && inFlight >= limits.concurrency) return done({ next_at: null, blocked_by: 'concurrency' });
    const charged = Math.max(1, Math.round(t.est_tokens * state.est_ratio));
    if (config.tenant_tokens) {
      const windowMs = config.tenant_tokens.window_seconds * 1000;
      const w = windowOf(windows.get(t.tenant), windowMs, now);
      windows.set(t.tenant, w);
      if (w.tokens >= config.tenant_tokens.tokens / shards) {
        // This tenant waits for its next window; the others go on.
        held = Math.min(held ?? Infinity, w.start + windowMs);
        heldTenants.add(t.tenant);
        continue;
      }
    }
    if (state.requests.level < 1) return done({ next_at: now + timeToFill(state.requests, limits.req_rate, 1), blocked_by: 'requests' });
    const need = Math.min(charged, limits.tok_cap);
    if (state.tokens.level < need) return done({ next_at: now + timeToFill(state.tokens, limits.tok_rate, need), blocked_by: 'tokens' });
    if (allowance) {
      // The buckets pace grants; the window keeps requests that reach the provider bunched within its limit.
      const room = windowRoom(allowance, { entries: input.window?.entries ?? [], in_flight: inFlight, in_flight_tokens: inFlightTokens }, charged, now);
      if (!room.ok) return done(room);
    }
    state = { ...state, requests: { ...state.requests, level: state.requests.level - 1 }, tokens: { ...state.tokens, level: state.tokens.level - charged } };
    changed.tenant.set(t.tenant, v.tenant(t.tenant) + charged / weight(t.tenant));
    changed.pid.set(t.pid, v.pid(t.pid) + charged);
    if (config.tenant_tokens) {
      const w = windows.get(t.tenant) as TenantWindow;
      windows.set(t.tenant, { ...w, tokens: w.tokens + charged });
    }
    inFlight++;
    inFlightTokens += charged;
    out[h] = 1;
    decisions.push({ kind: 'grant', ticket: t, charged, waited_ms: Math.max(0, now - t.enqueued_at), class: classOf(t.priority) });
  }
  return done({ next_at: held, blocked_by: held === null ? null : 'tenant_quota' });
}

/** Jain's fairness index of non-negative allocations: 1 when all are equal, 1/n when one has everything. */
export function jain(xs: readonly number[]): number {
  if (xs.length === 0) return 1;
  const sum = xs.reduce((a, b) => a + b, 0);
  const sq = xs.reduce((a, b) => a + b * b, 0);
  return sq === 0 ? 1 : (sum * sum) / (xs.length * sq);
}

// --- wait statistics ------------------------------------------------------------------------------

/** Upper bounds (ms) of the wait histogram's buckets; the last bucket is unbounded. */
export const WAIT_BOUNDS = [1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000] as const;

export function waitBucket(ms: number): number {
  const i = WAIT_BOUNDS.findIndex((b) => ms <= b);
  return i === -1 ? WAIT_BOUNDS.length : i;
}

/** The upper bound of the histogram bucket holding quantile `q` (Infinity past the last bound; null if empty). */
export function quantileOf(histogram: readonly number[], q: number): number | null {
  const total = histogram.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  let seen = 0;
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i] ?? 0;
    if (seen >= q * total) return WAIT_BOUNDS[i] ?? Infinity;
  }
  return Infinity;
}

let parsedFrom: string | undefined;
let parsedPools: Record<string, PoolConfig> | Error = {};

/** SCHEDULER_POOLS, parsed once per isolate. An invalid value is an Error that every scheduled call reports. */
export function poolsFromEnv(raw: string | undefined): Record<string, PoolConfig> | Error {
  if (raw === parsedFrom) return parsedPools;
  parsedFrom = raw;
  try {
    const r = PoolsConfigSchema.safeParse(raw === undefined || raw.trim() === '' ? {} : JSON.parse(raw));
    parsedPools = r.success ? r.data : new Error(`SCHEDULER_POOLS is invalid: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  } catch (e) {
    parsedPools = new Error(`SCHEDULER_POOLS is not valid JSON: ${(e as Error).message}`);
  }
  return parsedPools;
}
