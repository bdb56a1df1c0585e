/**
 * A process's durable state, in its Durable Object's SQLite storage (every table is described in
 * ./schema.ts, every meta key in ./meta.ts).
 *
 * The store owns the commit (`transaction`, `attempt`; the rows a commit defers to its end are in
 * ./commit.ts) and the PCB, meta, timers, events and the step journal (write-ahead record of every LLM
 * answer and every syscall it asked for). By concept, beside it: `pages` (context
 * pages and the in-memory page table, ./pages.ts), `children` (./children.ts) and `deliveries` (the
 * outbox and the audit log, what the process owes others, ./deliveries.ts) and `approvals`
 * (./approval-store.ts).
 * Every method is synchronous: DO SQLite commits writes made in one turn together, and
 * `transactionSync` makes multi-row changes atomic.
 */
import { type PCB_COUNTERS, type Pcb, onlyCountersDiffer } from '../kernel/pcb.ts';
import type { Timer, TimerKind } from '../kernel/timers.ts';
import type { EventRow } from '../rpc/contracts.ts';
import { open } from '../storage/migrations.ts';
import { type ApprovalRow, ApprovalStore } from './approval-store.ts';
import { ChildStore } from './children.ts';
import { type JournalRow, type JournalStatus, Pending } from './commit.ts';
import { Deliveries } from './deliveries.ts';
import type { AuditHead, MetaKey } from './meta.ts';
import { PageStore } from './pages.ts';
import { PROCESS_FRESH, PROCESS_MIGRATIONS } from './schema.ts';

export type { ApprovalRow, AuditHead, EventRow, JournalRow, JournalStatus };
export { EXCERPT_CHARS, type PageMetaRow, type PageRow } from './pages.ts';
export type { ChildRow } from './children.ts';
export type { OutboxRow } from './deliveries.ts';

/** Meta entries are cached; this marks a key known to be absent. */
const ABSENT = Symbol('absent');

export class ProcessStore {
  readonly #sql: SqlStorage;
  readonly #storage: DurableObjectStorage;
  /**
   * Write-through caches of the PCB and meta. This object is the only writer of its storage and runs
   * one turn at a time, so the cache is exact; a transaction that throws restores the snapshot it
   * started from, just as SQLite rolls back.
   */
  #pcb: Pcb | null | undefined;
  #meta = new Map<string, unknown>();
  /** The open commit's queued rows and undo log (./commit.ts). */
  readonly #w: Pending;
  /** The context pages and the page table kept in memory (./pages.ts). */
  readonly pages: PageStore;
  /** Children (./children.ts). */
  readonly children: ChildStore;
  /** The outbox and the audit log: what the process owes others (./deliveries.ts). */
  readonly deliveries: Deliveries;
  /** Human approvals this process asked for (./approval-store.ts). */
  readonly approvals: ApprovalStore;

