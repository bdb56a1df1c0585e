/**
 * The tables of one LLM scheduler shard (durable/scheduler.ts) in its SQLite storage, and every
 * statement the shard runs on them: tickets (the run queue and the grants), virtual times (fair
 * share), subtree usage (hierarchical quotas), tenant windows, wakes still to deliver, and a small
 * key/value table for the pool's state, its statistics and the shard's identity.
 *
 * The object is its storage's only writer, so the store reads the tables once per instance and
 * then keeps in memory, in step with every write, what a call needs: the live tickets (queued and
 * granted), every virtual time and tenant window, the wakes, the kv values, the subtree usage of the
 * lineages it has seen, and the requests of the provider's window. A call then costs a constant
 * number of statements (the rows it changes), however long the queue is; only a finished ticket is
 * read back from SQLite (an RPC retried late). A transaction that throws reloads the memory from
 * the tables it rolled back (`transaction`).
 *
 * The store decides nothing: the policy is src/kernel/scheduler.ts, the protocol (when a ticket is
 * granted, who is woken, when the alarm fires) the Durable Object's. Every method is synchronous,
 * so the object composes them into one transaction.
 */
import { INITIAL_STATE, type PoolState, type WindowEntries, recordSent } from '../kernel/pool-rate.ts';
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

export const SCHEDULER_MIGRATIONS: readonly Migration[] = [
  { version: 1, description: 'baseline: tickets, virtual times, subtree usage, tenant windows, wakes, kv', up: (sql) => sql.exec(SCHEMA) },
  { version: 2, description: "tickets.sent_at: when a released call's request left its process (the provider's window counts from then)", up: (sql) => sql.exec('ALTER TABLE tickets ADD COLUMN sent_at INTEGER') },
];

/** The longest provider window the store reloads released requests for (window_seconds ≤ 3600). */
const MAX_WINDOW_MS = 3600_000;

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

type WakeRow = { pid: string; attempts: number; next_at: number };

export const lineageOf = (t: TicketRow): LineageEntry[] => JSON.parse(t.lineage) as LineageEntry[];

export class ShardStore {
  readonly #sql: SqlStorage;
  readonly #transactionSync: <T>(fn: () => T) => T;
  /** kv: the stored text and its parsed value. */
  #kv = new Map<string, { text: string; value: unknown }>();
  /** Queued tickets in arrival order, and granted ones (the rows and the policy's view). */
  #queued = new Map<string, { row: TicketRow; q: QueuedTicket }>();
  #queueView: QueuedTicket[] | null = null;
  #granted = new Map<string, TicketRow>();
  #vtimes = { tenant: new Map<string, number>(), pid: new Map<string, number>() };
  #windows = new Map<string, TenantWindow>();
  #wakes = new Map<string, WakeRow>();
  /** Subtree usage of the pids looked up so far (`#known`; absent from `#subtree`: no row). */
  #subtree = new Map<string, number>();
  #known = new Set<string>();
  /** Released requests by send time, within MAX_WINDOW_MS (the object trims them to its window). */
  #sent: WindowEntries = [];

  constructor(sql: SqlStorage, transactionSync: <T>(fn: () => T) => T, now: number) {
    this.#sql = sql;
    this.#transactionSync = transactionSync;
    this.#load(now);
  }

