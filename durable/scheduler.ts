/**
 * LlmScheduler: one Durable Object per shard of an LLM pool (provider + endpoint + model). It holds
 * the pool's run queue and accounting in its SQLite storage (src/scheduler/store.ts; its statistics,
 * src/scheduler/stats.ts) and decides, with the pure policy in src/kernel/scheduler.ts and
 * src/kernel/pool-rate.ts, which waiting LLM call gets the next slice.
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
import { release } from '../src/kernel/pool-rate.ts';
import { type Decision, type PoolConfig, type QueuedTicket, agedClass, joinVirtualTimes, pick, poolsFromEnv } from '../src/kernel/scheduler.ts';
import type { AcquireRequest, AcquireResult, ReleaseRequest, SchedulerApi, Served, ShardStats } from '../src/rpc/contracts.ts';
import { processStub } from '../src/rpc/stubs.ts';
import { countGrant, countRecent, shardView } from '../src/scheduler/stats.ts';
import { SCHEDULER_MIGRATIONS, ShardStore, type TicketRow, lineageOf } from '../src/scheduler/store.ts';
import { migrate } from '../src/storage/migrations.ts';

/** Finished tickets are kept this long (an RPC retried late still finds them), then pruned. */
const KEEP_DONE_MS = 3600_000;
/** Pruning scans the finished tickets: at most once a minute. */
const PRUNE_EVERY_MS = 60_000;
const MAX_WAKE_ATTEMPTS = 10;
/** A held acquire that was answered directly still gets a wake this much later, unless its slice comes back first (a reply can be lost). */
const HELD_WAKE_DELAY_MS = 10_000;

export class LlmScheduler extends DurableObject<Env> implements Served<SchedulerApi> {
  readonly #store: ShardStore;
  #clock = 0;
  #alarmAt: number | null | undefined;
  /** Acquires being held open until their ticket is decided (in memory: a restart drops them, and their callers ask again). */
  readonly #held = new Map<string, () => void>();

