/**
 * Starting, reading, cancelling pipelines and deciding their gates: what the API (src/api/pipelines.ts)
 * and the webhook route call. Every operation is scoped to a tenant: another tenant's pipeline does
 * not exist for the caller (ENOENT), like another tenant's pid.
 *
 * Start: the D1 row is written first (queued), then the Workflow instance is created with the same
 * id, so the instance always finds its row; an instance that cannot be created leaves the row failed.
 * Cancel: the row becomes `cancelled` first (spawn steps re-read it, see ./tasks.ts), the instance
 * is terminated, then every live task's process is sent SIGTERM with cascade.
 */
import { processStub } from '../src/rpc/stubs.ts';
import { type ErrorValue, KernelError, toErrorValue } from '../src/kernel/errors.ts';
import { randomPid } from '../src/kernel/spawn.ts';
import { sha256Hex } from '../src/kernel/policy.ts';
import type { PipelineSpec } from './spec.ts';
import { ENDED, type PipelineStatus, type StageRow, type TaskRow, insertPipeline, liveTasks, readPipeline, setPipelineStatus } from './store.ts';
import { type PipelineParams, audit, gateEvent, resolveStage, stageRequest } from './tasks.ts';

export const PIPELINE_ID = /^pl[0-9a-z]{20}$/;

/** A fresh pipeline id, or one derived from an idempotency key (a webhook delivery starts one run). */
export async function pipelineId(key?: string): Promise<string> {
  if (!key) return `pl${randomPid().slice(1)}`;
  const hex = await sha256Hex(key);
  return `pl${BigInt(`0x${hex.slice(0, 26)}`).toString(36).padStart(20, '0').slice(-20)}`;
}

/**
 * Reject, before anything runs, a spec whose stages could never spawn: an unknown image, a grant
 * the pipeline does not hold, a model the deployment cannot call. Templates are checked by the schema.
 */
export function checkSpawnable(env: Env, tenant: string, spec: PipelineSpec): void {
  const p: PipelineParams = { tenant, name: null, spec, input: null, untrusted: false };
  const issues: { path: string[]; message: string; code: string }[] = [];
  spec.stages.forEach((stage, i) => {
    if (stage.type !== 'process') return;
    const r = resolveStage(env, p, stageRequest(p, stage, stage.name, stage.task, stage.script), { pid: 'p00000000000000000000', spawn_key: 'check', pipeline: 'check' }, Date.now());
    if (!r.ok) issues.push({ path: ['stages', String(i)], message: `stage "${stage.name}": ${r.error.message}`, code: r.error.code });
  });
  if (issues.length) throw new KernelError('EINVAL', `invalid request body: ${issues.map((x) => x.message).join('; ')}`, { issues });
}

export interface StartRequest {
  readonly tenant: string;
  readonly name: string | null;
  readonly spec: PipelineSpec;
  readonly input: unknown;
  readonly by: string;
  /** An idempotency key: the same key starts the same run once. */
  readonly key?: string;
  /** The input came from outside (a webhook): every task rendered from it is untrusted content. */
  readonly untrusted?: boolean;
}

export async function startPipeline(env: Env, req: StartRequest): Promise<{ id: string; status: PipelineStatus; created: boolean }> {
  checkSpawnable(env, req.tenant, req.spec);
  const id = await pipelineId(req.key);
  const now = Date.now();
  const existing = await env.DB.prepare('SELECT tenant, status FROM pipelines WHERE id = ?').bind(id).first<{ tenant: string; status: PipelineStatus }>();
  if (existing) {
    if (existing.tenant !== req.tenant) throw new KernelError('EEXIST', 'that idempotency key names another run');
    return { id, status: existing.status, created: false };
  }
  await insertPipeline(env.DB, { id, tenant: req.tenant, name: req.name, spec: JSON.stringify(req.spec), input: JSON.stringify(req.input ?? null), status: 'queued', created_at: now, created_by: req.by }).run();
  const params: PipelineParams = { tenant: req.tenant, name: req.name, spec: req.spec, input: req.input ?? null, untrusted: req.untrusted ?? false };
  try {
    await env.PIPELINES.create({ id, params });
  } catch (e) {
    await setPipelineStatus(env.DB, id, 'failed', Date.now(), { code: 'EAGAIN', message: `the Workflow instance could not be created: ${(e as Error).message}` });
    throw new KernelError('EAGAIN', 'the pipeline could not be started (Workflows refused the instance); retry shortly', { id });
  }
  await audit(env, req.tenant, id, 'start', 'ok', null, { name: req.name, stages: req.spec.stages.map((s) => s.name), by: req.by }, 'start');
  return { id, status: 'queued', created: true };
}

