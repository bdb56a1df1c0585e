/**
 * The audit log: one row per lifecycle event, signal, LLM call, syscall (allowed, refused, asked,
 * approved), capability change, approval decision and authentication failure, in D1.
 *
 * Two kinds of hash chain, both in D1's `audit` table:
 *  - **a process's own chain.** A process writes each record to its own storage (`audit_log`) in the
 *    same commit as the change it records, numbered `pid_seq` = 1, 2, 3 … (id `<pid>:<n>`). Its
 *    outbox hashes the backlog in order (`prev_hash` → `hash`, over `processChainContent`) and
 *    writes the rows to D1 in one batch with its other statements (`INSERT OR IGNORE`: a redelivered
 *    record never duplicates a row), then keeps the chain's head in its own storage. No other object
 *    is on this path, so a tenant's processes never queue behind one another.
 *  - **the tenant's chain** (`chain_seq`), appended by the tenant's AuditChain object
 *    (durable/audit-chain.ts): records that belong to no process (authentication failures, the
 *    API's memory and MCP actions, pipelines) and the **anchors** of the process chains: every
 *    ANCHOR_EVERY records, when it exits and before it is removed, a process puts its head
 *    (`pid_seq`, `hash`) into the tenant's chain as a record (kind `audit`, action `anchor`). The
 *    tenant chain's own head is kept in the AuditChain object's storage.
 * `/v1/audit/verify` checks both (docs/security.md says what each detects). The global `seq` orders
 * rows by arrival and is the API's paging cursor.
 */
import { canonicalJson, sha256Hex } from '../kernel/policy.ts';
import { preview } from '../kernel/preview.ts';

export type AuditKind = 'lifecycle' | 'syscall' | 'signal' | 'llm' | 'capability' | 'approval' | 'auth' | 'memory' | 'mcp' | 'audit';
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

/** The bytes a process chain's hash covers: every field of the row except the hashes and the tenant chain's number. */
export function processChainContent(r: AuditRecord & { readonly pid_seq: number }): string {
  return canonicalJson({ tenant: r.tenant, pid: r.pid, pid_seq: r.pid_seq, id: r.id, at: r.at, kind: r.kind, action: r.action, outcome: r.outcome, code: r.code, detail: r.detail });
}

export const GENESIS = '0'.repeat(64);

/** A process chain's head as its process keeps it, and as an anchor puts it in the tenant's chain. */
export interface ProcessChainHead {
  /** The last record delivered to D1 (0: none yet), and its hash (GENESIS for none). */
  readonly seq: number;
  readonly hash: string;
}

/** What an anchor record's `detail` holds. */
export interface AnchorDetail {
  readonly seq: number;
  readonly hash: string;
}

/**
 * Records a process delivers before it anchors its head in the tenant's chain, at the latest (it
 * also anchors when it exits and before it is removed). Between anchors, verify checks a process's
 * chain against the head the process itself keeps.
 */
export const ANCHOR_EVERY = 256;

/** The D1 statement of one process-chain row (idempotent: the row's id is unique). */
export function processRowStatement(r: AuditRecord, pidSeq: number, prevHash: string, hash: string): Statement {
  return {
    sql: 'INSERT OR IGNORE INTO audit (id, tenant, pid, pid_seq, at, kind, action, outcome, code, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    params: [r.id, r.tenant, r.pid, pidSeq, r.at, r.kind, r.action, r.outcome, r.code, JSON.stringify(r.detail), prevHash, hash],
  };
}

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
  /** The row's place in its tenant's chain, or null for a row of a process's own chain. */
  readonly chain_seq: number | null;
  /** The row's place in its process's chain, or null for a row of the tenant's chain. */
  readonly pid_seq: number | null;
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

const COLUMNS = 'seq, id, tenant, chain_seq, pid_seq, pid, at, kind, action, outcome, code, detail, prev_hash, hash';

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

/** Every process chain of a tenant in order (by pid, then pid_seq), a page at a time, after a (pid, pid_seq) position. */
export async function processChainPage(db: D1Database, tenant: string, after: { pid: string; seq: number }, limit: number): Promise<(AuditRow & { pid_seq: number })[]> {
  const { results } = await db
    .prepare(`SELECT ${COLUMNS} FROM audit WHERE tenant = ? AND pid_seq IS NOT NULL AND (pid > ? OR (pid = ? AND pid_seq > ?)) ORDER BY pid, pid_seq LIMIT ?`)
    .bind(tenant, after.pid, after.pid, after.seq, limit)
    .all<Omit<AuditRow, 'detail'> & { detail: string; pid_seq: number }>();
  return results.map((r) => ({ ...r, detail: JSON.parse(r.detail) as unknown }));
}
