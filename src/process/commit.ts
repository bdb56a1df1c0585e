/**
 * The open commit of a process's store (./store.ts): the rows it defers to its end and the undo log
 * of its in-memory changes.
 *
 * A commit writes each table it appends to in one statement at its end, so that a step's pages,
 * events, audit records, steps and journal entries are a handful of multi-row statements rather than
 * one per record: steps, journal entries and pages as rows; events and audit records as one row
 * each per commit (numbered `seq … last`, a JSON array). Outside a commit each write happens at once.
 * The caches kept beside the rows (the page table, counters, children) register undo actions, which
 * run if the commit throws, as SQLite rolls back its rows.
 */
import type { EventRow } from '../rpc/contracts.ts';

/** Bound parameters a Durable Object's SQLite takes per statement (developers.cloudflare.com/durable-objects/platform/limits/). */
export const MAX_PARAMS = 100;

export type JournalStatus = 'pending' | 'started' | 'blocked' | 'done';

/** A journal entry: one syscall an answer asked for. */
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

/** A page queued in the open commit. */
export type PendingPage = { readonly seq: number; readonly step: number; readonly kind: string; readonly body: string; readonly at: number; readonly tokens: number; readonly importance: number; readonly excerpt: string };

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** How many queued appends a savepoint keeps when it rolls back (steps and journal entries are undone by the undo log). */
export type PendingMark = { readonly events: number; readonly audits: number; readonly pages: number };

export class Pending {
  readonly #sql: SqlStorage;
  /** Undo actions of the open commit's in-memory changes (null outside a commit). */
  undo: (() => void)[] | null = null;
  events: EventRow[] = [];
  audits: { seq: number; record: string }[] = [];
  pages: PendingPage[] = [];
  /** New steps and journal entries, as they will be written (a status change before the end changes the row here). */
  steps = new Map<number, { step: number; status: string; text: string; created_at: number; trace: string | null; pcb: string | null }>();
  journal = new Map<string, Mutable<JournalRow>>();

  readonly #onAuditRow: (records: number) => void;

  /** `onAuditRow`: an audit_log row of so many records was written (the store counts them). */
  constructor(sql: SqlStorage, onAuditRow: (records: number) => void) {
    this.#sql = sql;
    this.#onAuditRow = onAuditRow;
  }

  get open(): boolean {
    return this.undo !== null;
  }

  /** Register an undo action for a change kept in memory (no-op outside a commit). */
  onUndo(fn: () => void): void {
    this.undo?.push(fn);
  }

  /** Change a field of a queued row, undone with the commit. */
  change<R extends object, K extends keyof R>(row: R, key: K, value: R[K]): void {
    const prev = row[key];
    row[key] = value;
    this.onUndo(() => (row[key] = prev));
  }

  mark(): PendingMark {
    return { events: this.events.length, audits: this.audits.length, pages: this.pages.length };
  }

  /** Forget queued appends beyond a mark. */
  dropTo(keep: PendingMark): void {
    this.events.length = Math.min(keep.events, this.events.length);
    this.audits.length = Math.min(keep.audits, this.audits.length);
    this.pages.length = Math.min(keep.pages, this.pages.length);
  }

  /** Forget everything queued (the commit rolled back). */
  clear(): void {
    this.dropTo({ events: 0, audits: 0, pages: 0 });
    this.steps = new Map();
    this.journal = new Map();
  }

  /** Whether rows of the tables a read inside the commit may look at are queued. */
  get holdsRows(): boolean {
    return this.steps.size > 0 || this.journal.size > 0 || this.pages.length > 0;
  }

  /** Write what is queued. */
  write(): void {
    const sql = this.#sql;
    insertRows(sql, 'steps (step, status, text, created_at, trace, pcb)', [...this.steps.values()].map((r) => [r.step, r.status, r.text, r.created_at, r.trace, r.pcb]));
    this.steps = new Map();
    insertRows(sql, 'journal (step, idx, call_id, name, args, status, result, attempts)', [...this.journal.values()].map((r) => [r.step, r.idx, r.call_id, r.name, r.args, r.status, r.result, r.attempts]));
    this.journal = new Map();
    insertRows(sql, 'pages (seq, step, kind, body, created_at, tokens, importance, excerpt, last_access)', this.pages.map((r) => [r.seq, r.step, r.kind, r.body, r.at, r.tokens, r.importance, r.excerpt, r.at]));
    this.pages = [];
    const events = this.events;
    if (events.length > 0) {
      sql.exec('INSERT INTO events (seq, last, data) VALUES (?, ?, ?)', events[0]!.seq, events.at(-1)!.seq, JSON.stringify(events.map((e) => ({ at: e.at, type: e.type, data: e.data }))));
      this.events = [];
    }
    const audits = this.audits;
    if (audits.length > 0) {
      sql.exec('INSERT INTO audit_log (seq, last, records) VALUES (?, ?, ?)', audits[0]!.seq, audits.at(-1)!.seq, `[${audits.map((a) => a.record).join(',')}]`);
      this.audits = [];
      this.#onAuditRow(audits.length);
    }
  }

  /** Inside a commit, a read of a table with queued rows writes them first (the commit's own view). */
  settle(): void {
    if (this.holdsRows) this.write();
  }
}

/** A multi-row INSERT, in as few statements as the bound on parameters allows. */
export function insertRows(sql: SqlStorage, into: string, rows: readonly (readonly SqlStorageValue[])[]): void {
  if (rows.length === 0) return;
  const per = Math.max(1, Math.floor(MAX_PARAMS / rows[0]!.length));
  for (let i = 0; i < rows.length; i += per) {
    const some = rows.slice(i, i + per);
    const one = `(${some[0]!.map(() => '?').join(', ')})`;
    sql.exec(`INSERT INTO ${into} VALUES ${some.map(() => one).join(', ')}`, ...some.flat());
  }
}

/** `UPDATE <table> SET <set> WHERE <key> IN (…)`, in as few statements as the bound on parameters allows. */
export function updateWhereIn(sql: SqlStorage, table: string, set: string, params: readonly SqlStorageValue[], key: string, values: readonly SqlStorageValue[]): void {
  const per = MAX_PARAMS - params.length;
  for (let i = 0; i < values.length; i += per) {
    const some = values.slice(i, i + per);
    sql.exec(`UPDATE ${table} SET ${set} WHERE ${key} IN (${some.map(() => '?').join(', ')})`, ...params, ...some);
  }
}