export interface TaskView {
  readonly item: number;
  readonly attempt: number;
  readonly pid: string;
  readonly status: TaskRow['status'];
  readonly exit_code: string | null;
  readonly result: unknown;
  readonly error: unknown;
  readonly started_at: number;
  readonly ended_at: number | null;
}

export interface PipelineView {
  readonly id: string;
  readonly name: string | null;
  readonly status: PipelineStatus;
  readonly error: unknown;
  readonly input: unknown;
  readonly created_at: number;
  readonly updated_at: number;
  readonly ended_at: number | null;
  readonly created_by: string;
  readonly stages: readonly {
    readonly name: string;
    readonly type: 'process' | 'approval';
    readonly status: StageRow['status'];
    readonly items: number | null;
    readonly approval_id: string | null;
    readonly result: unknown;
    readonly error: unknown;
    readonly started_at: number | null;
    readonly ended_at: number | null;
    readonly tasks: readonly TaskView[];
  }[];
  /** The Workflow instance's own status (null if it cannot be read). */
  readonly workflow: { readonly status: string; readonly error: string | null } | null;
}

const parsed = (s: string | null): unknown => (s === null ? null : (JSON.parse(s) as unknown));

export async function viewPipeline(env: Env, tenant: string, id: string): Promise<PipelineView> {
  const found = PIPELINE_ID.test(id) ? await readPipeline(env.DB, tenant, id) : null;
  if (!found) throw new KernelError('ENOENT', `no pipeline ${id.slice(0, 64)}`);
  const { row } = found;
  let workflow: PipelineView['workflow'] = null;
  try {
    const s = await (await env.PIPELINES.get(id)).status();
    workflow = { status: s.status, error: s.error ? `${s.error.name}: ${s.error.message}` : null };
  } catch {
    workflow = null;
  }
  let status = row.status;
  let error = parsed(row.error);
  // The engine gave up on the run without its last step (an error the steps did not catch).
  if ((status === 'queued' || status === 'running') && (workflow?.status === 'errored' || workflow?.status === 'terminated')) {
    status = 'failed';
    error = { code: 'EFAULT', message: `the Workflow instance ${workflow.status}${workflow.error ? `: ${workflow.error}` : ''}` };
  }
  const spec = JSON.parse(row.spec) as PipelineSpec;
  const stageRows = new Map(found.stages.map((s) => [s.stage, s]));
  return {
    id: row.id,
    name: row.name,
    status,
    error,
    input: parsed(row.input),
    created_at: row.created_at,
    updated_at: row.updated_at,
    ended_at: row.ended_at,
    created_by: row.created_by,
    stages: spec.stages.map((s) => {
      const r = stageRows.get(s.name);
      return {
        name: s.name,
        type: s.type,
        status: r?.status ?? 'pending',
        items: r?.items ?? null,
        approval_id: r?.approval_id ?? null,
        result: parsed(r?.result ?? null),
        error: parsed(r?.error ?? null),
        started_at: r?.started_at ?? null,
        ended_at: r?.ended_at ?? null,
        tasks: found.tasks
          .filter((t) => t.stage === s.name)
          .sort((a, b) => a.item - b.item || a.attempt - b.attempt)
          .map((t) => ({ item: t.item, attempt: t.attempt, pid: t.pid, status: t.status, exit_code: t.exit_code, result: parsed(t.result), error: parsed(t.error), started_at: t.started_at, ended_at: t.ended_at })),
      };
    }),
    workflow,
  };
}

