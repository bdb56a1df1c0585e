/**
 * The global process table in D1: a mirror of every PCB's listable fields, so `ps` answers
 * without waking each Durable Object. Each process is the only writer of its own row; the upsert
 * only applies a newer version, so outbox entries delivered late or twice cannot roll a row back.
 */
import type { Statement } from '../audit/audit.ts';
import type { Pcb, ProcessState } from '../kernel/pcb.ts';

export function upsertProcessRow(pcb: Pcb): Statement {
  return {
    sql: `INSERT INTO processes (pid, tenant, ppid, name, image, state, priority, exit_code, created_at, updated_at, version, forked_from)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
          ON CONFLICT(pid) DO UPDATE SET ppid = excluded.ppid, name = excluded.name, image = excluded.image, state = excluded.state,
            priority = excluded.priority, exit_code = excluded.exit_code, updated_at = excluded.updated_at, version = excluded.version
          WHERE excluded.version > processes.version`,
    params: [pcb.pid, pcb.tenant, pcb.ppid, pcb.name, pcb.image, pcb.state, pcb.priority, pcb.exit === null ? null : String(pcb.exit.code), pcb.created_at, pcb.updated_at, pcb.version, pcb.forked_from ?? null],
  };
}

export function deleteProcessRow(pid: string): Statement {
  return { sql: 'DELETE FROM processes WHERE pid = ?', params: [pid] };
}

export interface ProcessRow {
  readonly pid: string;
  readonly ppid: string | null;
  readonly name: string;
  readonly image: string;
  readonly state: ProcessState;
  readonly priority: number;
  readonly exit_code: string | null;
  readonly created_at: number;
  readonly updated_at: number;
  readonly version: number;
  /** A fork's origin, `<pid>@<checkpoint>`; null for a spawned process. */
  readonly forked_from?: string | null;
}

export interface PsQuery {
  readonly tenant: string;
  readonly state?: ProcessState;
  readonly ppid?: string;
  readonly limit: number;
  /** The keyset position of the last row of the previous page (src/api/paging.ts). */
  readonly cursor?: { readonly at: number; readonly id: string } | undefined;
}

/** Newest first; keyset pagination on (created_at, pid). */
export async function listProcesses(db: D1Database, q: PsQuery): Promise<{ processes: ProcessRow[]; next_cursor: string | null }> {
  const where: string[] = ['tenant = ?'];
  const params: (string | number)[] = [q.tenant];
  if (q.state) {
    where.push('state = ?');
    params.push(q.state);
  }
  if (q.ppid) {
    where.push('ppid = ?');
    params.push(q.ppid);
  }
  if (q.cursor) {
    where.push('(created_at < ? OR (created_at = ? AND pid < ?))');
    params.push(q.cursor.at, q.cursor.at, q.cursor.id);
  }
  const sql = `SELECT pid, ppid, name, image, state, priority, exit_code, created_at, updated_at, version, forked_from FROM processes
    WHERE ${where.join(' AND ')} ORDER BY created_at DESC, pid DESC LIMIT ?`;
  const { results } = await db.prepare(sql).bind(...params, q.limit + 1).all<ProcessRow>();
  const page = results.slice(0, q.limit);
  const last = page.at(-1);
  return { processes: page, next_cursor: results.length > q.limit && last ? `${last.created_at}.${last.pid}` : null };
}
