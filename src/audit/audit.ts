/**
 * The audit log: one row per lifecycle event and per syscall (allowed or refused), in D1.
 *
 * A process never writes D1 directly in the middle of a step. It builds the audit record here and
 * puts the INSERT in its outbox in the same storage transaction as the change it records; the
 * outbox is delivered afterwards and retried until D1 accepts it. Row ids are `<pid>:<n>` with n
 * counted per process, and inserts are `INSERT OR IGNORE`, so a redelivered outbox entry never
 * duplicates a row. The global `seq` orders rows by arrival and is the API's paging cursor.
 */
import { preview } from '../kernel/preview.ts';

export type AuditKind = 'lifecycle' | 'syscall' | 'signal' | 'llm';
export type AuditOutcome = 'ok' | 'error' | 'refused';

export interface AuditRecord {
  readonly id: string;
  readonly pid: string;
  readonly at: number;
  readonly kind: AuditKind;
  readonly action: string;
  readonly outcome: AuditOutcome;
  readonly code: string | null;
  readonly detail: unknown;
}

export interface Statement {
  readonly sql: string;
  readonly params: readonly (string | number | null)[];
}

export function auditInsert(r: AuditRecord): Statement {
  return {
    sql: 'INSERT OR IGNORE INTO audit (id, pid, at, kind, action, outcome, code, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    params: [r.id, r.pid, r.at, r.kind, r.action, r.outcome, r.code, JSON.stringify(preview(r.detail))],
  };
}

export interface AuditRow {
  readonly seq: number;
  readonly id: string;
  readonly pid: string;
  readonly at: number;
  readonly kind: AuditKind;
  readonly action: string;
  readonly outcome: AuditOutcome;
  readonly code: string | null;
  readonly detail: unknown;
}

export async function queryAudit(db: D1Database, q: { pid?: string; after: number; limit: number }): Promise<AuditRow[]> {
  const where = ['seq > ?'];
  const params: (string | number)[] = [q.after];
  if (q.pid) {
    where.push('pid = ?');
    params.push(q.pid);
  }
  const { results } = await db
    .prepare(`SELECT seq, id, pid, at, kind, action, outcome, code, detail FROM audit WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`)
    .bind(...params, q.limit)
    .all<Omit<AuditRow, 'detail'> & { detail: string }>();
  return results.map((r) => ({ ...r, detail: JSON.parse(r.detail) as unknown }));
}