/** SIGTERM (cascade) to every live process of a run; their tasks end as cancelled. */
export async function stopLiveTasks(env: Env, tenant: string, id: string): Promise<{ signalled: string[]; errors: ErrorValue[] }> {
  const signalled: string[] = [];
  const errors: ErrorValue[] = [];
  for (const t of await liveTasks(env.DB, id)) {
    const r = await processStub(env, t.pid).signal('SIGTERM', `pipeline:${id}`, tenant, true);
    if (r.ok || r.error.code === 'ESTATE' || r.error.code === 'ENOENT') signalled.push(t.pid);
    else errors.push(r.error);
    await env.DB.prepare("UPDATE pipeline_tasks SET status = 'cancelled', ended_at = ? WHERE pipeline = ? AND pid = ? AND status = 'running'").bind(Date.now(), id, t.pid).run();
  }
  return { signalled, errors };
}

/** Cancel a run: no new process starts, the instance stops, every live process gets SIGTERM (cascade). */
export async function cancelPipeline(env: Env, tenant: string, id: string, by: string): Promise<{ id: string; signalled: string[]; errors: ErrorValue[] }> {
  const found = PIPELINE_ID.test(id) ? await env.DB.prepare('SELECT status FROM pipelines WHERE id = ? AND tenant = ?').bind(id, tenant).first<{ status: PipelineStatus }>() : null;
  if (!found) throw new KernelError('ENOENT', `no pipeline ${id.slice(0, 64)}`);
  if (ENDED.includes(found.status)) throw new KernelError('ESTATE', `pipeline ${id} has already ended (${found.status})`, { status: found.status });
  await setPipelineStatus(env.DB, id, 'cancelled', Date.now(), { code: 'EINTR', message: `cancelled by ${by}` });
  try {
    await (await env.PIPELINES.get(id)).terminate();
  } catch {
    // already over: nothing to stop
  }
  const { signalled, errors } = await stopLiveTasks(env, tenant, id);
  await env.DB.batch([
    env.DB.prepare("UPDATE pipeline_stages SET status = 'cancelled', ended_at = ? WHERE pipeline = ? AND status IN ('pending', 'running', 'waiting')").bind(Date.now(), id),
    env.DB.prepare("UPDATE approvals SET status = 'expired', decided_at = ?, note = 'the pipeline was cancelled' WHERE pipeline = ? AND status = 'pending'").bind(Date.now(), id),
  ]);
  await audit(env, tenant, id, 'cancel', 'ok', null, { by, signalled, errors }, 'cancel');
  return { id, signalled, errors };
}

/**
 * Decide a pipeline's gate (POST /v1/approvals/:id on an approval whose `pipeline` is set). The row
 * is the decision; the event only wakes the waiting stage, which re-reads the row anyway.
 */
export async function decideGate(env: Env, a: { id: string; tenant: string; pipeline: string; decision: 'approve' | 'deny'; note: string; by: string }): Promise<void> {
  const status = a.decision === 'approve' ? 'approved' : 'denied';
  const r = await env.DB.prepare("UPDATE approvals SET status = ?, grant_kind = 'once', note = ?, decided_at = ?, decided_by = ? WHERE id = ? AND tenant = ? AND status = 'pending'")
    .bind(status, a.note, Date.now(), a.by, a.id, a.tenant)
    .run();
  if (!r.meta.changes) throw new KernelError('ESTATE', `approval ${a.id} is no longer pending`);
  try {
    await (await env.PIPELINES.get(a.pipeline)).sendEvent({ type: gateEvent(a.id), payload: { decision: a.decision } });
  } catch (e) {
    // The stage re-reads the approval when its wait ends (PIPELINE_RECHECK_SECONDS): late, not lost.
    await audit(env, a.tenant, a.pipeline, 'gate_event', 'error', 'EIO', { approval_id: a.id, error: toErrorValue(e) }, `gate_event:${a.id}`);
  }
}
