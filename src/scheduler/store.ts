/**
 * The tables of one LLM scheduler shard (durable/scheduler.ts) in its SQLite storage, and every
 * statement the shard runs on them: tickets (the run queue and the grants), virtual times (fair
 * share), subtree usage (hierarchical quotas), tenant windows, wakes still to deliver, and a small
 * key/value table for the pool's state, its statistics and the shard's identity.
 *
 * The store decides nothing: the policy is src/kernel/scheduler.ts, the protocol (when a ticket is
 * granted, who is woken, when the alarm fires) the Durable Object's. Every method is synchronous,
 * so the object composes them into one `transactionSync`.
 */
import { INITIAL_STATE, type PoolState } from '../kernel/pool-rate.ts';
import type { LineageEntry, PoolConfig, QueuedTicket, TenantWindow, VirtualTimes } from '../kernel/scheduler.ts';
import type { AcquireRequest } from '../rpc/contracts.ts';
import type { Migration } from '../storage/migrations.ts';
import { type Stats, emptyStats } from './stats.ts';

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

export const SCHEDULER_MIGRATIONS: readonly Migration[] = [{ version: 1, description: 'baseline: tickets, virtual times, subtree usage, tenant windows, wakes, kv', up: (sql) => sql.exec(SCHEMA) }];

export type TicketState = 'queued' | 'granted' | 'released' | 'expired' | 'denied' | 'abandoned';

export type TicketRow = {
  id: string;
  pid: string;
  tenant: string;
  priority: number;
  est_tokens: number;
  lineage: string;
  state: TicketState;
  enqueued_at: number;
  granted_at: number | null;
  lease_until: number | null;
  charged: number;
  used: number | null;
};

/** Why the queue's head waits, as the last scheduling pass left it. */
export interface Blocked {
  readonly next_at: number | null;
  readonly blocked_by: string | null;
}

/** What a denied ticket's caller is told: whose budget is spent. */
export interface Denial {
  readonly pid: string;
  readonly used: number;
  readonly max_tokens: number;
}

export interface Wake {
  readonly ticket: string;
  readonly pid: string;
  readonly attempts: number;
}

export const lineageOf = (t: TicketRow): LineageEntry[] => JSON.parse(t.lineage) as LineageEntry[];

export class ShardStore {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  // --- the key/value table ------------------------------------------------------------------------

  get<T>(key: string): T | undefined {
    const row = this.#sql.exec<{ value: string }>('SELECT value FROM kv WHERE key = ?', key).toArray()[0];
    return row ? (JSON.parse(row.value) as T) : undefined;
  }

  put(key: string, value: unknown): void {
    this.#sql.exec('INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value', key, JSON.stringify(value));
  }

  poolState(): PoolState {
    return this.get<PoolState>('pool_state') ?? INITIAL_STATE;
  }

  stats(): Stats {
    return this.get<Stats>('stats') ?? emptyStats();
  }

  blocked(): Blocked | undefined {
    return this.get<Blocked>('blocked');
  }

  // --- tickets ------------------------------------------------------------------------------------

  ticket(id: string): TicketRow | undefined {
    return this.#sql.exec<TicketRow>('SELECT * FROM tickets WHERE id = ?', id).toArray()[0];
  }

  enqueue(req: AcquireRequest, now: number): void {
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
  }

  /** The run queue, in arrival order. */
  queue(): QueuedTicket[] {
    return this.#sql
      .exec<TicketRow>("SELECT * FROM tickets WHERE state = 'queued' ORDER BY enqueued_at")
      .toArray()
      .map((r) => ({ id: r.id, pid: r.pid, tenant: r.tenant, priority: r.priority, est_tokens: r.est_tokens, enqueued_at: r.enqueued_at, lineage: lineageOf(r) }));
  }

  count(state: TicketState): number {
    return this.#sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM tickets WHERE state = ?', state).one().n;
  }

  /** Queued tickets that arrived before `enqueuedAt`: a ticket's place in the queue. */
  queuedBefore(enqueuedAt: number): number {
    return this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM tickets WHERE state = 'queued' AND enqueued_at < ?", enqueuedAt).one().n;
  }

  /** Granted tickets whose lease ran out by `now`. */
  expiredLeases(now: number): TicketRow[] {
    return this.#sql.exec<TicketRow>("SELECT * FROM tickets WHERE state = 'granted' AND lease_until <= ?", now).toArray();
  }

  grant(id: string, now: number, leaseUntil: number, charged: number): void {
    this.#sql.exec("UPDATE tickets SET state = 'granted', granted_at = ?, lease_until = ?, charged = ?, grants = grants + 1 WHERE id = ? AND state = 'queued'", now, leaseUntil, charged, id);
  }

  deny(id: string, now: number, denial: Denial): void {
    this.#sql.exec("UPDATE tickets SET state = 'denied', done_at = ? WHERE id = ? AND state = 'queued'", now, id);
    this.put(`denied:${id}`, denial);
  }

  denial(id: string): Denial | undefined {
    return this.get<Denial>(`denied:${id}`);
  }

  /** The slice came back having used `used` tokens; a wake still owed for the ticket is dropped. */
  released(id: string, used: number, now: number): void {
    this.#sql.exec("UPDATE tickets SET state = 'released', used = ?, done_at = ? WHERE id = ?", used, now, id);
    this.dropWake(id);
  }

