/**
 * A process's durable state, in its Durable Object's SQLite storage.
 *
 * Tables (described, with every other table of the process, in ./schema.ts): the PCB (one row),
 * the timer table (one row per purpose; the alarm always points at the earliest), the event log,
 * context pages, the step journal (write-ahead record of every LLM answer and every syscall it
 * asked for), children, the outbox (writes for D1 and calls to other objects, committed with the
 * state change that caused them and delivered afterwards), and key/value meta.
 * Every method is synchronous: DO SQLite commits writes made in one turn together, and
 * `transactionSync` makes multi-row changes atomic.
 */
import { GENESIS } from '../audit/audit.ts';
import type { PageInfo } from '../kernel/pager.ts';
import type { Pcb } from '../kernel/pcb.ts';
import type { Timer, TimerKind } from '../kernel/timers.ts';
import type { EventRow } from '../rpc/contracts.ts';
import { migrate } from '../storage/migrations.ts';
import { type AuditHead, META, type MetaKey } from './meta.ts';
import { createProcessSchema, PROCESS_MIGRATIONS, tableDdl } from './schema.ts';

export type { AuditHead, EventRow };


/** Journal entry status: pending (accepted, not started), started (effect may be under way), blocked (waiting for a wake-up), done. */
export type JournalStatus = 'pending' | 'started' | 'blocked' | 'done';

export type JournalRow = {
  readonly step: number;
  readonly idx: number;
  readonly call_id: string;
  readonly name: string;
  /** JSON of the validated args, or of {error} when the call was invalid before dispatch. */
  readonly args: string;
  readonly status: JournalStatus;
  readonly result: string | null;
  readonly attempts: number;
};

export type PageRow = {
  readonly seq: number;
  readonly step: number;
  readonly kind: string;
  readonly body: unknown;
};

/** What the pager knows of a page (src/kernel/pager.ts), plus its kind. */
export type PageMetaRow = PageInfo & { readonly kind: string; readonly last_access: number };

/** The searchable excerpt kept per page (bounded, so the in-memory index stays small). */
export const EXCERPT_CHARS = 2000;

export type ChildRow = {
  readonly pid: string;
  readonly name: string;
  readonly status: 'live' | 'exited' | 'reaped';
  readonly exit: string | null;
  readonly spawn_key: string;
};

export type OutboxRow = {
  readonly id: number;
  readonly kind: string;
  readonly payload: string;
  readonly attempts: number;
};

