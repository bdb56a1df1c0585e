/**
 * LlmScheduler: one Durable Object per shard of an LLM pool (provider + endpoint + model). It holds
 * the pool's run queue and accounting in its SQLite storage and decides, with the pure policy in
 * src/kernel/scheduler.ts and src/kernel/pool-rate.ts, which waiting LLM call gets the next slice.
 *
 * The protocol, and why no grant is lost or duplicated:
 *  - A process names each LLM call's ticket itself (`<pid>:<n>`) and stores it before asking, so a
 *    restarted process asks again with the same id. `acquire` is idempotent per ticket: a ticket is
 *    inserted once and granted at most once (a ticket row changes state only inside a transaction),
 *    and every later `acquire` of a granted ticket returns the same grant.
 *  - A ticket that must wait is queued; its process parks on its own alarm (state ready) with a
 *    long backstop. When the ticket is granted, a wake row is committed with the grant and the
 *    process is called (`schedulerWake`) after the commit; undelivered wakes are retried by this
 *    object's alarm. A lost wake costs a backstop interval, never the grant.
 *  - `release` is idempotent (a released ticket ignores it), and the process sends it through its
 *    outbox, committed together with the usage it reports, so it is delivered at least once.
 *  - A granted ticket not released by its lease is expired by the alarm: the slot comes back, its
 *    estimated tokens stay charged. A process that comes back later with it is told `expired` and
 *    takes a new ticket.
 *  - The clock never runs backwards: an alarm counts as the time it was set for (the platform never
 *    fires early; a test that fires it is a time jump), and later calls do not undo that.
 */
import { DurableObject } from 'cloudflare:workers';
import { INITIAL_STATE, type PoolState, factorAt, release } from '../src/kernel/pool-rate.ts';
import {
  type Decision,
  type LineageEntry,
  PRIORITY_CLASSES,
  type PoolConfig,
  type QueuedTicket,
  type TenantWindow,
  WAIT_BOUNDS,
  agedClass,
  joinVirtualTimes,
  pick,
  quantileOf,
  poolsFromEnv,
  waitBucket,
} from '../src/kernel/scheduler.ts';
import type { AcquireRequest, AcquireResult, ClassWaits, ReleaseRequest, SchedulerApi, Served, ShardStats } from '../src/rpc/contracts.ts';
import { processStub } from '../src/rpc/stubs.ts';
import { type Migration, migrate } from '../src/storage/migrations.ts';

