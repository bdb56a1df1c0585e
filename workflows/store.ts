/**
 * The pipeline tables in D1 (migrations/0006_pipelines.sql): what the API reads and lists. The
 * Workflow instance writes them from inside its steps, so every write may run twice (a step
 * retried or replayed): each one is an idempotent upsert keyed by (pipeline, stage, item, attempt),
 * and a run that has ended is never moved back (`status IN (...)` guards).
 */
import type { ErrorValue } from '../src/kernel/errors.ts';

export const PIPELINE_STATUSES = ['queued', 'running', 'complete', 'failed', 'cancelled'] as const;
export type PipelineStatus = (typeof PIPELINE_STATUSES)[number];
export const STAGE_STATUSES = ['pending', 'running', 'waiting', 'complete', 'failed', 'skipped', 'denied', 'cancelled'] as const;
export type StageStatus = (typeof STAGE_STATUSES)[number];
export type TaskStatus = 'running' | 'complete' | 'failed' | 'cancelled';

export const ENDED: readonly PipelineStatus[] = ['complete', 'failed', 'cancelled'];

export interface PipelineRow {
  readonly id: string;
  readonly tenant: string;
  readonly name: string | null;
  readonly spec: string;
  readonly input: string;
  readonly status: PipelineStatus;
  readonly error: string | null;
  readonly created_at: number;
  readonly updated_at: number;
  readonly ended_at: number | null;
  readonly created_by: string;
}

export interface StageRow {
  readonly stage: string;
  readonly status: StageStatus;
  readonly items: number | null;
  readonly approval_id: string | null;
  readonly result: string | null;
  readonly error: string | null;
  readonly started_at: number | null;
  readonly ended_at: number | null;
}

export interface TaskRow {
  readonly stage: string;
  readonly item: number;
  readonly attempt: number;
  readonly pid: string;
  readonly status: TaskStatus;
  readonly exit_code: string | null;
  readonly result: string | null;
  readonly error: string | null;
  readonly started_at: number;
  readonly ended_at: number | null;
}

const json = (v: unknown): string | null => (v === undefined ? null : JSON.stringify(v));

