/**
 * The process side of the LLM scheduler: before each LLM call a process asks its pool's scheduler
 * for a slice, and gives it back with the real usage afterwards.
 *
 *  - The ticket id (`<pid>:<n>`) is stored before the first ask, so a process restarted mid-wait or
 *    mid-call asks again with the same ticket and gets the same grant: never a second one.
 *  - Granted: the call goes ahead. Queued: the process parks as ready on its own alarm, with a long
 *    backstop; the scheduler wakes it (`wake`, which points the run timer at now) once the ticket is
 *    granted. That is a step boundary, never the middle of a call: a low-priority process that is
 *    behind more urgent work yields its turn there. Denied (a hierarchical token budget is spent):
 *    the process ends with EQUOTA.
 *  - The release goes through the outbox in the same commit as the usage it reports, and is
 *    delivered at once after it (and retried by the outbox if that fails).
 *  - Models whose pool is not scheduled (see `resolvePool`) call the provider directly.
 */
import { KernelError } from '../kernel/errors.ts';
import type { Pcb } from '../kernel/pcb.ts';
import type { Outcome } from '../kernel/pool-rate.ts';
import { type LineageEntry, type PoolConfig, type ResolvedPool, resolvePool, shardOf } from '../kernel/scheduler.ts';
import { countTokens } from '../llm/tokens.ts';
import type { ProcessRuntime } from './runtime.ts';
import { type HeldTicket, META } from './meta.ts';

/** What a process needs from a scheduler object (durable/scheduler.ts implements it). */
export interface SliceScheduler {
  acquire(req: {
    pool: string;
    shard: number;
    shards: number;
    ticket: string;
    pid: string;
    tenant: string;
    priority: number;
    est_tokens: number;
    lineage: readonly LineageEntry[];
    hold_ms?: number;
  }): Promise<
    | { status: 'granted'; lease_until: number; waited_ms: number; class: number }
    | { status: 'queued'; position: number; higher_waiting: number; blocked_by: string | null; eta: number | null }
    | { status: 'denied'; pid: string; used: number; max_tokens: number }
    | { status: 'expired' | 'released' | 'unscheduled' }
  >;
}


/** How long a parked process waits for its wake before it asks again by itself (a lost wake costs this, never the grant). */
export const PARK_BACKSTOP_MS = 60_000;

/**
 * How long the scheduler may hold an ask open when the ticket can be granted soon (a bucket refills):
 * a reply then, instead of a park, a wake and another alarm run. Longer waits park.
 */
export const HOLD_MS = 5_000;


export class SliceClient {
  readonly #pools: Readonly<Record<string, PoolConfig>> | Error;
  readonly #scheduler: (pool: string, shard: number) => SliceScheduler;
  readonly #overhead = new Map<string, number>();

  constructor(pools: Readonly<Record<string, PoolConfig>> | Error, scheduler: (pool: string, shard: number) => SliceScheduler) {
    this.#pools = pools;
    this.#scheduler = scheduler;
  }