/** A human approval a process asked for (the kernel's side; D1's approvals table is the operators'). */
export type ApprovalRow = {
  readonly id: string;
  readonly step: number;
  readonly idx: number;
  /** The capability the call needs, as the operator was shown it. */
  readonly needed: string;
  readonly status: 'pending' | 'approved' | 'denied' | 'expired';
};

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
  /** Page bodies never change once written, so they are parsed once and kept. */
  #bodies = new Map<number, unknown>();

  constructor(storage: DurableObjectStorage) {
    this.#storage = storage;
    this.#sql = storage.sql;
    // The tables, at the version this code knows (./schema.ts); nothing is probed.
    migrate(storage, PROCESS_MIGRATIONS, createProcessSchema);
  }

  /** Undo actions of the in-memory page table's changes in the open transaction (null outside one). */
  #undo: (() => void)[] | null = null;

  /**
   * Run `fn` as one commit. Nested inside another, it is part of the outer commit: a throw undoes
   * its in-memory changes and propagates, and the outer commit rolls back the rows (use `attempt`
   * for a part that may fail on its own).
   */
  transaction<T>(fn: () => T): T {
    if (this.#undo !== null) return this.#nested(fn);
    const undo: (() => void)[] = (this.#undo = []);
    const pcb = this.#pcb;
    const meta = new Map(this.#meta);
    try {
      // The commit's appends and the PCB are written once, at its end.
      return this.#storage.transactionSync(() => {
        const result = fn();
        this.#writePending();
        return result;
      });
    } catch (e) {
      this.#pcb = pcb;
      this.#pcbDirty = false;
      this.#meta = meta;
      this.#dropPending({ events: 0, audits: 0, pages: 0 });
      while (undo.length > 0) undo.pop()!();
      this.#pendingSteps = new Map();
      this.#pendingJournal = new Map();
      throw e;
    } finally {
      this.#undo = null;
    }
  }

  /**
   * A part of the open commit that may fail alone (a syscall's own commit): its rows roll back to a
   * savepoint and its in-memory changes are undone, and the rest of the commit goes on.
   */
  attempt(fn: () => void): void {
    if (this.#undo === null) {
      this.transaction(fn);
      return;
    }
    // What the commit queued so far is written first, so the savepoint cannot take it with it.
    this.#writePending();
    this.#nested(() => this.#storage.transactionSync(fn));
  }

  #nested<T>(run: () => T): T {
    const undo = this.#undo!;
    const mark = undo.length;
    const pcb = this.#pcb;
    const pcbDirty = this.#pcbDirty;
    const meta = new Map(this.#meta);
    const pending = { events: this.#pendingEvents.length, audits: this.#pendingAudits.length, pages: this.#pendingPages.length };
    try {
      return run();
    } catch (e) {
      this.#pcb = pcb;
      this.#pcbDirty = pcbDirty;
      this.#meta = meta;
      this.#dropPending(pending);
      while (undo.length > mark) undo.pop()!();
      throw e;
    }
  }

  /** Forget queued appends beyond some counts (steps and journal rows are undone by the undo log). */
  #dropPending(keep: { events: number; audits: number; pages: number }): void {
    this.#pendingEvents.length = Math.min(keep.events, this.#pendingEvents.length);
    this.#pendingAudits.length = Math.min(keep.audits, this.#pendingAudits.length);
    this.#pendingPages.length = Math.min(keep.pages, this.#pendingPages.length);
  }

  /**
   * Writes a transaction defers to its end, so that a commit writes the PCB once however often it
   * changed, and its events and audit records each in one statement: the PCB is dirty, events
   * and records are queued. Outside a transaction each write happens at once.
   */
  #pcbDirty = false;
  #pendingEvents: EventRow[] = [];
  #pendingAudits: { seq: number; record: string }[] = [];
  /** New pages, steps and journal entries of the open commit, as they will be written (a status change before the end changes the row here). */
  #pendingPages: PendingPage[] = [];
  #pendingSteps = new Map<number, { step: number; status: string; text: string; created_at: number }>();
  #pendingJournal = new Map<string, { -readonly [K in keyof JournalRow]: JournalRow[K] }>();

  #writePending(): void {
    if (this.#pcbDirty && this.#pcb) this.#sql.exec('INSERT INTO pcb (id, data) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET data = excluded.data', JSON.stringify(this.#pcb));
    this.#pcbDirty = false;
    insertRows(this.#sql, 'steps (step, status, text, created_at)', [...this.#pendingSteps.values()].map((r) => [r.step, r.status, r.text, r.created_at]));
    this.#pendingSteps = new Map();
    insertRows(this.#sql, 'journal (step, idx, call_id, name, args, status, result, attempts)', [...this.#pendingJournal.values()].map((r) => [r.step, r.idx, r.call_id, r.name, r.args, r.status, r.result, r.attempts]));
    this.#pendingJournal = new Map();
    insertRows(this.#sql, 'pages (seq, step, kind, body, created_at, tokens, importance, excerpt, last_access)', this.#pendingPages.map((r) => [r.seq, r.step, r.kind, r.body, r.at, r.tokens, r.importance, r.excerpt, r.at]));
    this.#pendingPages = [];
    // A commit's events, and its audit records, are one row each (numbered seq … last).
    const events = this.#pendingEvents;
    if (events.length > 0) {
      this.#sql.exec('INSERT INTO events (seq, last, data) VALUES (?, ?, ?)', events[0]!.seq, events.at(-1)!.seq, JSON.stringify(events.map((e) => ({ at: e.at, type: e.type, data: e.data }))));
      this.#pendingEvents = [];
    }
    const audits = this.#pendingAudits;
    if (audits.length > 0) {
      this.#sql.exec('INSERT INTO audit_log (seq, last, records) VALUES (?, ?, ?)', audits[0]!.seq, audits.at(-1)!.seq, `[${audits.map((a) => a.record).join(',')}]`);
      if (this.#auditRows !== undefined) {
        this.#auditRows++;
        this.#undo?.push(() => this.#auditRows !== undefined && this.#auditRows--);
      }
      this.#pendingAudits = [];
    }
  }

  /** Inside a commit, a read of a table with queued rows writes them first (the commit's own view). */
  #settlePending(): void {
    if (this.#pendingSteps.size > 0 || this.#pendingJournal.size > 0 || this.#pendingPages.length > 0) {
      const pcb = this.#pcbDirty;
      this.#writePending();
      this.#pcbDirty = pcb;
    }
  }

  // --- PCB ---------------------------------------------------------------------------------------
  /** The PCB. Treat it as immutable: change it by saving a new object. */
  loadPcb(): Pcb | null {
    if (this.#pcb === undefined) {
      const row = this.#sql.exec<{ data: string }>('SELECT data FROM pcb WHERE id = 1').toArray()[0];
      this.#pcb = row ? (JSON.parse(row.data) as Pcb) : null;
    }
    return this.#pcb;
  }

  savePcb(pcb: Pcb): void {
    this.#pcb = pcb;
    this.#pcbDirty = true;
    if (this.#undo === null) this.#writePending();
  }

  // --- meta --------------------------------------------------------------------------------------
  /** A meta value (./meta.ts describes every key and the type of its value). */
  getMeta<T>(key: MetaKey<T>): T | undefined {
    const name = key.name;
    if (!this.#meta.has(name)) {
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
    this.#undo?.push(() => (this.#eventNext = seq));
    const row: EventRow = { seq, at, type, data };
    this.#pendingEvents.push(row);
    if (this.#undo === null) this.#writePending();
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

  // --- pages -------------------------------------------------------------------------------------
  /**
   * The page table without bodies, in memory: loaded with one read per instance, then kept in step
   * with every write below (this object is the only writer), so a step reads no page rows whatever
   * the session's length. Entries are immutable (a change replaces one), and the running totals
   * follow them; a transaction that throws undoes its changes from `#undo`.
   */
  #table: PageTable | undefined;

  #pages(): PageTable {
    if (!this.#table) {
      const t: PageTable = { entries: [], byStep: new Map(), tokens: 0, swapped: 0, maxStep: 0, untrusted: [], recalls: [] };
      const rows = this.#sql
        .exec<{ seq: number; step: number; kind: string; tokens: number; importance: number; pinned: number; resident: number; access_count: number; last_access: number; excerpt: string; batch: number; chunks: number | null; untrusted: number | null; from_step: number | null }>(
          "SELECT seq, step, kind, tokens, importance, pinned, resident, access_count, last_access, excerpt, batch, chunks, json_extract(body, '$.untrusted') AS untrusted, CASE WHEN kind = 'recall' THEN json_extract(body, '$.from_step') END AS from_step FROM pages ORDER BY seq",
        )
        .toArray();
      for (const r of rows) {
        pushEntry(t, { seq: r.seq, step: r.step, kind: r.kind, tokens: r.tokens, importance: r.importance, pinned: r.pinned === 1, resident: r.resident === 1, access_count: r.access_count, last_access: r.last_access, text: r.excerpt, batch: r.batch, chunks: r.chunks, untrusted: r.untrusted === 1, from_step: r.from_step });
      }
      this.#table = t;
    }
    return this.#table;
  }

  /** Replace entry `i` (already written to SQLite), keeping the totals and the undo log. */
  #replace(i: number, next: PageEntry): void {
    const t = this.#pages();
    const prev = t.entries[i]!;
    setEntry(t, i, next);
    this.#undo?.push(() => setEntry(t, i, prev));
  }

  /** Change every page of some steps, in memory and in SQLite (`set` with its parameters), by seq: pages have no index by step. */
  #updateSteps(steps: readonly number[], set: string, params: readonly SqlStorageValue[], change: (e: PageEntry) => PageEntry): void {
    this.#settlePending();
    const t = this.#pages();
    const at = steps.flatMap((step) => t.byStep.get(step) ?? []);
    updateBySeq(this.#sql, set, params, at.map((i) => t.entries[i]!.seq));
    for (const i of at) this.#replace(i, change(t.entries[i]!));
  }

  appendPage(step: number, kind: string, body: unknown, at: number, meta: { tokens: number; importance: number; excerpt: string } = { tokens: 0, importance: 0.5, excerpt: '' }): number {
    const t = this.#pages();
    const excerpt = meta.excerpt.slice(0, EXCERPT_CHARS);
    const json = JSON.stringify(body);
    this.#pageNext ??= (this.#sql.exec<{ n: number | null }>('SELECT MAX(seq) AS n FROM pages').one().n ?? 0) + 1;
    const seq = this.#pageNext;
    this.#pageNext = seq + 1;
    this.#pendingPages.push({ seq, step, kind, body: json, at, tokens: meta.tokens, importance: meta.importance, excerpt });
    if (this.#undo === null) this.#writePending();
    // Cache a parsed copy (what a read would return), not the caller's object.
    const parsed = JSON.parse(json) as unknown;
    this.#bodies.set(seq, parsed);
    const fields = typeof parsed === 'object' && parsed !== null ? (parsed as { untrusted?: unknown; from_step?: unknown }) : {};
    const maxStep = t.maxStep;
    pushEntry(t, {
      seq, step, kind, tokens: meta.tokens, importance: meta.importance, pinned: false, resident: true, access_count: 0, last_access: at, text: excerpt, batch: 0, chunks: null,
      untrusted: fields.untrusted === true || fields.untrusted === 1,
      from_step: kind === 'recall' && typeof fields.from_step === 'number' ? fields.from_step : null,
    });
    // Rolled back, the page is gone (and its seq is reused).
    this.#undo?.push(() => {
      popEntry(t, maxStep);
      this.#bodies.delete(seq);
      this.#pageNext = seq;
    });
    return seq;
  }

  /** The next page's number: read once per instance, then counted here (pages are never deleted). */
  #pageNext: number | undefined;

  /** Every page, in order (resident or not). */
  pages(): PageRow[] {
    this.#settlePending();
    return this.#sql
      .exec<{ seq: number; step: number; kind: string; body: string }>('SELECT seq, step, kind, body FROM pages ORDER BY seq')
      .toArray()
      .map((r) => ({ seq: r.seq, step: r.step, kind: r.kind, body: this.#bodies.get(r.seq) ?? (JSON.parse(r.body) as unknown) }));
  }

  /** The page table without bodies (from memory; treat the entries as immutable). */
  pageMeta(): PageMetaRow[] {
    return [...this.#pages().entries];
  }

  /** Total tokens and whether any page is swapped out: enough to know when there is nothing to plan. */
  pageTotals(): { tokens: number; swapped: boolean } {
    const t = this.#pages();
    return { tokens: t.tokens, swapped: t.swapped > 0 };
  }

  /** Bodies of some entries: from the cache, the missing ones read in one statement. */
  #withBodies(entries: readonly PageEntry[]): PageRow[] {
    const missing = entries.filter((e) => !this.#bodies.has(e.seq)).map((e) => e.seq);
    for (let i = 0; i < missing.length; i += 100) {
      const seqs = missing.slice(i, i + 100);
      for (const r of this.#sql.exec<{ seq: number; body: string }>(`SELECT seq, body FROM pages WHERE seq IN (${seqs.map(() => '?').join(', ')})`, ...seqs).toArray()) {
        this.#bodies.set(r.seq, JSON.parse(r.body) as unknown);
      }
    }
    return entries.map((e) => ({ seq: e.seq, step: e.step, kind: e.kind, body: this.#bodies.get(e.seq) }));
  }

  /** Resident pages with their bodies, in order. Bodies come from the cache; only missing ones are read. */
  residentPages(): PageRow[] {
    return this.#withBodies(this.#pages().entries.filter((e) => e.resident));
  }

  /** Bring steps back (counting an access) or swap them out as compaction `batch`. */
  setResident(steps: readonly number[], resident: boolean, now: number, batch = 0): void {
    if (resident) this.#updateSteps(steps, 'resident = 1, access_count = access_count + 1, last_access = ?', [now], (e) => ({ ...e, resident: true, access_count: e.access_count + 1, last_access: now }));
    else this.#updateSteps(steps, 'resident = 0, batch = ?', [batch], (e) => ({ ...e, resident: false, batch }));
  }

  /** The pages of some steps, with bodies, in order. */
  pagesOfSteps(steps: readonly number[]): PageRow[] {
    if (steps.length === 0) return [];
    const t = this.#pages();
    const idx = steps.flatMap((s) => t.byStep.get(s) ?? []).sort((a, b) => a - b);
    return this.#withBodies([...new Set(idx)].map((i) => t.entries[i]!));
  }

  /** The newest step that has pages (0 when only the task is there). */
  newestStep(): number {
    return this.#pages().maxStep;
  }

  /** Swapped-out pages not yet in the vector index (recall copies are not indexed: their originals are), oldest first. */
  unembeddedSwapped(limit: number): PageRow[] {
    const t = this.#pages();
    if (t.swapped === 0) return [];
    return this.#withBodies(t.entries.filter((e) => !e.resident && e.chunks === null && e.kind !== 'recall').slice(0, limit));
  }

  /** Record that pages are in the vector index, with how many chunks each. */
  markEmbedded(pages: readonly { seq: number; chunks: number }[]): void {
    this.#settlePending();
    const t = this.#pages();
    const at = new Map(t.entries.map((e, i) => [e.seq, i]));
    for (const p of pages) {
      this.#sql.exec('UPDATE pages SET chunks = ? WHERE seq = ?', p.chunks, p.seq);
      const i = at.get(p.seq);
      if (i !== undefined) this.#replace(i, { ...t.entries[i]!, chunks: p.chunks });
    }
  }

  /** Pages with chunks in the vector index (to delete them when the process is removed). */
  embeddedPages(): { seq: number; chunks: number }[] {
    return this.#pages().entries.flatMap((e) => (e.chunks !== null && e.chunks > 0 ? [{ seq: e.seq, chunks: e.chunks }] : []));
  }

  /** A major compaction: every swapped page joins `batch`, so adjacent runs merge. */
  rebatchSwapped(batch: number): void {
    this.#settlePending();
    const t = this.#pages();
    const at = t.entries.flatMap((e, i) => (e.resident ? [] : [i]));
    updateBySeq(this.#sql, 'batch = ?', [batch], at.map((i) => t.entries[i]!.seq));
    for (const i of at) this.#replace(i, { ...t.entries[i]!, batch });
  }

  /** Count an access to steps that stay where they are (a page fault recalls a copy). */
  touchSteps(steps: readonly number[], now: number): void {
    this.#updateSteps(steps, 'access_count = access_count + 1, last_access = ?', [now], (e) => ({ ...e, access_count: e.access_count + 1, last_access: now }));
  }

  /** Swapped steps whose content is in the working set through a resident recall page. */
  recalledSteps(): Set<number> {
    const t = this.#pages();
    const out = new Set<number>();
    for (const i of t.recalls) {
      const e = t.entries[i]!;
      if (e.resident && e.from_step !== null) out.add(e.from_step);
    }
    return out;
  }

  /** Pin or unpin every page of a step; returns how many pages it has. */
  setPinned(step: number, pinned: boolean): number {
    this.#updateSteps([step], 'pinned = ?', [pinned ? 1 : 0], (e) => ({ ...e, pinned }));
    return this.#pages().byStep.get(step)?.length ?? 0;
  }

  // --- steps and the journal ---------------------------------------------------------------------
  /** The open step, read once per instance and then kept with insertStep and finishStep (undefined: not read yet). */
  #openStep: number | null | undefined;

  /** The step whose syscalls are not all done, if any (there is at most one). */
  openStep(): number | null {
    if (this.#openStep === undefined) {
      this.#settlePending();
      const row = this.#sql.exec<{ step: number }>("SELECT step FROM steps WHERE status = 'dispatching' ORDER BY step LIMIT 1").toArray()[0];
      this.#openStep = row ? row.step : null;
    }
    return this.#openStep;
  }

  insertStep(step: number, text: string, at: number): void {
    const open = this.openStep();
    this.#pendingSteps.set(step, { step, status: 'dispatching', text, created_at: at });
    this.#undo?.push(() => this.#pendingSteps.delete(step));
    if (this.#undo === null) this.#writePending();
    if (open === null || step < open) this.#setOpenStep(step, open);
  }

  finishStep(step: number): void {
    const open = this.openStep();
    const queued = this.#pendingSteps.get(step);
    if (queued) this.#change(queued, 'status', 'done');
    else this.#sql.exec("UPDATE steps SET status = 'done' WHERE step = ?", step);
    // There is at most one open step (the loop finishes one before it journals the next).
    if (open === step) this.#setOpenStep(null, open);
  }

  #setOpenStep(next: number | null | undefined, prev: number | null): void {
    this.#openStep = next;
    this.#undo?.push(() => (this.#openStep = prev));
  }

  /** Register an undo for a cache kept outside the store (the filesystem's byte total): it runs if the open transaction rolls back. */
  onRollback(undo: () => void): void {
    this.#undo?.push(undo);
  }

  /** Change a field of a queued row, undone with the commit. */
  #change<R extends object, K extends keyof R>(row: R, key: K, value: R[K]): void {
    const prev = row[key];
    row[key] = value;
    this.#undo?.push(() => (row[key] = prev));
  }

  insertJournal(step: number, idx: number, callId: string, name: string, args: string, status: JournalStatus, result: string | null): void {
    const key = `${step}.${idx}`;
    this.#pendingJournal.set(key, { step, idx, call_id: callId, name, args, status, result, attempts: 0 });
    this.#undo?.push(() => this.#pendingJournal.delete(key));
    if (this.#undo === null) this.#writePending();
  }

  /** A journal entry's status (and result) changes: in the queued row if it is new in this commit. */
  #setJournal(step: number, idx: number, status: JournalStatus, result?: string): boolean {
    const queued = this.#pendingJournal.get(`${step}.${idx}`);
    if (!queued) return false;
    this.#change(queued, 'status', status);
    if (result !== undefined) this.#change(queued, 'result', result);
    return true;
  }

  journal(step: number): JournalRow[] {
    this.#settlePending();
    return this.#sql.exec<JournalRow>('SELECT step, idx, call_id, name, args, status, result, attempts FROM journal WHERE step = ? ORDER BY idx', step).toArray();
  }

  /** The journal entry a blocked process is waiting in. */
  blockedEntry(): JournalRow | null {
    this.#settlePending();
    return this.#sql.exec<JournalRow>("SELECT step, idx, call_id, name, args, status, result, attempts FROM journal WHERE status = 'blocked' LIMIT 1").toArray()[0] ?? null;
  }

  markStarted(step: number, idx: number): void {
    this.#settlePending();
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

  /** Whether untrusted content (fetched pages, a task from a tainted parent …) is in the working set. */
  tainted(floorStep: number): boolean {
    const t = this.#pages();
    return t.untrusted.some((i) => {
      const e = t.entries[i]!;
      return e.resident && (e.step === 0 || e.step >= floorStep);
    });
  }

  markDone(step: number, idx: number, result: string): void {
    if (this.#setJournal(step, idx, 'done', result)) return;
    this.#sql.exec("UPDATE journal SET status = 'done', result = ? WHERE step = ? AND idx = ?", result, step, idx);
  }

  // --- approvals (created by the first request: most processes never ask) ---------------------------
  /** Whether the approvals table exists (undefined: not looked yet; forgotten after each write, whose transaction may roll back). */
  #approvalsPresent: boolean | undefined;

  #approvalsReadable(): boolean {
    this.#approvalsPresent ??= this.#sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'approvals'").toArray().length > 0;
    return this.#approvalsPresent;
  }

  /** The approval asked for a journal entry, if any. */
  approvalFor(step: number, idx: number): ApprovalRow | null {
    if (!this.#approvalsReadable()) return null;
    return this.#sql.exec<ApprovalRow>('SELECT id, step, idx, needed, status FROM approvals WHERE step = ? AND idx = ?', step, idx).toArray()[0] ?? null;
  }

  approval(id: string): ApprovalRow | null {
    if (!this.#approvalsReadable()) return null;
    return this.#sql.exec<ApprovalRow>('SELECT id, step, idx, needed, status FROM approvals WHERE id = ?', id).toArray()[0] ?? null;
  }

  /** Record a request (pending); asking again for the same entry keeps the first. */
  addApproval(row: ApprovalRow): void {
    this.#sql.exec(tableDdl(['approvals']));
    this.#approvalsPresent = undefined;
    this.#sql.exec('INSERT OR IGNORE INTO approvals (id, step, idx, needed, status) VALUES (?, ?, ?, ?, ?)', row.id, row.step, row.idx, row.needed, row.status);
  }

  setApprovalStatus(id: string, status: ApprovalRow['status']): void {
    if (this.#approvalsReadable()) this.#sql.exec('UPDATE approvals SET status = ? WHERE id = ?', status, id);
  }

  // --- children ----------------------------------------------------------------------------------
  /** The children, in memory: read once per instance, kept with every write (rows are immutable; a change replaces one). */
  #children: (ChildRow & { readonly created_at: number })[] | undefined;

  #kids(): (ChildRow & { readonly created_at: number })[] {
    this.#children ??= this.#sql.exec<ChildRow & { created_at: number }>('SELECT pid, name, status, exit, spawn_key, created_at FROM children ORDER BY created_at, pid').toArray();
    return this.#children;
  }

  #setKids(next: (ChildRow & { readonly created_at: number })[]): void {
    const prev = this.#kids();
    this.#children = next;
    this.#undo?.push(() => (this.#children = prev));
  }

  childBySpawnKey(key: string): ChildRow | null {
    return strip(this.#kids().find((c) => c.spawn_key === key));
  }

  child(pid: string): ChildRow | null {
    return strip(this.#kids().find((c) => c.pid === pid));
  }

  children(): ChildRow[] {
    return this.#kids().map((c) => strip(c)!);
  }

  addChild(pid: string, name: string, spawnKey: string, at: number): void {
    this.#sql.exec("INSERT INTO children (pid, name, status, spawn_key, created_at) VALUES (?, ?, 'live', ?, ?) ON CONFLICT(pid) DO NOTHING", pid, name, spawnKey, at);
    const kids = this.#kids();
    if (kids.some((c) => c.pid === pid)) return;
    this.#setKids([...kids, { pid, name, status: 'live' as const, exit: null, spawn_key: spawnKey, created_at: at }].sort((a, b) => a.created_at - b.created_at || (a.pid < b.pid ? -1 : a.pid > b.pid ? 1 : 0)));
  }

  removeChild(pid: string): void {
    this.#sql.exec('DELETE FROM children WHERE pid = ?', pid);
    this.#setKids(this.#kids().filter((c) => c.pid !== pid));
  }

  setChildStatus(pid: string, status: ChildRow['status'], exit: string | null): void {
    this.#sql.exec('UPDATE children SET status = ?, exit = COALESCE(?, exit) WHERE pid = ?', status, exit, pid);
    this.#setKids(this.#kids().map((c) => (c.pid === pid ? { ...c, status, exit: exit ?? c.exit } : c)));
  }

  // --- the audit log (the process's own hash chain; src/audit/audit.ts) ----------------------------
  /** The next record's number in this process's chain: read once per instance, then counted here. */
  #auditNext: number | undefined;

  /** Take the next audit record number (undone if the transaction rolls back). */
  nextAuditSeq(): number {
    if (this.#auditNext === undefined) {
      const logged = this.#sql.exec<{ n: number | null }>('SELECT MAX(last) AS n FROM audit_log').one().n ?? 0;
      // Numbers already used: delivered (the head), and counted by kernels before the audit log (audit_seq).
      this.#auditNext = Math.max(logged, this.getMeta(META.auditHead)?.seq ?? 0, this.getMeta(META.auditSeqLegacy) ?? 0) + 1;
    }
    const n = this.#auditNext;
    this.#auditNext = n + 1;
    this.#undo?.push(() => (this.#auditNext = n));
    return n;
  }

  /** Keep a record (JSON of an AuditRecord) until the outbox has put it in D1. */
  appendAudit(seq: number, record: string): void {
    this.#pendingAudits.push({ seq, record });
    if (this.#undo === null) this.#writePending();
  }

  /** Rows of audit_log (one per commit that recorded something): counted so an empty log is known without a read. */
  #auditRows: number | undefined;

  /** Whether records are waiting for D1. */
  auditOwed(): boolean {
    this.#auditRows ??= this.#sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM audit_log').one().n;
    return this.#auditRows > 0 || this.#pendingAudits.length > 0;
  }

  /**
   * Records not yet in D1, oldest first: whole commits' worth, about `limit` (at least one commit's,
   * all of it), so that delivering them leaves no commit half in D1.
   */
  auditBacklog(limit: number): { seq: number; record: string }[] {
    this.#settlePending();
    const out: { seq: number; record: string }[] = [];
    for (const r of this.#sql.exec<{ seq: number; records: string }>('SELECT seq, records FROM audit_log ORDER BY seq LIMIT ?', Math.max(1, limit)).toArray()) {
      if (out.length >= limit && out.length > 0) break;
      (JSON.parse(r.records) as unknown[]).forEach((record, i) => out.push({ seq: r.seq + i, record: JSON.stringify(record) }));
    }
    return out;
  }

  /** Delivered: forget the records up to `seq` (the end of a commit's records) and move the chain's head (one commit). */
  delivered(seq: number, head: AuditHead): void {
    const gone = this.#sql.exec('DELETE FROM audit_log WHERE seq <= ?', seq).rowsWritten;
    const rows = this.#auditRows;
    if (rows !== undefined) {
      this.#auditRows = rows - gone;
      this.#undo?.push(() => (this.#auditRows = rows));
    }
    this.setMeta(META.auditHead, head);
  }

  /** The chain's head: the last record in D1, and the last one anchored in the tenant's chain. */
  auditHead(): AuditHead {
    return this.getMeta(META.auditHead) ?? { seq: 0, hash: GENESIS, anchored: 0 };
  }

  // --- outbox ------------------------------------------------------------------------------------
  enqueue(kind: string, payload: unknown): void {
    this.#sql.exec('INSERT INTO outbox (kind, payload) VALUES (?, ?)', kind, JSON.stringify(payload));
  }

  outbox(limit: number): OutboxRow[] {
    return this.#sql.exec<OutboxRow>('SELECT id, kind, payload, attempts FROM outbox ORDER BY id LIMIT ?', limit).toArray();
  }

  /** Rows of one kind (the step loop delivers scheduler releases as soon as they are committed). */
  outboxOfKind(kind: string, limit: number): OutboxRow[] {
    return this.#sql.exec<OutboxRow>('SELECT id, kind, payload, attempts FROM outbox WHERE kind = ? ORDER BY id LIMIT ?', kind, limit).toArray();
  }

  outboxSize(): number {
    return this.#sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM outbox').one().n;
  }

  deleteOutbox(ids: readonly number[]): void {
    for (let i = 0; i < ids.length; i += 100) {
      const some = ids.slice(i, i + 100);
      this.#sql.exec(`DELETE FROM outbox WHERE id IN (${some.map(() => '?').join(', ')})`, ...some);
    }
  }

  /** Deliveries still owed: outbox rows and audit records not yet in D1. */
  owed(): number {
    return this.outboxSize() + this.#sql.exec<{ n: number }>('SELECT COALESCE(SUM(last - seq + 1), 0) AS n FROM audit_log').one().n;
  }

  bumpOutbox(ids: readonly number[]): void {
    for (const id of ids) this.#sql.exec('UPDATE outbox SET attempts = attempts + 1 WHERE id = ?', id);
  }

  /** Forget the caches: the tables were rewritten underneath them (a checkpoint restored or forked in). */
  reload(): void {
    // The rewrite replaced the PCB; the events and audit records this commit queued (tables it does
    // not rewrite) are written now, and everything is then read afresh.
    this.#pcbDirty = false;
    this.#writePending();
    this.#eventNext = undefined;
    this.#pageNext = undefined;
    this.#children = undefined;
    this.#pcb = undefined;
    this.#meta = new Map();
    this.#bodies = new Map();
    this.#approvalsPresent = undefined;
    this.#auditNext = undefined;
    this.#auditRows = undefined;
    this.#table = undefined;
    this.#openStep = undefined;
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
    migrate(this.#storage, PROCESS_MIGRATIONS, createProcessSchema);
    this.#pcb = undefined;
    this.#approvalsPresent = undefined;
    this.#meta = new Map();
    this.#bodies = new Map();
    this.#table = undefined;
    this.#openStep = undefined;
    this.#auditNext = undefined;
    this.#auditRows = undefined;
    this.#eventNext = undefined;
    this.#pageNext = undefined;
    this.#children = undefined;
    this.#pcbDirty = false;
    this.#pendingEvents = [];
    this.#pendingAudits = [];
    this.#pendingPages = [];
    this.#pendingSteps = new Map();
    this.#pendingJournal = new Map();
  }
}

/** A page queued in the open commit. */
type PendingPage = { readonly seq: number; readonly step: number; readonly kind: string; readonly body: string; readonly at: number; readonly tokens: number; readonly importance: number; readonly excerpt: string };

/** A child row without the bookkeeping the cache keeps. */
function strip(c: (ChildRow & { readonly created_at: number }) | undefined): ChildRow | null {
  if (!c) return null;
  return { pid: c.pid, name: c.name, status: c.status, exit: c.exit, spawn_key: c.spawn_key };
}

/** Bound parameters a Durable Object's SQLite takes per statement (developers.cloudflare.com/durable-objects/platform/limits/). */
const MAX_PARAMS = 100;

/** `UPDATE pages SET <set> WHERE seq IN (…)`, in as few statements as the bound on parameters allows. */
function updateBySeq(sql: SqlStorage, set: string, params: readonly SqlStorageValue[], seqs: readonly number[]): void {
  const per = MAX_PARAMS - params.length;
  for (let i = 0; i < seqs.length; i += per) {
    const some = seqs.slice(i, i + per);
    sql.exec(`UPDATE pages SET ${set} WHERE seq IN (${some.map(() => '?').join(', ')})`, ...params, ...some);
  }
}

/** A multi-row INSERT, in as few statements as the bound on parameters allows. */
function insertRows(sql: SqlStorage, into: string, rows: readonly (readonly SqlStorageValue[])[]): void {
  if (rows.length === 0) return;
  const per = Math.max(1, Math.floor(MAX_PARAMS / rows[0]!.length));
  for (let i = 0; i < rows.length; i += per) {
    const some = rows.slice(i, i + per);
    const one = `(${some[0]!.map(() => '?').join(', ')})`;
    sql.exec(`INSERT INTO ${into} VALUES ${some.map(() => one).join(', ')}`, ...some.flat());
  }
}

/** A page as the store keeps it in memory: its metadata, and what the hot path asks of its body. */
type PageEntry = PageMetaRow & { readonly chunks: number | null; readonly untrusted: boolean; readonly from_step: number | null };

/** The in-memory page table, its indexes and totals (ProcessStore keeps it exact). */
type PageTable = {
  readonly entries: PageEntry[];
  /** Positions in `entries` by step. */
  readonly byStep: Map<number, number[]>;
  tokens: number;
  /** How many pages are swapped out. */
  swapped: number;
  maxStep: number;
  /** Positions of untrusted pages, and of recall pages (both rare). */
  readonly untrusted: number[];
  readonly recalls: number[];
};

function pushEntry(t: PageTable, e: PageEntry): void {
  const i = t.entries.push(e) - 1;
  const at = t.byStep.get(e.step);
  if (at) at.push(i);
  else t.byStep.set(e.step, [i]);
  t.tokens += e.tokens;
  if (!e.resident) t.swapped++;
  if (e.step > t.maxStep) t.maxStep = e.step;
  if (e.untrusted) t.untrusted.push(i);
  if (e.kind === 'recall') t.recalls.push(i);
}

/** Undo the last pushEntry (maxStep as it was before it). */
function popEntry(t: PageTable, maxStep: number): void {
  const e = t.entries.pop();
  if (!e) return;
  const i = t.entries.length;
  const at = t.byStep.get(e.step);
  at?.pop();
  if (at?.length === 0) t.byStep.delete(e.step);
  t.tokens -= e.tokens;
  if (!e.resident) t.swapped--;
  t.maxStep = maxStep;
  if (t.untrusted.at(-1) === i) t.untrusted.pop();
  if (t.recalls.at(-1) === i) t.recalls.pop();
}

/** Replace an entry in place (same seq and step), adjusting the totals. */
function setEntry(t: PageTable, i: number, next: PageEntry): void {
  const prev = t.entries[i]!;
  t.tokens += next.tokens - prev.tokens;
  t.swapped += (next.resident ? 0 : 1) - (prev.resident ? 0 : 1);
  t.entries[i] = next;
}
