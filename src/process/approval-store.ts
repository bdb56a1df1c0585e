/**
 * The human approvals a process asked for, in its own `approvals` table (the kernel's side; D1's
 * approvals table is the operators'). The table is created by the first request: most processes
 * never ask.
 */
import { tableDdl } from './schema.ts';

/** A human approval a process asked for (the kernel's side; D1's approvals table is the operators'). */
export type ApprovalRow = {
  readonly id: string;
  readonly step: number;
  readonly idx: number;
  /** The capability the call needs, as the operator was shown it. */
  readonly needed: string;
  readonly status: 'pending' | 'approved' | 'denied' | 'expired';
};

export class ApprovalStore {
  readonly #sql: SqlStorage;
  /** Whether the table exists (undefined: not looked yet; forgotten after each write, whose transaction may roll back). */
  #present: boolean | undefined;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  #readable(): boolean {
    this.#present ??= this.#sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'approvals'").toArray().length > 0;
    return this.#present;
  }

  /** The approval asked for a journal entry, if any. */
  forEntry(step: number, idx: number): ApprovalRow | null {
    if (!this.#readable()) return null;
    return this.#sql.exec<ApprovalRow>('SELECT id, step, idx, needed, status FROM approvals WHERE step = ? AND idx = ?', step, idx).toArray()[0] ?? null;
  }

  get(id: string): ApprovalRow | null {
    if (!this.#readable()) return null;
    return this.#sql.exec<ApprovalRow>('SELECT id, step, idx, needed, status FROM approvals WHERE id = ?', id).toArray()[0] ?? null;
  }

  /** Record a request (pending); asking again for the same entry keeps the first. */
  add(row: ApprovalRow): void {
    this.#sql.exec(tableDdl(['approvals']));
    this.#present = undefined;
    this.#sql.exec('INSERT OR IGNORE INTO approvals (id, step, idx, needed, status) VALUES (?, ?, ?, ?, ?)', row.id, row.step, row.idx, row.needed, row.status);
  }

  setStatus(id: string, status: ApprovalRow['status']): void {
    if (this.#readable()) this.#sql.exec('UPDATE approvals SET status = ? WHERE id = ?', status, id);
  }

  /** A new object: the table does not exist. */
  empty(): void {
    this.#present = false;
  }

  /** The table may have been rewritten or dropped underneath (a restore, a release of storage). */
  reset(): void {
    this.#present = undefined;
  }
}