  constructor(storage: DurableObjectStorage) {
    this.#storage = storage;
    this.#sql = storage.sql;
    this.#w = new Pending(this.#sql, (n) => this.deliveries.auditRowWritten(n));
    this.pages = new PageStore(this.#sql, this.#w);
    this.children = new ChildStore(this.#sql, this.#w);
    this.approvals = new ApprovalStore(this.#sql);
    this.deliveries = new Deliveries(this.#sql, this.#w, { get: (k) => this.getMeta(k), set: (k, v) => this.setMeta(k, v) });
    // The tables, at the version this code knows (./schema.ts); nothing is probed.
    if (open(storage, PROCESS_MIGRATIONS, PROCESS_FRESH).created) this.#created();
  }

  /** A new object: its tables were created just now, empty, so every cache starts complete instead of being read. */
  #created(): void {
    [this.#pcb, this.#durable, this.#metaComplete, this.#eventNext, this.#openStep] = [null, null, true, 1, null];
    for (const part of [this.pages, this.children, this.deliveries, this.approvals]) part.empty();
  }
  /** Whether #meta holds every entry there is (a key it lacks is absent, not unread). */
  #metaComplete = false;

  /**
   * Run `fn` as one commit. Nested inside another, it is part of the outer commit: a throw undoes
   * its in-memory changes and propagates, and the outer commit rolls back the rows (use `attempt`
   * for a part that may fail on its own). The PCB is written once, at the end, however often it
   * changed, and the queued rows with it (./commit.ts).
   */
  transaction<T>(fn: () => T): T {
    const w = this.#w;
    if (w.open) return this.#nested(fn);
    const undo: (() => void)[] = (w.undo = []);
    const pcb = this.#pcb;
    const durable = this.#durable;
    const meta = new Map(this.#meta);
    try {
      return this.#storage.transactionSync(() => {
        const result = fn();
        this.#writePending();
        return result;
      });
    } catch (e) {
      this.#pcb = pcb;
      this.#durable = durable;
      this.#pcbDirty = false;
      this.#meta = meta;
      w.clear();
      while (undo.length > 0) undo.pop()!();
      throw e;
    } finally {
      w.undo = null;
    }
  }

  /**
   * A part of the open commit that may fail alone (a syscall's own commit): its rows roll back to a
   * savepoint and its in-memory changes are undone, and the rest of the commit goes on.
   */
  attempt(fn: () => void): void {
    if (!this.#w.open) {
      this.transaction(fn);
      return;
    }
    // What the commit queued so far is written first, so the savepoint cannot take it with it.
    this.#writePending();
    this.#nested(() => this.#storage.transactionSync(fn));
  }

  #nested<T>(run: () => T): T {
    const w = this.#w;
    const undo = w.undo!;
    const at = undo.length;
    const pcb = this.#pcb;
    const pcbDirty = this.#pcbDirty;
    const durable = this.#durable;
    const meta = new Map(this.#meta);
    const mark = w.mark();
    try {
      return run();
    } catch (e) {
      this.#pcb = pcb;
      this.#durable = durable;
      this.#pcbDirty = pcbDirty;
      this.#meta = meta;
      w.dropTo(mark);
      while (undo.length > at) undo.pop()!();
      throw e;
    }
  }

  /** The PCB changed in the open commit (written once, at its end). */
  #pcbDirty = false;

  /**
   * The PCB as its row holds it (undefined: not read yet). When a commit changes only the PCB's
   * counters (`PCB_COUNTERS`) and writes a step, which is every step's commit in the middle of a slice,
   * the counters go into that step's row (steps.pcb) and the pcb row is not written: loadPcb takes
   * them from the newest step's row when that step is past the pcb row's step count. Every other
   * change writes the whole row. A reader of the table itself (a checkpoint) calls flushPcb first.
   */
  #durable: Pcb | null | undefined;

  #writePending(): void {
    const pcb = this.#pcb;
    if (this.#pcbDirty && pcb) {
      const row = this.#w.steps.get(pcb.usage.steps);
      if (row && this.#durable && onlyCountersDiffer(this.#durable, pcb)) row.pcb = JSON.stringify({ usage: pcb.usage, version: pcb.version, updated_at: pcb.updated_at });
      else this.#writePcb(pcb);
    }
    this.#pcbDirty = false;
    this.#w.write();
  }

  #writePcb(pcb: Pcb): void {
    this.#sql.exec('INSERT INTO pcb (id, data) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET data = excluded.data', JSON.stringify(pcb));
    this.#durable = pcb;
  }

  /** Write the PCB's row if its counters are only in a step's row (before the table itself is read: a checkpoint). */
  flushPcb(): void {
    const pcb = this.loadPcb();
    if (pcb && this.#durable !== pcb) this.#writePcb(pcb);
  }

  // --- PCB ---------------------------------------------------------------------------------------
  /** The PCB. Treat it as immutable: change it by saving a new object. */
  loadPcb(): Pcb | null {
    if (this.#pcb === undefined) {
      const row = this.#sql.exec<{ data: string }>('SELECT data FROM pcb WHERE id = 1').toArray()[0];
      const stored = (this.#pcb = this.#durable = row ? (JSON.parse(row.data) as Pcb) : null);
      if (stored) {
        // The newest step's counters, if its commit kept them there: it is then past the row's count
        // (steps a fork or restore copied carry another timeline's counters, never past it).
        const last = this.#sql.exec<{ pcb: string | null }>('SELECT pcb FROM steps ORDER BY step DESC LIMIT 1').toArray()[0];
        const counters = last?.pcb ? (JSON.parse(last.pcb) as Pick<Pcb, (typeof PCB_COUNTERS)[number]>) : null;
        if (counters && counters.usage.steps > stored.usage.steps) this.#pcb = { ...stored, ...counters };
      }
    }
    return this.#pcb;
  }

  savePcb(pcb: Pcb): void {
    this.#pcb = pcb;
    this.#pcbDirty = true;
    if (!this.#w.open) this.#writePending();
  }

  // --- meta --------------------------------------------------------------------------------------
  /** A meta value (./meta.ts describes every key and the type of its value). */
  getMeta<T>(key: MetaKey<T>): T | undefined {
    const name = key.name;
    if (!this.#meta.has(name)) {
      if (this.#metaComplete) return undefined;
      const row = this.#sql.exec<{ value: string }>('SELECT value FROM meta WHERE key = ?', name).toArray()[0];
      this.#meta.set(name, row ? (JSON.parse(row.value) as unknown) : ABSENT);
    }
    const value = this.#meta.get(name);
    return value === ABSENT ? undefined : (value as T);
  }

  setMeta<T>(key: MetaKey<T>, value: T): void {
    const name = key.name;
    if (this.#meta.has(name) && this.#meta.get(name) === value && (value === null || typeof value !== 'object')) return;
    this.#sql.exec('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value', name, JSON.stringify(value));
    this.#meta.set(name, value);
  }

  // --- timers ------------------------------------------------------------------------------------
  setTimer(kind: TimerKind, fireAt: number): void {
    this.#sql.exec('INSERT INTO timers (kind, fire_at) VALUES (?, ?) ON CONFLICT(kind) DO UPDATE SET fire_at = excluded.fire_at', kind, fireAt);
  }

  clearTimer(kind: TimerKind): void {
    this.#sql.exec('DELETE FROM timers WHERE kind = ?', kind);
  }

  timers(): Timer[] {
    return this.#sql.exec<{ kind: TimerKind; fire_at: number }>('SELECT kind, fire_at FROM timers').toArray();
  }

  // --- events ------------------------------------------------------------------------------------
  /** The next event's number: read once per instance (events are never deleted), then counted here. */
  #eventNext: number | undefined;

  appendEvent(at: number, type: string, data: unknown): EventRow {
    this.#eventNext ??= (this.#sql.exec<{ n: number | null }>('SELECT MAX(last) AS n FROM events').one().n ?? 0) + 1;
    const seq = this.#eventNext;
    this.#eventNext = seq + 1;
    this.#w.onUndo(() => (this.#eventNext = seq));
    const row: EventRow = { seq, at, type, data };
    this.#w.events.push(row);
    if (!this.#w.open) this.#writePending();
    return row;
  }

  /** Events numbered above `after`, oldest first, at most `limit`. */
  events(after: number, limit: number): EventRow[] {
    const out: EventRow[] = [];
    if (limit <= 0) return out;
    // From the row holding event after + 1 (the last row that starts at or before it), through the
    // primary key; each row holds at least one event, so `limit` rows are enough.
    const rows = this.#sql
      .exec<{ seq: number; data: string }>('SELECT seq, data FROM events WHERE seq >= COALESCE((SELECT MAX(seq) FROM events WHERE seq <= ?), 0) ORDER BY seq LIMIT ?', after + 1, limit)
      .toArray();
    for (const r of rows) {
      const packed = JSON.parse(r.data) as { at: number; type: string; data: unknown }[];
      packed.forEach((e, i) => {
        const seq = r.seq + i;
        if (seq > after && out.length < limit) out.push({ seq, at: e.at, type: e.type, data: e.data });
      });
      if (out.length >= limit) break;
    }
    return out;
  }

  // --- steps and the journal ---------------------------------------------------------------------
  /** The open step, read once per instance and then kept with insertStep and finishStep (undefined: not read yet). */
  #openStep: number | null | undefined;

  /** The step whose syscalls are not all done, if any (there is at most one). */
  openStep(): number | null {
    if (this.#openStep === undefined) {
      this.#w.settle();
      const row = this.#sql.exec<{ step: number }>("SELECT step FROM steps WHERE status = 'dispatching' ORDER BY step LIMIT 1").toArray()[0];
      this.#openStep = row ? row.step : null;
    }
    return this.#openStep;
  }

  /** A new step (an LLM answer), with the record of the call that answered it (`trace`: src/checkpoints/trace.ts; null when none was kept). */
  insertStep(step: number, text: string, at: number, trace: string | null = null): void {
    const open = this.openStep();
    this.#w.steps.set(step, { step, status: 'dispatching', text, created_at: at, trace, pcb: null });
    this.#w.onUndo(() => this.#w.steps.delete(step));
    if (!this.#w.open) this.#writePending();
    if (open === null || step < open) this.#setOpenStep(step, open);
  }

  finishStep(step: number): void {
    const open = this.openStep();
    const queued = this.#w.steps.get(step);
    if (queued) this.#w.change(queued, 'status', 'done');
    else this.#sql.exec("UPDATE steps SET status = 'done' WHERE step = ?", step);
    // There is at most one open step (the loop finishes one before it journals the next).
    if (open === step) this.#setOpenStep(null, open);
  }

  #setOpenStep(next: number | null | undefined, prev: number | null): void {
    this.#openStep = next;
    this.#w.onUndo(() => (this.#openStep = prev));
  }

  /** Register an undo for a cache kept outside the store (the filesystem's byte total): it runs if the open transaction rolls back. */
  onRollback(undo: () => void): void {
    this.#w.onUndo(undo);
  }

  insertJournal(step: number, idx: number, callId: string, name: string, args: string, status: JournalStatus, result: string | null): void {
    const key = `${step}.${idx}`;
    this.#w.journal.set(key, { step, idx, call_id: callId, name, args, status, result, attempts: 0 });
    this.#w.onUndo(() => this.#w.journal.delete(key));
    if (!this.#w.open) this.#writePending();
  }

  /** A journal entry's status (and result) changes: in the queued row if it is new in this commit. */
  #setJournal(step: number, idx: number, status: JournalStatus, result?: string): boolean {
    const queued = this.#w.journal.get(`${step}.${idx}`);
    if (!queued) return false;
    this.#w.change(queued, 'status', status);
    if (result !== undefined) this.#w.change(queued, 'result', result);
    return true;
  }

  journal(step: number): JournalRow[] {
    this.#w.settle();
    return this.#sql.exec<JournalRow>('SELECT step, idx, call_id, name, args, status, result, attempts FROM journal WHERE step = ? ORDER BY idx', step).toArray();
  }

  /** The journal entry a blocked process is waiting in. */
  blockedEntry(): JournalRow | null {
    this.#w.settle();
    return this.#sql.exec<JournalRow>("SELECT step, idx, call_id, name, args, status, result, attempts FROM journal WHERE status = 'blocked' LIMIT 1").toArray()[0] ?? null;
  }

  markStarted(step: number, idx: number): void {
    this.#w.settle();
    this.#sql.exec("UPDATE journal SET status = 'started', attempts = attempts + 1 WHERE step = ? AND idx = ?", step, idx);
  }

  markBlocked(step: number, idx: number): void {
    if (this.#setJournal(step, idx, 'blocked')) return;
    this.#sql.exec("UPDATE journal SET status = 'blocked' WHERE step = ? AND idx = ?", step, idx);
  }

  /** An approved call goes back to pending so the dispatcher runs it. */
  markPending(step: number, idx: number): void {
    if (this.#setJournal(step, idx, 'pending')) return;
    this.#sql.exec("UPDATE journal SET status = 'pending' WHERE step = ? AND idx = ?", step, idx);
  }


  markDone(step: number, idx: number, result: string): void {
    if (this.#setJournal(step, idx, 'done', result)) return;
    this.#sql.exec("UPDATE journal SET status = 'done', result = ? WHERE step = ? AND idx = ?", result, step, idx);
  }

  /** Forget the caches: the tables were rewritten underneath them (a checkpoint restored or forked in). */
  reload(): void {
    // The rewrite replaced the PCB; the events and audit records this commit queued (tables it does
    // not rewrite) are written now, and everything is then read afresh.
    this.#pcbDirty = false;
    this.#writePending();
    this.#forget();
  }

  /** Every cache, back to "not read yet". */
  #forget(): void {
    this.#eventNext = undefined;
    this.#pcb = undefined;
    this.#durable = undefined;
    this.#meta = new Map();
    this.#metaComplete = false;
    this.#openStep = undefined;
    this.pages.reset();
    this.children.reset();
    this.deliveries.reset();
    this.approvals.reset();
  }

  // --- raw access for the filesystem module ---------------------------------------------------------
  get sql(): SqlStorage {
    return this.#sql;
  }

  /**
   * Release the process's storage: drop every table and the alarm. The empty schema is recreated so
   * this live object keeps answering (ENOENT) instead of failing on missing tables.
   */
  async destroy(): Promise<void> {
    await this.#storage.deleteAlarm();
    await this.#storage.deleteAll();
    this.#forget();
    this.#pcbDirty = false;
    this.#w.clear();
    if (open(this.#storage, PROCESS_MIGRATIONS, PROCESS_FRESH).created) this.#created();
  }
}

