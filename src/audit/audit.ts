/**
 * The audit log: one row per lifecycle event, signal, LLM call, syscall (allowed, refused, asked,
 * approved), capability change, approval decision and authentication failure, in D1.
 *
 * A process never writes D1 directly in the middle of a step. It builds the record here and puts it
 * in its outbox in the same storage commit as the change it records. The outbox hands records to the
 * tenant's AuditChain object (durable/audit-chain.ts), which appends them to the tenant's hash chain.
 * Record ids are `<pid>:<n>` with n counted per process, and appends skip ids already stored, so a
 * redelivered record never duplicates a row. The global `seq` orders rows by arrival and is the
 * API's paging cursor; `chain_seq` orders a tenant's chain.
 */
import { canonicalJson, sha256Hex } from '../kernel/policy.ts';
import { preview } from '../kernel/preview.ts';

export type AuditKind = 'lifecycle' | 'syscall' | 'signal' | 'llm' | 'capability' | 'approval' | 'auth' | 'memory' | 'mcp';
export type AuditOutcome = 'ok' | 'error' | 'refused' | 'asked' | 'approved' | 'denied' | 'expired';

export interface AuditRecord {
  readonly id: string;
  readonly tenant: string;
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

/** The bytes a chain hash covers: every field of the row except the hashes themselves. */
export function chainContent(r: AuditRecord & { readonly chain_seq: number }): string {
  return canonicalJson({ tenant: r.tenant, chain_seq: r.chain_seq, id: r.id, pid: r.pid, at: r.at, kind: r.kind, action: r.action, outcome: r.outcome, code: r.code, detail: r.detail });
}

export const GENESIS = '0'.repeat(64);

export function chainHash(prevHash: string, content: string): Promise<string> {
  return sha256Hex(`${prevHash}\n${content}`);
}

/** Bound a record's detail before it is hashed and stored (the stored form is what is hashed). */
export function boundRecord(r: AuditRecord): AuditRecord {
  return { ...r, detail: JSON.parse(JSON.stringify(preview(r.detail) ?? null)) as unknown };
}

export interface AuditRow {
  readonly seq: number;
  readonly id: string;
  readonly tenant: string;
  readonly chain_seq: number;
  readonly pid: string;
  readonly at: number;
  readonly kind: AuditKind;
  readonly action: string;
  readonly outcome: AuditOutcome;
  readonly code: string | null;
  readonly detail: unknown;
  readonly prev_hash: string;
  readonly hash: string;
}

const COLUMNS = 'seq, id, tenant, chain_seq, pid, at, kind, action, outcome, code, detail, prev_hash, hash';

export async function queryAudit(db: D1Database, q: { tenant: string; pid?: string; after: number; limit: number }): Promise<AuditRow[]> {
  const where = ['tenant = ?', 'seq > ?'];
  const params: (string | number)[] = [q.tenant, q.after];
  if (q.pid) {
    where.push('pid = ?');
    params.push(q.pid);
  }
  const { results } = await db
    .prepare(`SELECT ${COLUMNS} FROM audit WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`)
    .bind(...params, q.limit)
    .all<Omit<AuditRow, 'detail'> & { detail: string }>();
  return results.map((r) => ({ ...r, detail: JSON.parse(r.detail) as unknown }));
}

/** A tenant's chain in order, a page at a time. */
export async function chainPage(db: D1Database, tenant: string, afterChainSeq: number, limit: number): Promise<AuditRow[]> {
  const { results } = await db
    .prepare(`SELECT ${COLUMNS} FROM audit WHERE tenant = ? AND chain_seq > ? ORDER BY chain_seq LIMIT ?`)
    .bind(tenant, afterChainSeq, limit)
    .all<Omit<AuditRow, 'detail'> & { detail: string }>();
  return results.map((r) => ({ ...r, detail: JSON.parse(r.detail) as unknown }));
}