/** The shard's tables; their history (src/storage/migrations.ts). */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS tickets (
  id TEXT PRIMARY KEY, pid TEXT NOT NULL, tenant TEXT NOT NULL, priority INTEGER NOT NULL, est_tokens INTEGER NOT NULL,
  lineage TEXT NOT NULL, state TEXT NOT NULL, enqueued_at INTEGER NOT NULL, granted_at INTEGER, lease_until INTEGER,
  charged INTEGER NOT NULL DEFAULT 0, used INTEGER, done_at INTEGER, grants INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS tickets_by_state ON tickets (state, enqueued_at);
CREATE TABLE IF NOT EXISTS vtimes (kind TEXT NOT NULL, key TEXT NOT NULL, v REAL NOT NULL, PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS subtree (pid TEXT PRIMARY KEY, tokens INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS windows (tenant TEXT PRIMARY KEY, start INTEGER NOT NULL, tokens INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS wakes (ticket TEXT PRIMARY KEY, pid TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

const SCHEDULER_MIGRATIONS: readonly Migration[] = [{ version: 1, description: 'baseline: tickets, virtual times, subtree usage, tenant windows, wakes, kv', up: (sql) => sql.exec(SCHEMA) }];

type TicketRow = {
  id: string;
  pid: string;
  tenant: string;
  priority: number;
  est_tokens: number;
  lineage: string;
  state: 'queued' | 'granted' | 'released' | 'expired' | 'denied' | 'abandoned';
  enqueued_at: number;
  granted_at: number | null;
  lease_until: number | null;
  charged: number;
  used: number | null;
};

interface Stats {
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

const EMPTY_STATS = (): Stats => ({
  granted: 0,
  released: 0,
  expired: 0,
  denied: 0,
  abandoned: 0,
  rate_limited: 0,
  waits: Object.fromEntries(PRIORITY_CLASSES.map((c) => [c, { hist: new Array<number>(WAIT_BOUNDS.length + 1).fill(0), sum: 0, max: 0 }])),
  recent: [],
});

/** Finished tickets are kept this long (an RPC retried late still finds them), then pruned. */
const KEEP_DONE_MS = 3600_000;
const MAX_WAKE_ATTEMPTS = 10;
/** A held acquire that was answered directly still gets a wake this much later, unless its slice comes back first (a reply can be lost). */
const HELD_WAKE_DELAY_MS = 10_000;

export class LlmScheduler extends DurableObject<Env> implements Served<SchedulerApi> {
  readonly #sql: SqlStorage;
  #clock = 0;
  #alarmAt: number | null | undefined;
  /** Acquires being held open until their ticket is decided (in memory: a restart drops them, and their callers ask again). */
  readonly #held = new Map<string, () => void>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    migrate(ctx.storage, SCHEDULER_MIGRATIONS);
    this.#clock = this.#get<number>('clock') ?? 0;
  }

  // --- small storage helpers --------------------------------------------------------------------------
  #get<T>(key: string): T | undefined {
    const row = this.#sql.exec<{ value: string }>('SELECT value FROM kv WHERE key = ?', key).toArray()[0];
    return row ? (JSON.parse(row.value) as T) : undefined;
  }

  #put(key: string, value: unknown): void {
    this.#sql.exec('INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value', key, JSON.stringify(value));
  }

  /** The wall clock this shard reads (tests and benchmarks override it); every decision goes through #now. */
  protected clock(): number {
    return Date.now();
  }

  /** The shard's clock: the injected wall clock, never earlier than a time already acted on. */
  #now(atLeast = 0): number {
    this.#clock = Math.max(this.#clock, this.clock(), atLeast);
    return this.#clock;
  }

  #config(pool: string): PoolConfig | null {
    const pools = poolsFromEnv(this.env.SCHEDULER_POOLS);
    if (pools instanceof Error) throw pools;
    return pools[pool] ?? (pool.startsWith('scripted:') ? null : (pools['*'] ?? null));
  }

  #state(): PoolState {
    return this.#get<PoolState>('pool_state') ?? INITIAL_STATE;
  }

  #stats(): Stats {
    return this.#get<Stats>('stats') ?? EMPTY_STATS();
  }

  #ticket(id: string): TicketRow | undefined {
    return this.#sql.exec<TicketRow>('SELECT * FROM tickets WHERE id = ?', id).toArray()[0];
  }

  #identify(pool: string, shard: number, shards: number): void {
    if (this.#get<string>('pool') !== undefined) return;
    this.#put('pool', pool);
    this.#put('shard', shard);
    this.#put('shards', shards);
    // Listed for GET /v1/scheduler; best effort, retried on the next call until it lands.
    this.ctx.waitUntil(
      this.env.DB.prepare('INSERT OR IGNORE INTO scheduler_pools (pool, shards, created_at) VALUES (?, ?, ?)')
        .bind(pool, shards, this.#now())
        .run()
        .then(() => this.#put('listed', true))
        .catch(() => {}),
    );
  }

  // --- RPC ------------------------------------------------------------------------------------------

  async acquire(req: AcquireRequest): Promise<AcquireResult> {
    const config = this.#config(req.pool);
    if (!config) return { status: 'unscheduled' };
    this.#identify(req.pool, req.shard, req.shards);
    if (!this.#get<boolean>('listed')) this.#relist();
    const now = this.#now();
    const existing = this.#ticket(req.ticket);
    if (!existing) {
      this.ctx.storage.transactionSync(() => {
        this.#sql.exec(
          "INSERT INTO tickets (id, pid, tenant, priority, est_tokens, lineage, state, enqueued_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?)",
          req.ticket,
          req.pid,
          req.tenant,
          req.priority,
          Math.max(1, Math.round(req.est_tokens)),
          JSON.stringify(req.lineage),
          now,
        );
        // An idle tenant or process joins at the current minimum virtual time.
        const queue = this.#queue();
        const joined = queue.find((t) => t.id === req.ticket) as QueuedTicket;
        const v = this.#vtimes(queue);
        const after = joinVirtualTimes(v, queue, joined);
        this.#saveVtimes(after, [joined]);
      });
    }
    // The caller is waiting to make its call: others' wakes go out after the reply.
    if ((!existing || existing.state === 'queued') && this.#schedule(config, req.shards, now, req.ticket)) this.ctx.waitUntil(this.#deliverWakes(now));
    let t = this.#ticket(req.ticket) as TicketRow;
    const blocked = this.#get<{ next_at: number | null }>('blocked');
    const hold = req.hold_ms ?? 0;
    if (t.state === 'queued' && hold > 0 && blocked?.next_at != null && blocked.next_at <= now + hold) {
      // The head of the queue can go soon (a bucket refills): answer when this ticket is decided, or at the hold's end.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.#held.delete(req.ticket);
          resolve();
        }, hold);
        this.#held.set(req.ticket, () => {
          clearTimeout(timer);
          this.#held.delete(req.ticket);
          resolve();
        });
      });
      t = this.#ticket(req.ticket) as TicketRow;
    }
    return this.#answer(t, config, this.#now());
  }

  #answer(t: TicketRow, config: PoolConfig, now: number): AcquireResult {
    switch (t.state) {
      case 'granted':
        return { status: 'granted', lease_until: t.lease_until ?? now, waited_ms: (t.granted_at ?? now) - t.enqueued_at, class: agedClass(t.priority, 0, 1) };
      case 'queued': {
        const order = this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM tickets WHERE state = 'queued' AND enqueued_at < ?", t.enqueued_at).one().n;
        const agingMs = config.aging_seconds * 1000;
        const mine = agedClass(t.priority, now - t.enqueued_at, agingMs);
        const higher = this.#queue().filter((q) => agedClass(q.priority, now - q.enqueued_at, agingMs) < mine).length;
        const s = this.#get<{ next_at: number | null; blocked_by: string | null }>('blocked') ?? { next_at: null, blocked_by: null };
        return { status: 'queued', position: order, higher_waiting: higher, blocked_by: s.blocked_by, eta: s.next_at };
      }
      case 'denied': {
        const d = JSON.parse(t.lineage) as LineageEntry[];
        const over = this.#get<{ pid: string; used: number; max_tokens: number }>(`denied:${t.id}`);
        return { status: 'denied', pid: over?.pid ?? d[0]?.pid ?? t.pid, used: over?.used ?? 0, max_tokens: over?.max_tokens ?? 0 };
      }
      case 'released':
        return { status: 'released' };
      default:
        return { status: 'expired' };
    }
  }

  async release(req: ReleaseRequest): Promise<{ ok: true }> {
    const config = this.#config(req.pool);
    const t = this.#ticket(req.ticket);
    if (!config || !t || t.state === 'released' || t.state === 'queued' || t.state === 'denied') return { ok: true };
    const now = this.#now();
    const used = req.outcome.kind === 'ok' ? Math.max(0, Math.round(req.outcome.tokens)) : 0;
    this.ctx.storage.transactionSync(() => {
      const lineage = JSON.parse(t.lineage) as LineageEntry[];
      const stats = this.#stats();
      if (t.state === 'granted') {
        // Correct what was charged at grant to what was used.
        const charged = req.outcome.kind === 'ok' ? t.charged : 0;
        this.#put('pool_state', release(config, this.#state(), charged, t.est_tokens, req.outcome, now));
        stats.released++;
        if (req.outcome.kind === 'rate_limited') stats.rate_limited++;
        this.#charge(config, t, lineage, used - (req.outcome.kind === 'ok' ? t.charged : 0), used);
        this.#recent(stats, now, used, 1);
      } else {
        // Expired (its estimate was charged to the lineage then) or abandoned (nothing was): now the real number is known.
        this.#charge(config, t, lineage, used - t.charged, t.state === 'expired' ? used - t.charged : used);
        if (req.outcome.kind === 'rate_limited') stats.rate_limited++;
      }
      this.#sql.exec("UPDATE tickets SET state = 'released', used = ?, done_at = ? WHERE id = ?", used, now, t.id);
      this.#sql.exec('DELETE FROM wakes WHERE ticket = ?', t.id);
      this.#put('stats', stats);
    });
    // The slot is someone's turn: tell them before answering, so the releasing step hands over directly.
    if (this.#schedule(config, req.shards, now, null)) await this.#deliverWakes(now);
    return { ok: true };
  }

  async stats(pool: string, shard: number): Promise<ShardStats> {
    const config = this.#config(pool);
    const now = this.#now();
    const s = this.#stats();
    const state = this.#state();
    const count = (st: string) => this.#sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM tickets WHERE state = ?', st).one().n;
    const recent = s.recent.filter(([at]) => at > now - 60_000);
    return {
      pool,
      shard,
      config,
      queue_length: count('queued'),
      in_flight: count('granted'),
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

  override async alarm(): Promise<void> {
    const at = this.#get<number | null>('alarm_at') ?? null;
    this.#alarmAt = null;
    const pool = this.#get<string>('pool');
    if (pool === undefined) return;
    const config = this.#config(pool);
    if (!config) return;
    // The alarm is the timer interrupt: it counts as the time it was set for.
    const now = this.#now(at ?? 0);
    this.#schedule(config, this.#get<number>('shards') ?? 1, now, null);
    this.#sql.exec("DELETE FROM tickets WHERE state IN ('released', 'expired', 'denied', 'abandoned') AND COALESCE(done_at, enqueued_at) < ?", now - KEEP_DONE_MS);
    // A process with no ticket here rejoins at the current minimum anyway: its share row can go.
    this.#sql.exec("DELETE FROM vtimes WHERE kind = 'pid' AND key NOT IN (SELECT pid FROM tickets)");
    await this.#deliverWakes(now);
  }

  // --- scheduling -------------------------------------------------------------------------------------

  #queue(): QueuedTicket[] {
    return this.#sql
      .exec<TicketRow>("SELECT * FROM tickets WHERE state = 'queued' ORDER BY enqueued_at")
      .toArray()
      .map((r) => ({ id: r.id, pid: r.pid, tenant: r.tenant, priority: r.priority, est_tokens: r.est_tokens, enqueued_at: r.enqueued_at, lineage: JSON.parse(r.lineage) as LineageEntry[] }));
  }

  #vtimes(queue: readonly QueuedTicket[]): { tenant: Map<string, number>; pid: Map<string, number> } {
    const tenant = new Map<string, number>();
    const pid = new Map<string, number>();
    for (const r of this.#sql.exec<{ kind: string; key: string; v: number }>('SELECT kind, key, v FROM vtimes').toArray()) {
      if (r.kind === 'tenant') tenant.set(r.key, r.v);
      else if (queue.some((q) => q.pid === r.key)) pid.set(r.key, r.v);
    }
    return { tenant, pid };
  }

  #saveVtimes(v: { tenant: ReadonlyMap<string, number>; pid: ReadonlyMap<string, number> }, touched: readonly QueuedTicket[]): void {
    for (const t of touched) {
      const tv = v.tenant.get(t.tenant);
      if (tv !== undefined) this.#sql.exec("INSERT INTO vtimes (kind, key, v) VALUES ('tenant', ?, ?) ON CONFLICT(kind, key) DO UPDATE SET v = excluded.v", t.tenant, tv);
      const pv = v.pid.get(t.pid);
      if (pv !== undefined) this.#sql.exec("INSERT INTO vtimes (kind, key, v) VALUES ('pid', ?, ?) ON CONFLICT(kind, key) DO UPDATE SET v = excluded.v", t.pid, pv);
    }
  }

  /** Usage charged to a ticket's whole lineage (hierarchical quotas), its shares and its tenant's window. */
  #charge(config: PoolConfig, t: TicketRow, lineage: readonly LineageEntry[], shareDelta: number, subtreeDelta: number): void {
    if (subtreeDelta !== 0) {
      for (const l of lineage) {
        this.#sql.exec('INSERT INTO subtree (pid, tokens) VALUES (?, ?) ON CONFLICT(pid) DO UPDATE SET tokens = MAX(0, tokens + excluded.tokens)', l.pid, subtreeDelta);
      }
    }
    if (shareDelta !== 0) {
      const w = config.tenant_weights[t.tenant] ?? 1;
      this.#sql.exec("UPDATE vtimes SET v = MAX(0, v + ?) WHERE kind = 'tenant' AND key = ?", shareDelta / w, t.tenant);
      this.#sql.exec("UPDATE vtimes SET v = MAX(0, v + ?) WHERE kind = 'pid' AND key = ?", shareDelta, t.pid);
      this.#sql.exec('UPDATE windows SET tokens = MAX(0, tokens + ?) WHERE tenant = ?', shareDelta, t.tenant);
    }
  }

  #recent(stats: Stats, now: number, tokens: number, requests: number): void {
    const start = now - (now % 10_000);
    const last = stats.recent.at(-1);
    if (last && last[0] === start) {
      last[1] += tokens;
      last[2] += requests;
    } else stats.recent.push([start, tokens, requests]);
    stats.recent = stats.recent.filter(([at]) => at > now - 70_000);
  }

  /**
   * Expire dead leases, then grant (or deny) what the policy allows, in one commit with the wake rows
   * for every decided ticket except `self` (the caller learns its answer from the reply), and point
   * the alarm at the next thing that can change. Returns whether there are wakes to deliver.
   */
  #schedule(config: PoolConfig, shards: number, now: number, self: string | null): boolean {
    const decided: Decision[] = [];
    this.ctx.storage.transactionSync(() => {
      const stats = this.#stats();
      let state = this.#state();
      for (const t of this.#sql.exec<TicketRow>("SELECT * FROM tickets WHERE state = 'granted' AND lease_until <= ?", now).toArray()) {
        // Its process died holding the slice (or is far past its timeout): the slot comes back; the estimate stays charged.
        state = release(config, state, t.charged, t.est_tokens, { kind: 'expired' }, now);
        this.#charge(config, t, JSON.parse(t.lineage) as LineageEntry[], 0, t.charged);
        this.#sql.exec("UPDATE tickets SET state = 'expired', done_at = ? WHERE id = ?", now, t.id);
        stats.expired++;
      }
      const queue = this.#queue();
      const lineagePids = [...new Set(queue.flatMap((q) => q.lineage.map((l) => l.pid)))];
      const subtree = new Map<string, number>();
      for (const pid of lineagePids) {
        const row = this.#sql.exec<{ tokens: number }>('SELECT tokens FROM subtree WHERE pid = ?', pid).toArray()[0];
        if (row) subtree.set(pid, row.tokens);
      }
      const windows = new Map<string, TenantWindow>();
      for (const r of this.#sql.exec<{ tenant: string; start: number; tokens: number }>('SELECT * FROM windows').toArray()) windows.set(r.tenant, { start: r.start, tokens: r.tokens });
      const inFlight = this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM tickets WHERE state = 'granted'").one().n;
      const r = pick({ config, shards, state, queue, in_flight: inFlight, vtimes: this.#vtimes(queue), windows, subtree, now });
      for (const d of r.decisions) {
        if (d.kind === 'grant') {
          this.#sql.exec("UPDATE tickets SET state = 'granted', granted_at = ?, lease_until = ?, charged = ?, grants = grants + 1 WHERE id = ? AND state = 'queued'", now, now + config.lease_seconds * 1000, d.charged, d.ticket.id);
          stats.granted++;
          const w = stats.waits[PRIORITY_CLASSES[d.class] ?? 'low'];
          if (w) {
            w.hist[waitBucket(d.waited_ms)] = (w.hist[waitBucket(d.waited_ms)] ?? 0) + 1;
            w.sum += d.waited_ms;
            w.max = Math.max(w.max, d.waited_ms);
          }
        } else {
          this.#sql.exec("UPDATE tickets SET state = 'denied', done_at = ? WHERE id = ? AND state = 'queued'", now, d.ticket.id);
          this.#put(`denied:${d.ticket.id}`, { pid: d.pid, used: d.used, max_tokens: d.max_tokens });
          stats.denied++;
        }
        // A held acquire hears it in its reply; the wake is then only a late safety net.
        const wakeAt = this.#held.has(d.ticket.id) ? now + HELD_WAKE_DELAY_MS : now;
        if (d.ticket.id !== self) this.#sql.exec('INSERT OR IGNORE INTO wakes (ticket, pid, next_at) VALUES (?, ?, ?)', d.ticket.id, d.ticket.pid, wakeAt);
        decided.push(d);
      }
      this.#saveVtimes(r.vtimes, queue);
      for (const [tenant, w] of r.windows) this.#sql.exec('INSERT INTO windows (tenant, start, tokens) VALUES (?, ?, ?) ON CONFLICT(tenant) DO UPDATE SET start = excluded.start, tokens = excluded.tokens', tenant, w.start, w.tokens);
      this.#put('pool_state', r.state);
      this.#put('blocked', { next_at: r.next_at, blocked_by: r.blocked_by });
      this.#put('stats', stats);
      this.#put('clock', now);
    });
    const wakes = decided.some((d) => d.ticket.id !== self && !this.#held.has(d.ticket.id));
    for (const d of decided) this.#held.get(d.ticket.id)?.();
    this.ctx.waitUntil(this.#rearm());
    return wakes;
  }

  /** Tell parked processes their ticket was decided. A process that no longer wants it gives the slot back. */
  async #deliverWakes(now: number): Promise<void> {
    const due = this.#sql.exec<{ ticket: string; pid: string; attempts: number }>('SELECT ticket, pid, attempts FROM wakes WHERE next_at <= ? LIMIT 200', now).toArray();
    if (due.length === 0) return;
    // Claim them first, so a concurrent pass does not send the same wake twice.
    for (const w of due) this.#sql.exec('UPDATE wakes SET next_at = ? WHERE ticket = ?', now + 5000 * 2 ** Math.min(w.attempts, 6), w.ticket);
    await this.#rearm();
    await Promise.all(
      due.map(async (w) => {
        try {
          const { wanted } = await processStub(this.env, w.pid).schedulerWake(w.ticket);
          this.#sql.exec('DELETE FROM wakes WHERE ticket = ?', w.ticket);
          if (!wanted) this.#abandon(w.ticket);
        } catch {
          if (w.attempts + 1 >= MAX_WAKE_ATTEMPTS) this.#sql.exec('DELETE FROM wakes WHERE ticket = ?', w.ticket);
          else this.#sql.exec('UPDATE wakes SET attempts = attempts + 1 WHERE ticket = ?', w.ticket);
        }
      }),
    );
    await this.#rearm();
  }

  /** The process moved on (it exited, or took a new ticket): a grant it will never use comes back now. */
  #abandon(ticket: string): void {
    const pool = this.#get<string>('pool');
    const config = pool === undefined ? null : this.#config(pool);
    const t = this.#ticket(ticket);
    if (!config || !t || t.state !== 'granted') return;
    this.ctx.storage.transactionSync(() => {
      const stats = this.#stats();
      stats.abandoned++;
      this.#sql.exec("UPDATE tickets SET state = 'abandoned', done_at = ? WHERE id = ?", this.#now(), t.id);
      this.#put('stats', stats);
    });
    if (this.#schedule(config, this.#get<number>('shards') ?? 1, this.#now(), null)) this.ctx.waitUntil(this.#deliverWakes(this.#now()));
  }

  #relist(): void {
    const pool = this.#get<string>('pool');
    if (pool === undefined) return;
    this.ctx.waitUntil(
      this.env.DB.prepare('INSERT OR IGNORE INTO scheduler_pools (pool, shards, created_at) VALUES (?, ?, ?)')
        .bind(pool, this.#get<number>('shards') ?? 1, this.#now())
        .run()
        .then(() => this.#put('listed', true))
        .catch(() => {}),
    );
  }

  /** The alarm: the next time the queue head can be granted, the earliest lease to expire, or a wake to retry. */
  async #rearm(): Promise<void> {
    const blocked = this.#get<{ next_at: number | null }>('blocked');
    const lease = this.#sql.exec<{ t: number | null }>("SELECT MIN(lease_until) AS t FROM tickets WHERE state = 'granted'").one().t;
    const wake = this.#sql.exec<{ t: number | null }>('SELECT MIN(next_at) AS t FROM wakes').one().t;
    const queued = this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM tickets WHERE state = 'queued'").one().n;
    const candidates = [queued > 0 ? (blocked?.next_at ?? null) : null, lease, wake].filter((x): x is number => typeof x === 'number');
    const at = candidates.length ? Math.min(...candidates) : null;
    if (this.#alarmAt === undefined) this.#alarmAt = await this.ctx.storage.getAlarm();
    if (at === this.#alarmAt) return;
    this.#alarmAt = at;
    this.#put('alarm_at', at);
    if (at === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(at);
  }
}