  /** Every table's live part, read once (and again after a transaction rolled back). */
  #load(now: number): void {
    this.#kv = new Map();
    for (const r of this.#sql.exec<{ key: string; value: string }>("SELECT key, value FROM kv WHERE key NOT LIKE 'denied:%'")) this.#kv.set(r.key, { text: r.value, value: JSON.parse(r.value) });
    this.#queued = new Map();
    this.#queueView = null;
    this.#granted = new Map();
    for (const r of this.#sql.exec<TicketRow>("SELECT * FROM tickets WHERE state IN ('queued', 'granted') ORDER BY enqueued_at").toArray()) {
      if (r.state === 'queued') this.#queued.set(r.id, { row: r, q: queuedOf(r) });
      else this.#granted.set(r.id, r);
    }
    this.#vtimes = { tenant: new Map(), pid: new Map() };
    for (const r of this.#sql.exec<{ kind: string; key: string; v: number }>('SELECT kind, key, v FROM vtimes')) (r.kind === 'tenant' ? this.#vtimes.tenant : this.#vtimes.pid).set(r.key, r.v);
    this.#windows = new Map();
    for (const r of this.#sql.exec<{ tenant: string; start: number; tokens: number }>('SELECT * FROM windows')) this.#windows.set(r.tenant, { start: r.start, tokens: r.tokens });
    this.#wakes = new Map();
    for (const r of this.#sql.exec<{ ticket: string } & WakeRow>('SELECT ticket, pid, attempts, next_at FROM wakes')) this.#wakes.set(r.ticket, { pid: r.pid, attempts: r.attempts, next_at: r.next_at });
    this.#subtree = new Map();
    this.#known = new Set();
    for (const { q } of this.#queued.values()) this.#lookUp(q.lineage);
    this.#sent = this.#sql.exec<{ sent_at: number; used: number }>("SELECT sent_at, used FROM tickets WHERE state = 'released' AND sent_at > ? ORDER BY sent_at", now - MAX_WINDOW_MS).toArray().map((r) => [r.sent_at, r.used] as const);
  }

  /** One transaction; if it throws, SQLite rolls back and the memory is read again from the tables. */
  transaction<T>(fn: () => T, now: number): T {
    try {
      return this.#transactionSync(fn);
    } catch (e) {
      this.#load(now);
      throw e;
    }
  }

  // --- the key/value table ------------------------------------------------------------------------

  /** The stored value (the same object until it is put again: a caller that changes it puts it back). */
  get<T>(key: string): T | undefined {
    return this.#kv.get(key)?.value as T | undefined;
  }

  put(key: string, value: unknown): void {
    const text = JSON.stringify(value);
    if (this.#kv.get(key)?.text === text) return;
    this.#sql.exec('INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value', key, text);
    this.#kv.set(key, { text, value });
  }

  poolState(): PoolState {
    return this.get<PoolState>('pool_state') ?? INITIAL_STATE;
  }

  /** The statistics, as a copy to change and put back. */
  stats(): Stats {
    const s = this.#kv.get('stats');
    return s ? (JSON.parse(s.text) as Stats) : emptyStats();
  }

  blocked = (): Blocked | undefined => this.get<Blocked>('blocked');

  // --- tickets ------------------------------------------------------------------------------------

  /** A live ticket from memory; a finished one from its row. */
  ticket(id: string): TicketRow | undefined {
    return this.#queued.get(id)?.row ?? this.#granted.get(id) ?? this.#sql.exec<TicketRow>('SELECT * FROM tickets WHERE id = ?', id).toArray()[0];
  }

  enqueue(req: AcquireRequest, now: number): QueuedTicket {
    const row: TicketRow = { id: req.ticket, pid: req.pid, tenant: req.tenant, priority: req.priority, est_tokens: Math.max(1, Math.round(req.est_tokens)), lineage: JSON.stringify(req.lineage), state: 'queued', enqueued_at: now, granted_at: null, lease_until: null, charged: 0, used: null };
    this.#sql.exec("INSERT INTO tickets (id, pid, tenant, priority, est_tokens, lineage, state, enqueued_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?)", row.id, row.pid, row.tenant, row.priority, row.est_tokens, row.lineage, now);
    const q = queuedOf(row);
    this.#queued.set(row.id, { row, q });
    this.#queueView = null;
    this.#lookUp(q.lineage);
    return q;
  }

  /** The run queue, in arrival order (the same array until it changes). */
  queue(): readonly QueuedTicket[] {
    this.#queueView ??= [...this.#queued.values()].map((e) => e.q);
    return this.#queueView;
  }

  count(state: 'queued' | 'granted'): number {
    return state === 'queued' ? this.#queued.size : this.#granted.size;
  }

  /** Tokens charged to the slices in flight. */
  inFlightTokens(): number {
    let n = 0;
    for (const t of this.#granted.values()) n += t.charged;
    return n;
  }

  /** Queued tickets that arrived before `enqueuedAt`: a ticket's place in the queue. */
  queuedBefore(enqueuedAt: number): number {
    let n = 0;
    for (const { row } of this.#queued.values()) if (row.enqueued_at < enqueuedAt) n++;
    return n;
  }

  /** Granted tickets whose lease ran out by `now`. */
  expiredLeases(now: number): TicketRow[] {
    return [...this.#granted.values()].filter((t) => (t.lease_until ?? 0) <= now);
  }

  grant(id: string, now: number, leaseUntil: number, charged: number): void {
    const e = this.#queued.get(id);
    if (!e) return;
    this.#sql.exec("UPDATE tickets SET state = 'granted', granted_at = ?, lease_until = ?, charged = ?, grants = grants + 1 WHERE id = ? AND state = 'queued'", now, leaseUntil, charged, id);
    this.#dequeue(id);
    this.#granted.set(id, { ...e.row, state: 'granted', granted_at: now, lease_until: leaseUntil, charged });
  }

  deny(id: string, now: number, denial: Denial): void {
    this.#sql.exec("UPDATE tickets SET state = 'denied', done_at = ? WHERE id = ? AND state = 'queued'", now, id);
    this.#sql.exec('INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value', `denied:${id}`, JSON.stringify(denial));
    this.#dequeue(id);
  }

  denial(id: string): Denial | undefined {
    const row = this.#sql.exec<{ value: string }>('SELECT value FROM kv WHERE key = ?', `denied:${id}`).toArray()[0];
    return row ? (JSON.parse(row.value) as Denial) : undefined;
  }

  /**
   * The slice came back having used `used` tokens; a wake still owed for the ticket is dropped.
   * `sentAt`: when its request left the process, if it reached the provider (it then counts in the
   * provider's window until `sentAt` + `windowMs`).
   */
  released(id: string, used: number, now: number, sentAt: number | null, windowMs: number | null): void {
    this.#sql.exec("UPDATE tickets SET state = 'released', used = ?, done_at = ?, sent_at = ? WHERE id = ?", used, now, sentAt, id);
    this.#granted.delete(id);
    this.#dequeue(id);
    if (sentAt !== null && windowMs !== null) this.#sent = recordSent(this.#sent, sentAt, used, windowMs, now);
    this.dropWake(id);
  }

  /** Released requests sent within the last `windowMs` (the provider still counts them), oldest first. */
  sent(windowMs: number, now: number): WindowEntries {
    let i = 0;
    while (i < this.#sent.length && (this.#sent[i] as readonly [number, number])[0] + windowMs <= now) i++;
    if (i > 0) this.#sent = this.#sent.slice(i);
    return this.#sent;
  }

  /** A grant ended without a release: its lease ran out, or its process no longer wanted it. */
  ended(id: string, state: 'expired' | 'abandoned', now: number): void {
    this.#sql.exec('UPDATE tickets SET state = ?, done_at = ? WHERE id = ?', state, now, id);
    this.#granted.delete(id);
  }

  #dequeue(id: string): void {
    if (this.#queued.delete(id)) this.#queueView = null;
  }

  /** Finished tickets older than `before` go (an RPC retried late still found them until then), and shares of processes with no ticket left. */
  prune(before: number): void {
    this.#sql.exec("DELETE FROM tickets WHERE state IN ('released', 'expired', 'denied', 'abandoned') AND COALESCE(done_at, enqueued_at) < ?", before);
    // A process with no ticket here rejoins at the current minimum anyway: its share row can go.
    this.#sql.exec("DELETE FROM vtimes WHERE kind = 'pid' AND key NOT IN (SELECT pid FROM tickets)");
    this.#vtimes.pid = new Map();
    for (const r of this.#sql.exec<{ key: string; v: number }>("SELECT key, v FROM vtimes WHERE kind = 'pid'")) this.#vtimes.pid.set(r.key, r.v);
  }

  // --- fair share and quotas ----------------------------------------------------------------------

  /** Virtual times of every tenant and process that has one (read-only: change them with saveVtimes). */
  vtimes(): VirtualTimes {
    return this.#vtimes;
  }

  /** Store the virtual times given (those a join or a scheduling pass changed). */
  saveVtimes(changes: VirtualTimes): void {
    for (const [kind, m] of [['tenant', changes.tenant], ['pid', changes.pid]] as const) {
      for (const [key, v] of m) {
        if (this.#vtimes[kind].get(key) === v) continue;
        this.#sql.exec('INSERT INTO vtimes (kind, key, v) VALUES (?, ?, ?) ON CONFLICT(kind, key) DO UPDATE SET v = excluded.v', kind, key, v);
        this.#vtimes[kind].set(key, v);
      }
    }
  }

  /** Usage charged to a ticket's whole lineage (hierarchical quotas), its shares and its tenant's window. */
  charge(config: PoolConfig, t: TicketRow, lineage: readonly LineageEntry[], shareDelta: number, subtreeDelta: number): void {
    if (subtreeDelta !== 0) {
      for (const l of lineage) {
        this.#sql.exec('INSERT INTO subtree (pid, tokens) VALUES (?, ?) ON CONFLICT(pid) DO UPDATE SET tokens = MAX(0, tokens + excluded.tokens)', l.pid, subtreeDelta);
        if (!this.#known.has(l.pid)) continue;
        const cur = this.#subtree.get(l.pid);
        this.#subtree.set(l.pid, cur === undefined ? subtreeDelta : Math.max(0, cur + subtreeDelta));
      }
    }
    if (shareDelta !== 0) {
      const w = config.tenant_weights[t.tenant] ?? 1;
      const bump = (m: Map<string, number>, key: string, d: number) => {
        const cur = m.get(key);
        if (cur !== undefined) m.set(key, Math.max(0, cur + d));
      };
      this.#sql.exec("UPDATE vtimes SET v = MAX(0, v + ?) WHERE kind = 'tenant' AND key = ?", shareDelta / w, t.tenant);
      bump(this.#vtimes.tenant, t.tenant, shareDelta / w);
      this.#sql.exec("UPDATE vtimes SET v = MAX(0, v + ?) WHERE kind = 'pid' AND key = ?", shareDelta, t.pid);
      bump(this.#vtimes.pid, t.pid, shareDelta);
      this.#sql.exec('UPDATE windows SET tokens = MAX(0, tokens + ?) WHERE tenant = ?', shareDelta, t.tenant);
      const win = this.#windows.get(t.tenant);
      if (win) this.#windows.set(t.tenant, { ...win, tokens: Math.max(0, win.tokens + shareDelta) });
    }
  }

  /** Tokens used so far by the subtree of every pid in a queued ticket's lineage (those with any). */
  subtree(): ReadonlyMap<string, number> {
    return this.#subtree;
  }

  /** Read the subtree usage of a lineage's pids not looked up yet (once per pid and instance). */
  #lookUp(lineage: readonly LineageEntry[]): void {
    for (const { pid } of lineage) {
      if (this.#known.has(pid)) continue;
      const row = this.#sql.exec<{ tokens: number }>('SELECT tokens FROM subtree WHERE pid = ?', pid).toArray()[0];
      if (row) this.#subtree.set(pid, row.tokens);
      this.#known.add(pid);
    }
  }

  windows = (): ReadonlyMap<string, TenantWindow> => this.#windows;

  /** Store the tenant windows that changed. */
  saveWindows(windows: ReadonlyMap<string, TenantWindow>): void {
    for (const [tenant, w] of windows) {
      const cur = this.#windows.get(tenant);
      if (cur && cur.start === w.start && cur.tokens === w.tokens) continue;
      this.#sql.exec('INSERT INTO windows (tenant, start, tokens) VALUES (?, ?, ?) ON CONFLICT(tenant) DO UPDATE SET start = excluded.start, tokens = excluded.tokens', tenant, w.start, w.tokens);
      this.#windows.set(tenant, w);
    }
  }

  // --- wakes --------------------------------------------------------------------------------------

  /** A wake is owed to the ticket's process from `at` on (once: a ticket has at most one). */
  addWake(ticket: string, pid: string, at: number): void {
    if (this.#wakes.has(ticket)) return;
    this.#sql.exec('INSERT OR IGNORE INTO wakes (ticket, pid, next_at) VALUES (?, ?, ?)', ticket, pid, at);
    this.#wakes.set(ticket, { pid, attempts: 0, next_at: at });
  }

  dueWakes(now: number, limit: number): Wake[] {
    const out: Wake[] = [];
    for (const [ticket, w] of this.#wakes) {
      if (out.length >= limit) break;
      if (w.next_at <= now) out.push({ ticket, pid: w.pid, attempts: w.attempts });
    }
    return out;
  }

  /** Not due again before `nextAt` (a delivery under way claims it; a failed one retries then). */
  postponeWake(ticket: string, nextAt: number): void {
    const w = this.#wakes.get(ticket);
    if (!w) return;
    this.#sql.exec('UPDATE wakes SET next_at = ? WHERE ticket = ?', nextAt, ticket);
    this.#wakes.set(ticket, { ...w, next_at: nextAt });
  }

  failedWake(ticket: string): void {
    const w = this.#wakes.get(ticket);
    if (w) this.#sql.exec('UPDATE wakes SET attempts = attempts + 1 WHERE ticket = ?', ticket), this.#wakes.set(ticket, { ...w, attempts: w.attempts + 1 });
  }

  dropWake(ticket: string): void {
    if (!this.#wakes.has(ticket)) return;
    this.#sql.exec('DELETE FROM wakes WHERE ticket = ?', ticket);
    this.#wakes.delete(ticket);
  }

  // --- the alarm ----------------------------------------------------------------------------------

  /** The earliest lease to end and the earliest wake to deliver (null: none). */
  nextDeadlines(): { lease: number | null; wake: number | null } {
    let lease: number | null = null;
    for (const t of this.#granted.values()) if (t.lease_until !== null && (lease === null || t.lease_until < lease)) lease = t.lease_until;
    let wake: number | null = null;
    for (const w of this.#wakes.values()) if (wake === null || w.next_at < wake) wake = w.next_at;
    return { lease, wake };
  }
}

function queuedOf(r: TicketRow): QueuedTicket {
  return { id: r.id, pid: r.pid, tenant: r.tenant, priority: r.priority, est_tokens: r.est_tokens, enqueued_at: r.enqueued_at, lineage: lineageOf(r) };
}
