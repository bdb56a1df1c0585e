/**
 * What a process owes to others, in its own storage: the outbox (effects on D1 and other objects,
 * committed with the change that caused them, delivered by ./outbox.ts) and the audit log (the
 * records of its own hash chain, one row per commit; src/audit/audit.ts). The log is append-only,
 * as the event log is: a row is not deleted once its records are in D1 (that would be one more row
 * written per commit); the chain's head (meta `audit_head`) says how far D1 has them, and what lies
 * beyond it is owed. Both logs go with the process's storage.
 */
import { GENESIS } from '../audit/audit.ts';
import type { Pending } from './commit.ts';
import { type AuditHead, META, type MetaKey } from './meta.ts';

export type OutboxRow = {
  readonly id: number;
  readonly kind: string;
  readonly payload: string;
  readonly attempts: number;
};

/** The store's meta entries, for the chain's head. */
export interface MetaAccess {
  get<T>(key: MetaKey<T>): T | undefined;
  set<T>(key: MetaKey<T>, value: T): void;
}

export class Deliveries {
  readonly #sql: SqlStorage;
  readonly #w: Pending;
  readonly #meta: MetaAccess;

  constructor(sql: SqlStorage, pending: Pending, meta: MetaAccess) {
    this.#sql = sql;
    this.#w = pending;
    this.#meta = meta;
  }

  /** The tables were created just now (a new object): nothing logged, known without a read. */
  empty(): void {
    this.#auditNext = 1;
    this.#owed = 0;
  }

  /** Forget the counters (the tables were rewritten or dropped). */
  reset(): void {
    this.#auditNext = undefined;
    this.#owed = undefined;
  }

  /** The open commit wrote an audit_log row of `records` records (./commit.ts). */
  auditRowWritten(records: number): void {
    const owed = this.#owed;
    if (owed === undefined) return;
    this.#owed = owed + records;
    this.#w.onUndo(() => (this.#owed = owed));
  }

  /** The next record's number in this process's chain: read once per instance, then counted here. */
  #auditNext: number | undefined;

  #next(): number {
    if (this.#auditNext === undefined) {
      const logged = this.#sql.exec<{ n: number | null }>('SELECT MAX(last) AS n FROM audit_log').one().n ?? 0;
      // Numbers already used: delivered (the head), and counted by kernels before the audit log (audit_seq).
      this.#auditNext = Math.max(logged, this.#meta.get(META.auditHead)?.seq ?? 0, this.#meta.get(META.auditSeqLegacy) ?? 0) + 1;
    }
    return this.#auditNext;
  }

  /** Take the next audit record number (undone if the transaction rolls back). */
  nextAuditSeq(): number {
    const n = this.#next();
    this.#auditNext = n + 1;
    this.#w.onUndo(() => (this.#auditNext = n));
    return n;
  }

  /** Keep a record (JSON of an AuditRecord) until the outbox has put it in D1. */
  appendAudit(seq: number, record: string): void {
    this.#w.audits.push({ seq, record });
    if (!this.#w.open) this.#w.write();
  }

  /** Records of audit_log past the chain's head (read once per instance, then counted here). */
  #owed: number | undefined;

  #owedRecords(): number {
    this.#owed ??= this.#sql.exec<{ n: number }>('SELECT COALESCE(SUM(last - seq + 1), 0) AS n FROM audit_log WHERE seq > ?', this.auditHead().seq).one().n;
    return this.#owed;
  }

  /** Whether records are waiting for D1. */
  auditOwed(): boolean {
    return this.#owedRecords() > 0 || this.#w.audits.length > 0;
  }

  /**
   * Records not yet in D1, oldest first: whole commits' worth, about `limit` (at least one commit's,
   * all of it), so that delivering them leaves no commit half in D1.
   */
  auditBacklog(limit: number): { seq: number; record: string }[] {
    this.#w.settle();
    const out: { seq: number; record: string }[] = [];
    const rows = this.#sql.exec<{ seq: number; records: string }>('SELECT seq, records FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?', this.auditHead().seq, Math.max(1, limit)).toArray();
    for (const r of rows) {
      if (out.length >= limit && out.length > 0) break;
      (JSON.parse(r.records) as unknown[]).forEach((record, i) => out.push({ seq: r.seq + i, record: JSON.stringify(record) }));
    }
    return out;
  }

  /** Delivered: `records` records, up to `head.seq` (the end of a commit's records), are in D1; the chain's head moves there (one row). */
  delivered(head: AuditHead, records: number): void {
    const owed = this.#owedRecords();
    this.#owed = owed - records;
    this.#w.onUndo(() => (this.#owed = owed));
    this.#meta.set(META.auditHead, head);
  }

  /** The chain's head: the last record in D1, and the last one anchored in the tenant's chain. */
  auditHead(): AuditHead {
    return this.#meta.get(META.auditHead) ?? { seq: 0, hash: GENESIS, anchored: 0 };
  }

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
    return this.outboxSize() + this.#owedRecords();
  }

  bumpOutbox(ids: readonly number[]): void {
    for (const id of ids) this.#sql.exec('UPDATE outbox SET attempts = attempts + 1 WHERE id = ?', id);
  }
}