  /** When finished tickets were last pruned (in memory: a new instance prunes at its first alarm). */
  #prunedAt = -Infinity;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    migrate(ctx.storage, SCHEDULER_MIGRATIONS);
    this.#store = new ShardStore(ctx.storage.sql, (fn) => ctx.storage.transactionSync(fn), this.clock());
    this.#clock = this.#store.get<number>('clock') ?? 0;
  }

  /** The wall clock this shard reads, injected (a subclass overrides it, as AgentProcess's); every decision goes through #now. */
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

  /** The first call names the shard (pool, shard, shards); it is listed in D1 until that lands. */
  #identify(pool: string, shard: number, shards: number): void {
    if (this.#store.get<string>('pool') === undefined) {
      this.#store.put('pool', pool);
      this.#store.put('shard', shard);
      this.#store.put('shards', shards);
    } else if (this.#store.get<boolean>('listed')) return;
    this.#list();
  }

  /** Listed for GET /v1/scheduler; best effort, retried on the next call until it lands. */
  #list(): void {
    const pool = this.#store.get<string>('pool');
    if (pool === undefined) return;
    this.ctx.waitUntil(
      this.env.DB.prepare('INSERT OR IGNORE INTO scheduler_pools (pool, shards, created_at) VALUES (?, ?, ?)')
        .bind(pool, this.#store.get<number>('shards') ?? 1, this.#now())
        .run()
        .then(() => this.#store.put('listed', true))
        .catch(() => {}),
    );
  }

  // --- RPC ------------------------------------------------------------------------------------------

  async acquire(req: AcquireRequest): Promise<AcquireResult> {
    const config = this.#config(req.pool);
    if (!config) return { status: 'unscheduled' };
    this.#identify(req.pool, req.shard, req.shards);
    const now = this.#now();
    const store = this.#store;
    const existing = store.ticket(req.ticket);
    if (!existing) {
      store.transaction(() => {
        const joined = store.enqueue(req, now);
        // An idle tenant or process joins at the current minimum virtual time.
        store.saveVtimes(joinVirtualTimes(store.vtimes(), store.queue(), joined));
      }, now);
    }
    // The caller is waiting to make its call: others' wakes go out after the reply.
    if ((!existing || existing.state === 'queued') && this.#schedule(config, req.shards, now, req.ticket)) this.ctx.waitUntil(this.#deliverWakes(now));
    let t = store.ticket(req.ticket) as TicketRow;
    const blocked = store.blocked();
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
      t = store.ticket(req.ticket) as TicketRow;
    }
    return this.#answer(t, config, this.#now());
  }

  #answer(t: TicketRow, config: PoolConfig, now: number): AcquireResult {
    switch (t.state) {
      case 'granted':
        return { status: 'granted', lease_until: t.lease_until ?? now, waited_ms: (t.granted_at ?? now) - t.enqueued_at, class: agedClass(t.priority, 0, 1) };
      case 'queued': {
        const agingMs = config.aging_seconds * 1000;
        const mine = agedClass(t.priority, now - t.enqueued_at, agingMs);
        const higher = this.#store.queue().filter((q) => agedClass(q.priority, now - q.enqueued_at, agingMs) < mine).length;
        const s = this.#store.blocked() ?? { next_at: null, blocked_by: null };
        return { status: 'queued', position: this.#store.queuedBefore(t.enqueued_at), higher_waiting: higher, blocked_by: s.blocked_by, eta: s.next_at };
      }
      case 'denied': {
        const over = this.#store.denial(t.id);
        return { status: 'denied', pid: over?.pid ?? lineageOf(t)[0]?.pid ?? t.pid, used: over?.used ?? 0, max_tokens: over?.max_tokens ?? 0 };
      }
      case 'released':
        return { status: 'released' };
      default:
        return { status: 'expired' };
    }
  }

  async release(req: ReleaseRequest): Promise<{ ok: true }> {
    const config = this.#config(req.pool);
    const store = this.#store;
    const t = store.ticket(req.ticket);
    if (!config || !t || t.state === 'released' || t.state === 'queued' || t.state === 'denied') return { ok: true };
    const now = this.#now();
    const used = req.outcome.kind === 'ok' ? Math.max(0, Math.round(req.outcome.tokens)) : 0;
    // The provider counts a request it answered in its window from when it was sent (no later than now, no earlier than its grant).
    const reached = t.state === 'granted' && req.outcome.kind !== 'rate_limited' && req.outcome.kind !== 'expired';
    const sentAt = reached ? Math.min(now, Math.max(t.granted_at ?? now, req.sent_at ?? now)) : null;
    store.transaction(() => {
      const lineage = lineageOf(t);
      const stats = store.stats();
      if (t.state === 'granted') {
        // Correct what was charged at grant to what was used.
        const charged = req.outcome.kind === 'ok' ? t.charged : 0;
        store.put('pool_state', release(config, store.poolState(), charged, t.est_tokens, req.outcome, now, t.granted_at ?? now));
        stats.released++;
        if (req.outcome.kind === 'rate_limited') stats.rate_limited++;
        store.charge(config, t, lineage, used - (req.outcome.kind === 'ok' ? t.charged : 0), used);
        countRecent(stats, now, used, 1);
      } else {
        // Expired (its estimate was charged to the lineage then) or abandoned (nothing was): now the real number is known.
        store.charge(config, t, lineage, used - t.charged, t.state === 'expired' ? used - t.charged : used);
        if (req.outcome.kind === 'rate_limited') stats.rate_limited++;
      }
      store.released(t.id, used, now, sentAt, config.window_seconds === null ? null : config.window_seconds * 1000);
      store.put('stats', stats);
    }, now);
    // The slot is someone's turn: tell them before answering, so the releasing step hands over directly.
    if (this.#schedule(config, req.shards, now, null)) await this.#deliverWakes(now);
    return { ok: true };
  }

  async stats(pool: string, shard: number): Promise<ShardStats> {
    const config = this.#config(pool);
    const now = this.#now();
    const store = this.#store;
    return shardView({ pool, shard, config }, store.stats(), store.poolState(), { queued: store.count('queued'), granted: store.count('granted') }, now);
  }

  override async alarm(): Promise<void> {
    const at = this.#store.get<number | null>('alarm_at') ?? null;
    this.#alarmAt = null;
    const pool = this.#store.get<string>('pool');
    if (pool === undefined) return;
    const config = this.#config(pool);
    if (!config) return;
    // The alarm is the timer interrupt: it counts as the time it was set for.
    const now = this.#now(at ?? 0);
    this.#schedule(config, this.#store.get<number>('shards') ?? 1, now, null);
    if (now - this.#prunedAt >= PRUNE_EVERY_MS) {
      this.#prunedAt = now;
      this.#store.prune(now - KEEP_DONE_MS);
    }
    await this.#deliverWakes(now);
  }

  // --- scheduling -------------------------------------------------------------------------------------

  /**
   * Expire dead leases, then grant (or deny) what the policy allows, in one commit with the wake rows
   * for every decided ticket except `self` (the caller learns its answer from the reply), and point
   * the alarm at the next thing that can change. Returns whether there are wakes to deliver.
   */
  #schedule(config: PoolConfig, shards: number, now: number, self: string | null): boolean {
    const decided: Decision[] = [];
    const store = this.#store;
    store.transaction(() => {
      const stats = store.stats();
      let state = store.poolState();
      for (const t of store.expiredLeases(now)) {
        // Its process died holding the slice (or is far past its timeout): the slot comes back; the estimate stays charged.
        state = release(config, state, t.charged, t.est_tokens, { kind: 'expired' }, now);
        store.charge(config, t, lineageOf(t), 0, t.charged);
        store.ended(t.id, 'expired', now);
        stats.expired++;
      }
      const windowMs = config.window_seconds === null ? null : config.window_seconds * 1000;
      const window = windowMs === null ? undefined : { entries: store.sent(windowMs, now), in_flight: store.count('granted'), in_flight_tokens: store.inFlightTokens() };
      const r = pick({ config, shards, state, queue: store.queue(), in_flight: store.count('granted'), vtimes: store.vtimes(), windows: store.windows(), subtree: store.subtree(), window, now });
      for (const d of r.decisions) {
        if (d.kind === 'grant') {
          store.grant(d.ticket.id, now, now + config.lease_seconds * 1000, d.charged);
          countGrant(stats, d.class, d.waited_ms);
        } else {
          store.deny(d.ticket.id, now, { pid: d.pid, used: d.used, max_tokens: d.max_tokens });
          stats.denied++;
        }
        // A held acquire hears it in its reply; the wake is then only a late safety net.
        const wakeAt = this.#held.has(d.ticket.id) ? now + HELD_WAKE_DELAY_MS : now;
        if (d.ticket.id !== self) store.addWake(d.ticket.id, d.ticket.pid, wakeAt);
        decided.push(d);
      }
      store.saveVtimes(r.vtimes);
      store.saveWindows(r.windows);
      store.put('pool_state', r.state);
      store.put('blocked', { next_at: r.next_at, blocked_by: r.blocked_by });
      store.put('stats', stats);
      store.put('clock', now);
    }, now);
    const wakes = decided.some((d) => d.ticket.id !== self && !this.#held.has(d.ticket.id));
    for (const d of decided) this.#held.get(d.ticket.id)?.();
    this.ctx.waitUntil(this.#rearm());
    return wakes;
  }

  /** Tell parked processes their ticket was decided. A process that no longer wants it gives the slot back. */
  async #deliverWakes(now: number): Promise<void> {
    const store = this.#store;
    const due = store.dueWakes(now, 200);
    if (due.length === 0) return;
    // Claim them first, so a concurrent pass does not send the same wake twice.
    for (const w of due) store.postponeWake(w.ticket, now + 5000 * 2 ** Math.min(w.attempts, 6));
    await this.#rearm();
    await Promise.all(
      due.map(async (w) => {
        try {
          const { wanted } = await processStub(this.env, w.pid).schedulerWake(w.ticket);
          store.dropWake(w.ticket);
          if (!wanted) this.#abandon(w.ticket);
        } catch {
          if (w.attempts + 1 >= MAX_WAKE_ATTEMPTS) store.dropWake(w.ticket);
          else store.failedWake(w.ticket);
        }
      }),
    );
    await this.#rearm();
  }

  /** The process moved on (it exited, or took a new ticket): a grant it will never use comes back now. */
  #abandon(ticket: string): void {
    const store = this.#store;
    const pool = store.get<string>('pool');
    const config = pool === undefined ? null : this.#config(pool);
    const t = store.ticket(ticket);
    if (!config || !t || t.state !== 'granted') return;
    const now = this.#now();
    store.transaction(() => {
      const stats = store.stats();
      stats.abandoned++;
      store.ended(t.id, 'abandoned', now);
      store.put('stats', stats);
    }, now);
    if (this.#schedule(config, store.get<number>('shards') ?? 1, this.#now(), null)) this.ctx.waitUntil(this.#deliverWakes(this.#now()));
  }

  /** The alarm: the next time the queue head can be granted, the earliest lease to expire, or a wake to retry. */
  async #rearm(): Promise<void> {
    const store = this.#store;
    const blocked = store.blocked();
    const { lease, wake } = store.nextDeadlines();
    const candidates = [store.count('queued') > 0 ? (blocked?.next_at ?? null) : null, lease, wake].filter((x): x is number => typeof x === 'number');
    const at = candidates.length ? Math.min(...candidates) : null;
    if (this.#alarmAt === undefined) this.#alarmAt = await this.ctx.storage.getAlarm();
    if (at === this.#alarmAt) return;
    this.#alarmAt = at;
    store.put('alarm_at', at);
    if (at === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(at);
  }
}