export function insertPipeline(db: D1Database, row: Omit<PipelineRow, 'error' | 'ended_at' | 'updated_at'>): D1PreparedStatement {
  return db
    .prepare('INSERT INTO pipelines (id, tenant, name, spec, input, status, created_at, updated_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
    .bind(row.id, row.tenant, row.name, row.spec, row.input, row.status, row.created_at, row.created_at, row.created_by);
}

export async function pipelineStatus(db: D1Database, id: string): Promise<PipelineStatus | null> {
  return (await db.prepare('SELECT status FROM pipelines WHERE id = ?').bind(id).first<{ status: PipelineStatus }>())?.status ?? null;
}

/** Move a run that has not ended: queued → running, or to its end. */
export async function setPipelineStatus(db: D1Database, id: string, status: PipelineStatus, now: number, error: ErrorValue | null = null): Promise<boolean> {
  const ended = ENDED.includes(status) ? now : null;
  const r = await db
    .prepare("UPDATE pipelines SET status = ?, error = ?, updated_at = ?, ended_at = ? WHERE id = ? AND status IN ('queued', 'running')")
    .bind(status, json(error ?? undefined), now, ended, id)
    .run();
  return r.meta.changes > 0;
}

export interface StageUpdate {
  readonly status: StageStatus;
  readonly now: number;
  readonly items?: number | null;
  readonly approval_id?: string | null;
  readonly result?: unknown;
  readonly error?: ErrorValue | null;
}

export function stageStatement(db: D1Database, pipeline: string, stage: string, s: StageUpdate): D1PreparedStatement {
  const ended = s.status === 'running' || s.status === 'waiting' || s.status === 'pending' ? null : s.now;
  return db
    .prepare(
      `INSERT INTO pipeline_stages (pipeline, stage, status, items, approval_id, result, error, started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (pipeline, stage) DO UPDATE SET status = excluded.status, items = COALESCE(excluded.items, items), approval_id = COALESCE(excluded.approval_id, approval_id),
         result = excluded.result, error = excluded.error, ended_at = excluded.ended_at`,
    )
    .bind(pipeline, stage, s.status, s.items ?? null, s.approval_id ?? null, json(s.result), json(s.error ?? undefined), s.now, ended);
}

export async function upsertStage(db: D1Database, pipeline: string, stage: string, s: StageUpdate): Promise<void> {
  await stageStatement(db, pipeline, stage, s).run();
}

/**
 * The task row a spawn writes before it spawns (cancel lists it, so no process escapes a cancel),
 * unless the run has been cancelled; with the run's status read in the same round trip.
 */
export async function insertTaskUnlessCancelled(db: D1Database, pipeline: string, t: { stage: string; item: number; attempt: number; pid: string; now: number }, also: D1PreparedStatement[] = []): Promise<PipelineStatus | null> {
  const [, ...rest] = await db.batch([
    db
      .prepare(
        "INSERT OR IGNORE INTO pipeline_tasks (pipeline, stage, item, attempt, pid, status, started_at) SELECT ?, ?, ?, ?, ?, 'running', ? WHERE EXISTS (SELECT 1 FROM pipelines WHERE id = ? AND status != 'cancelled')",
      )
      .bind(pipeline, t.stage, t.item, t.attempt, t.pid, t.now, pipeline),
    ...also,
    db.prepare('SELECT status FROM pipelines WHERE id = ?').bind(pipeline),
  ]);
  return ((rest.at(-1)?.results ?? [])[0] as { status: PipelineStatus } | undefined)?.status ?? null;
}

export function endTaskStatement(db: D1Database, pipeline: string, t: { stage: string; item: number; attempt: number; status: TaskStatus; exit_code: string | null; result?: unknown; error?: ErrorValue | null; now: number }): D1PreparedStatement {
  return db
    .prepare("UPDATE pipeline_tasks SET status = ?, exit_code = ?, result = ?, error = ?, ended_at = ? WHERE pipeline = ? AND stage = ? AND item = ? AND attempt = ? AND status = 'running'")
    .bind(t.status, t.exit_code, json(t.result), json(t.error ?? undefined), t.now, pipeline, t.stage, t.item, t.attempt);
}

export async function liveTasks(db: D1Database, pipeline: string): Promise<{ pid: string; stage: string; item: number; attempt: number }[]> {
  const { results } = await db.prepare("SELECT pid, stage, item, attempt FROM pipeline_tasks WHERE pipeline = ? AND status = 'running'").bind(pipeline).all<{ pid: string; stage: string; item: number; attempt: number }>();
  return results;
}

export async function readPipeline(db: D1Database, tenant: string, id: string): Promise<{ row: PipelineRow; stages: StageRow[]; tasks: TaskRow[] } | null> {
  const row = await db.prepare('SELECT * FROM pipelines WHERE id = ? AND tenant = ?').bind(id, tenant).first<PipelineRow>();
  if (!row) return null;
  const [stages, tasks] = await db.batch([
    db.prepare('SELECT stage, status, items, approval_id, result, error, started_at, ended_at FROM pipeline_stages WHERE pipeline = ?').bind(id),
    db.prepare('SELECT stage, item, attempt, pid, status, exit_code, result, error, started_at, ended_at FROM pipeline_tasks WHERE pipeline = ? ORDER BY stage, item, attempt').bind(id),
  ]);
  return { row, stages: (stages?.results ?? []) as StageRow[], tasks: (tasks?.results ?? []) as TaskRow[] };
}

export interface ListQuery {
  readonly tenant: string;
  readonly status?: PipelineStatus;
  readonly limit: number;
  /** "<created_at>.<id>" from a previous page. */
  readonly cursor?: string;
}

/** Newest first; keyset pagination on (created_at, id), like the process table. */
export async function listPipelines(db: D1Database, q: ListQuery): Promise<{ rows: Omit<PipelineRow, 'spec' | 'input'>[]; next_cursor: string | null }> {
  const where = ['tenant = ?'];
  const params: (string | number)[] = [q.tenant];
  if (q.status) {
    where.push('status = ?');
    params.push(q.status);
  }
  if (q.cursor) {
    const dot = q.cursor.indexOf('.');
    const at = Number(q.cursor.slice(0, dot));
    where.push('(created_at < ? OR (created_at = ? AND id < ?))');
    params.push(at, at, q.cursor.slice(dot + 1));
  }
  const { results } = await db
    .prepare(`SELECT id, tenant, name, status, error, created_at, updated_at, ended_at, created_by FROM pipelines WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC LIMIT ?`)
    .bind(...params, q.limit + 1)
    .all<Omit<PipelineRow, 'spec' | 'input'>>();
  const page = results.slice(0, q.limit);
  const last = page.at(-1);
  return { rows: page, next_cursor: results.length > q.limit && last ? `${last.created_at}.${last.id}` : null };
}