  /** Tokens of the system prompt (counted once per prompt text): part of each call's estimate. */
  promptOverhead(systemPrompt: string): number {
    let n = this.#overhead.get(systemPrompt);
    if (n === undefined) {
      n = countTokens(systemPrompt);
      if (this.#overhead.size > 64) this.#overhead.clear();
      this.#overhead.set(systemPrompt, n);
    }
    return n;
  }

  /** The scheduled pool of a process's model, or null. */
  pool(pcb: Pcb): ResolvedPool | null {
    if (this.#pools instanceof Error) {
      if (pcb.model.provider === 'scripted') return null;
      throw new KernelError('EINVAL', this.#pools.message);
    }
    return resolvePool(pcb.model, this.#pools);
  }

  /**
   * Ask for a slice. 'go': call the LLM now. 'stop': the process parked (or ended); the step loop returns.
   * `estTokens` is the prompt's size by the tokenizer; the scheduler scales it by what it has learned.
   */
  async admit(rt: ProcessRuntime, pcb: Pcb, estTokens: number): Promise<'go' | 'stop'> {
    const pool = this.pool(pcb);
    if (!pool) return 'go';
    const lineage: LineageEntry[] = [{ pid: pcb.pid, max_tokens: pcb.quotas.max_tokens }, ...(rt.store.getMeta(META.lineage) ?? [])];
    const root = lineage.at(-1)?.pid ?? pcb.pid;
    for (let attempt = 0; attempt < 2; attempt++) {
      let held = rt.store.getMeta(META.schedTicket);
      if (!held || held.pool !== pool.id) {
        const n = (rt.store.getMeta(META.schedSeq) ?? 0) + 1;
        held = { id: `${pcb.pid}:${n}`, pool: pool.id, shard: shardOf(root, pool.shards), shards: pool.shards, granted: false, queued: false, est_tokens: estTokens };
        const ticket = held;
        // Durable before the ask: a restart asks again with the same ticket.
        rt.store.transaction(() => {
          rt.store.setMeta(META.schedSeq, n);
          rt.store.setMeta(META.schedTicket, ticket);
        });
      }
      const r = await this.#scheduler(held.pool, held.shard).acquire({
        pool: held.pool,
        shard: held.shard,
        shards: held.shards,
        ticket: held.id,
        pid: pcb.pid,
        tenant: pcb.tenant,
        priority: pcb.priority,
        est_tokens: held.est_tokens,
        lineage,
        hold_ms: HOLD_MS,
      });
      const now = rt.now;
      const t = held;
      switch (r.status) {
        case 'unscheduled':
          return 'go';
        case 'granted':
          if (!t.granted) {
            rt.store.transaction(() => {
              rt.store.setMeta(META.schedTicket, { ...t, granted: true, sent_at: now });
              rt.emit('scheduler', { decision: 'granted', pool: t.pool, ticket: t.id, waited_ms: r.waited_ms, class: r.class, lease_until: r.lease_until });
            });
          }
          return 'go';
        case 'queued': {
          if (rt.mustPcb().state !== 'running') return 'stop';
          rt.store.transaction(() => {
            if (!t.queued) {
              rt.store.setMeta(META.schedTicket, { ...t, queued: true });
              // Behind more urgent work at a step boundary: this process yields its turn.
              rt.emit('scheduler', { decision: r.higher_waiting > 0 ? 'preempted' : 'queued', pool: t.pool, ticket: t.id, position: r.position, higher_waiting: r.higher_waiting, blocked_by: r.blocked_by, eta: r.eta });
            }
            rt.apply({ type: 'yield' });
            // A wake that arrived while we were asking: run again at once.
            const woken = rt.store.getMeta(META.schedWoken) === t.id;
            rt.store.setTimer('run', woken ? now : now + PARK_BACKSTOP_MS);
          });
          return 'stop';
        }
        case 'denied':
          rt.store.transaction(() => {
            rt.store.setMeta(META.schedTicket, null);
            rt.emit('scheduler', { decision: 'denied', pool: t.pool, ticket: t.id, over: r.pid, used: r.used, max_tokens: r.max_tokens });
            const whose = r.pid === pcb.pid ? 'its' : `its ancestor ${r.pid}'s`;
            rt.exit({ code: 'EQUOTA', reason: `${whose} token budget of ${r.max_tokens} is spent (${r.used} used, counting descendants)` });
          });
          return 'stop';
        case 'expired':
        case 'released':
          // The lease ran out while this process was away (or the ticket is spent): take a new one.
          rt.store.transaction(() => {
            rt.store.setMeta(META.schedTicket, null);
            rt.emit('scheduler', { decision: 'lease_expired', pool: t.pool, ticket: t.id });
          });
          continue;
      }
    }
    throw new KernelError('EAGAIN', 'the scheduler expired two tickets in a row; retrying');
  }

  /**
   * Give the held slice back, inside the caller's commit (with the usage it reports). No-op when the
   * process holds none. Delivered by `flush` right after the commit, or by the outbox's retries.
   */
  releaseInCommit(rt: ProcessRuntime, outcome: Outcome): void {
    const t = rt.store.getMeta(META.schedTicket);
    if (!t) return;
    rt.store.setMeta(META.schedTicket, null);
    rt.store.setMeta(META.schedLast, t.id);
    rt.store.setMeta(META.schedWoken, null);
    rt.send({ kind: 'sched_release', pool: t.pool, shard: t.shard, shards: t.shards, ticket: t.id, outcome, sent_at: t.sent_at ?? null });
    this.#released = true;
  }

  /** A release was committed since the last flush (a commit that rolled back leaves it set: one needless look). */
  #released = false;

  /** Deliver pending releases now rather than at the end of the slice: the slot is someone else's turn. */
  async flush(rt: ProcessRuntime): Promise<void> {
    if (!this.#released) return;
    this.#released = false;
    await rt.deliverNow('sched_release');
  }

  /**
   * The scheduler decided this process's ticket: run now. Returns whether the process still wants
   * it: a process that exited or moved on to another ticket gives the slot back at once.
   */
  async wake(rt: ProcessRuntime, ticket: string): Promise<{ wanted: boolean }> {
    const pcb = rt.pcb();
    const held = rt.store.getMeta(META.schedTicket);
    if (!pcb || held?.id !== ticket) return { wanted: rt.store.getMeta(META.schedLast) === ticket };
    rt.store.transaction(() => {
      rt.store.setMeta(META.schedWoken, ticket);
      if (pcb.state === 'ready') rt.store.setTimer('run', rt.now);
    });
    await rt.rearm();
    return { wanted: pcb.state !== 'zombie' && pcb.state !== 'terminated' };
  }
}