  /** A grant ended without a release: its lease ran out, or its process no longer wanted it. */
  ended(id: string, state: 'expired' | 'abandoned', now: number): void {
    this.#sql.exec('UPDATE tickets SET state = ?, done_at = ? WHERE id = ?', state, now, id);
  }

  /** Finished tickets older than `before` go (an RPC retried late still found them until then), and shares of processes with no ticket left. */
  prune(before: number): void {
    this.#sql.exec("DELETE FROM tickets WHERE state IN ('released', 'expired', 'denied', 'abandoned') AND COALESCE(done_at, enqueued_at) < ?", before);
    // A process with no ticket here rejoins at the current minimum anyway: its share row can go.
    this.#sql.exec("DELETE FROM vtimes WHERE kind = 'pid' AND key NOT IN (SELECT pid FROM tickets)");
  }

  // --- fair share and quotas ----------------------------------------------------------------------

  /** Virtual times of every tenant, and of the processes that have a ticket in `queue`. */
  vtimes(queue: readonly QueuedTicket[]): VirtualTimes {
    const tenant = new Map<string, number>();
    const pid = new Map<string, number>();
    for (const r of this.#sql.exec<{ kind: string; key: string; v: number }>('SELECT kind, key, v FROM vtimes').toArray()) {
      if (r.kind === 'tenant') tenant.set(r.key, r.v);
      else if (queue.some((q) => q.pid === r.key)) pid.set(r.key, r.v);
    }
    return { tenant, pid };
  }

  saveVtimes(v: VirtualTimes, touched: readonly QueuedTicket[]): void {
    for (const t of touched) {
      const tv = v.tenant.get(t.tenant);
      if (tv !== undefined) this.#sql.exec("INSERT INTO vtimes (kind, key, v) VALUES ('tenant', ?, ?) ON CONFLICT(kind, key) DO UPDATE SET v = excluded.v", t.tenant, tv);
      const pv = v.pid.get(t.pid);
      if (pv !== undefined) this.#sql.exec("INSERT INTO vtimes (kind, key, v) VALUES ('pid', ?, ?) ON CONFLICT(kind, key) DO UPDATE SET v = excluded.v", t.pid, pv);
    }
  }

  /** Usage charged to a ticket's whole lineage (hierarchical quotas), its shares and its tenant's window. */
  charge(config: PoolConfig, t: TicketRow, lineage: readonly LineageEntry[], shareDelta: number, subtreeDelta: number): void {
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

  /** Tokens used so far by the subtree of each of `pids` (those with any). */
  subtree(pids: readonly string[]): Map<string, number> {
    const out = new Map<string, number>();
    for (const pid of pids) {
      const row = this.#sql.exec<{ tokens: number }>('SELECT tokens FROM subtree WHERE pid = ?', pid).toArray()[0];
      if (row) out.set(pid, row.tokens);
    }
    return out;
  }

  windows(): Map<string, TenantWindow> {
    const out = new Map<string, TenantWindow>();
    for (const r of this.#sql.exec<{ tenant: string; start: number; tokens: number }>('SELECT * FROM windows').toArray()) out.set(r.tenant, { start: r.start, tokens: r.tokens });
    return out;
  }

  saveWindows(windows: ReadonlyMap<string, TenantWindow>): void {
    for (const [tenant, w] of windows) this.#sql.exec('INSERT INTO windows (tenant, start, tokens) VALUES (?, ?, ?) ON CONFLICT(tenant) DO UPDATE SET start = excluded.start, tokens = excluded.tokens', tenant, w.start, w.tokens);
  }

  // --- wakes --------------------------------------------------------------------------------------

  /** A wake is owed to the ticket's process from `at` on (once: a ticket has at most one). */
  addWake(ticket: string, pid: string, at: number): void {
    this.#sql.exec('INSERT OR IGNORE INTO wakes (ticket, pid, next_at) VALUES (?, ?, ?)', ticket, pid, at);
  }

  dueWakes(now: number, limit: number): Wake[] {
    return this.#sql.exec<{ ticket: string; pid: string; attempts: number }>('SELECT ticket, pid, attempts FROM wakes WHERE next_at <= ? LIMIT ?', now, limit).toArray();
  }

  /** Not due again before `nextAt` (a delivery under way claims it; a failed one retries then). */
  postponeWake(ticket: string, nextAt: number): void {
    this.#sql.exec('UPDATE wakes SET next_at = ? WHERE ticket = ?', nextAt, ticket);
  }

  failedWake(ticket: string): void {
    this.#sql.exec('UPDATE wakes SET attempts = attempts + 1 WHERE ticket = ?', ticket);
  }

  dropWake(ticket: string): void {
    this.#sql.exec('DELETE FROM wakes WHERE ticket = ?', ticket);
  }

  // --- the alarm ----------------------------------------------------------------------------------

  /** The earliest lease to end and the earliest wake to deliver (null: none). */
  nextDeadlines(): { lease: number | null; wake: number | null } {
    const lease = this.#sql.exec<{ t: number | null }>("SELECT MIN(lease_until) AS t FROM tickets WHERE state = 'granted'").one().t;
    const wake = this.#sql.exec<{ t: number | null }>('SELECT MIN(next_at) AS t FROM wakes').one().t;
    return { lease, wake };
  }
}
