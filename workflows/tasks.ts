/**
 * The bodies of a pipeline's steps: spawn a stage's process, check on it, collect its exit, open
 * and check a human gate. Each runs inside one `step.do`, so each may run more than once (a retried
 * or replayed step), and each is written to be harmless when it does:
 *
 *  - a task's pid is derived from (instance, stage, item, attempt) and its spawn key from the same,
 *    so spawning again returns the process already spawned (src/process/lifecycle.ts `spawn`);
 *  - the task row is written before the spawn and the run's status re-read after it, so a cancel
 *    that lands in between still finds the process (workflows/cancel.ts);
 *  - the result a step returns stays small: a result over INLINE_RESULT_BYTES is returned as a
 *    reference to where it lives (the process's file or exit status), read back when a template
 *    needs it (./template.ts).
 */
import { auditChain, processStub } from '../src/rpc/stubs.ts';
import type { AuditRecord } from '../src/audit/audit.ts';
import { type Grant, normalizeGrant } from '../src/kernel/capabilities.ts';
import { ERROR_CODES, type ErrorCode, type ErrorValue, KernelError, type Result, ok, toErrorValue } from '../src/kernel/errors.ts';
import { DEFAULT_QUOTAS, type ExitStatus } from '../src/kernel/pcb.ts';
import { canonicalJson, sha256Hex } from '../src/kernel/policy.ts';
import { type SpawnRequest, type SpawnSpec, childPid, resolveSpawn } from '../src/kernel/spawn.ts';
import { checkModel } from '../src/llm/index.ts';
import type { Script } from '../src/llm/scripted.ts';
import type { ApprovalStage, PipelineSpec, ProcessStage } from './spec.ts';
import { endTaskStatement, insertTaskUnlessCancelled, pipelineStatus, stageStatement, upsertStage } from './store.ts';
import { type ResultRef, type Scope, render, renderDeep } from './template.ts';

/** Results larger than this (as JSON) travel by reference, far below the 1 MiB step-result cap. */
export const INLINE_RESULT_BYTES = 64 * 1024;

/** What one pipeline run is: the Workflow's params. */
export interface PipelineParams {
  readonly tenant: string;
  readonly name: string | null;
  readonly spec: PipelineSpec;
  readonly input: unknown;
  /** The input came from outside (a webhook): tasks rendered from it are marked untrusted. */
  readonly untrusted: boolean;
}

/** The pid of one attempt of one item of one stage: the same step always names the same process. */
export function taskPid(instance: string, stage: string, item: number, attempt: number): Promise<string> {
  return childPid(`pipeline:${instance}`, `${stage}/${item}/${attempt}`);
}

/** The event a task's exit is sent as (Workflow event types: letters, digits, "-" and "_"). */
export const exitEvent = (pid: string): string => `exit-${pid}`;
export const gateEvent = (approvalId: string): string => `gate-${approvalId}`;

/**
 * Append a pipeline record to the tenant's audit chain. `subject` is a run's id (or, for a stored
 * spec, `spec:<tenant>/<name>`): audit ids are unique across tenants, and this one is derived from
 * what is recorded, so a replayed step appends nothing new.
 */
export function audit(env: Env, tenant: string, subject: string, action: string, outcome: AuditRecord['outcome'], code: string | null, detail: unknown, key: string): Promise<unknown> {
  return auditChain(env, tenant).append(tenant, [{ id: `${subject}:${key}`, tenant, pid: subject, at: Date.now(), kind: 'lifecycle', action: `pipeline_${action}`, outcome, code, detail }]);
}

/** The grants every stage is attenuated from (null: each image's own, as for an API spawn). */
export function pipelineGrants(spec: PipelineSpec): Result<Grant[] | null> {
  if (!spec.capabilities) return ok(null);
  const out: Grant[] = [];
  for (const g of spec.capabilities) {
    const n = normalizeGrant(g);
    if (!n.ok) return n;
    out.push(n.value);
  }
  return ok(out);
}

/** The spawn request of a stage once its templates are rendered. */
export function stageRequest(p: PipelineParams, stage: ProcessStage, name: string, task: string, script: Script | undefined): SpawnRequest {
  return {
    name: name.slice(0, 128),
    task,
    ...(stage.image ? { image: stage.image } : {}),
    ...((stage.model ?? p.spec.model) ? { model: stage.model ?? p.spec.model } : {}),
    ...((stage.priority ?? p.spec.priority) !== undefined ? { priority: stage.priority ?? p.spec.priority } : {}),
    ...(stage.quotas ? { quotas: stage.quotas } : {}),
    ...(stage.max_context_tokens ? { max_context_tokens: stage.max_context_tokens } : {}),
    ...(stage.tool_mode ? { tool_mode: stage.tool_mode } : {}),
    // A stage without its own grants holds the pipeline's (never its image's wider defaults).
    ...((stage.capabilities ?? p.spec.capabilities) ? { capabilities: stage.capabilities ?? p.spec.capabilities } : {}),
    ...(script ? { script } : {}),
  };
}

/** Resolve a stage's spawn the way the kernel will: grants attenuated, quotas clamped, model checked. */
export function resolveStage(env: Env, p: PipelineParams, request: SpawnRequest, ids: { pid: string; spawn_key: string; pipeline: string }, now: number): Result<SpawnSpec> {
  const grants = pipelineGrants(p.spec);
  if (!grants.ok) return grants;
  const spec = resolveSpawn(request, {
    pid: ids.pid,
    tenant: p.tenant,
    ppid: null,
    spawn_key: ids.spawn_key,
    default_model: { provider: env.LLM_PROVIDER, model: env.LLM_MODEL },
    parent_grants: grants.value,
    parent_remaining: { ...DEFAULT_QUOTAS, ...p.spec.quotas },
    untrusted: p.untrusted,
    now,
  });
  if (!spec.ok) return spec;
  const usable = checkModel(spec.value.model, env);
  if (!usable.ok) return usable;
  return ok({ ...spec.value, exit_notify: { pipeline: ids.pipeline, event: exitEvent(ids.pid) } });
}

/** Read what a reference points at, as the run's tenant. */
export function derefFor(env: Env, tenant: string) {
  return async (ref: ResultRef): Promise<unknown> => {
    const stub = processStub(env, ref.pid);
    if (ref.$ref === 'file') {
      const f = await stub.readPath(ref.path, tenant);
      if (!f.ok) throw KernelError.fromValue(f.error);
      if (f.value.type !== 'file') throw new KernelError('EINVAL', `${ref.path} of ${ref.pid} is a directory`);
      return f.value.content;
    }
    const pcb = await stub.info(tenant);
    if (!pcb.ok) throw KernelError.fromValue(pcb.error);
    return pcb.value.exit?.result ?? null;
  };
}

export type Spawned = { readonly pid: string; readonly started_at: number; readonly exited: boolean } | { readonly pid: string; readonly error: ErrorValue; readonly cancelled: boolean };
const CANCELLED: ErrorValue = { code: 'EINTR', message: 'the pipeline was cancelled' };

export interface TaskIds {
  readonly instance: string;
  readonly stage: string;
  readonly item: number;
  readonly attempt: number;
}

/**
 * Render, then record and spawn (idempotently) at once, then make sure a cancel that raced with us
 * is obeyed. The task row and the spawn go in parallel: a cancel lists the run's task rows after it
 * has marked the run cancelled, so either it finds this row (and signals the process, or finds it
 * not yet spawned and we see `cancelled` in the read after the spawn), or the row was refused
 * (`cancelled`) and we stop the process we started ourselves.
 */
export async function spawnTask(env: Env, p: PipelineParams, stage: ProcessStage, ids: TaskIds, scope: Scope): Promise<Spawned> {
  const pid = await taskPid(ids.instance, ids.stage, ids.item, ids.attempt);
  const now = Date.now();
  let request: SpawnRequest;
  try {
    const deref = derefFor(env, p.tenant);
    const task = await render(stage.task, scope, deref);
    const script = stage.script ? ((await renderDeep(stage.script, scope, deref)) as Script) : undefined;
    const label = `${p.name ?? ids.instance}/${ids.stage}${stage.for_each ? `[${ids.item}]` : ''}`;
    request = stageRequest(p, stage, label, task, script);
  } catch (e) {
    return { pid, error: toErrorValue(e), cancelled: false };
  }
  if (request.task.length > 256 * 1024) return { pid, error: { code: 'E2BIG', message: `the rendered task is ${request.task.length} characters; the limit is 262144 (pass a smaller result, or a file)` }, cancelled: false };
  const spec = resolveStage(env, p, request, { pid, spawn_key: `pipeline/${ids.instance}/${ids.stage}/${ids.item}/${ids.attempt}`, pipeline: ids.instance }, now);
  if (!spec.ok) return { pid, error: spec.error, cancelled: false };
  const begins = !stage.for_each && ids.attempt === 1 ? [stageStatement(env.DB, ids.instance, ids.stage, { status: 'running', now, items: 1 })] : [];
  const stub = processStub(env, pid);
  const [status, pcb] = await Promise.all([insertTaskUnlessCancelled(env.DB, ids.instance, { stage: ids.stage, item: ids.item, attempt: ids.attempt, pid, now }, begins), stub.spawn(spec.value)]);
  if (status === 'cancelled') {
    if (pcb.ok) await stub.signal('SIGTERM', `pipeline:${ids.instance}`, null, true);
    return { pid, error: CANCELLED, cancelled: true };
  }
  if (!pcb.ok) return { pid, error: pcb.error, cancelled: false };
  if ((await pipelineStatus(env.DB, ids.instance)) === 'cancelled') await stub.signal('SIGTERM', `pipeline:${ids.instance}`, null, true);
  const exited = pcb.value.state === 'zombie' || pcb.value.state === 'terminated';
  return { pid, started_at: pcb.value.created_at, exited };
}

/**
 * After a wait gave up (a lost event, or the deadline): has the process exited? Past the deadline it
 * is killed. `final`: the wait that gave up lasted until the deadline, so the engine's timer says
 * the deadline has come whatever this isolate's clock reads.
 */
export async function checkTask(env: Env, tenant: string, instance: string, pid: string, deadline: number, final: boolean): Promise<'exited' | 'running' | 'timed_out'> {
  const stub = processStub(env, pid);
  const pcb = await stub.info(tenant);
  if (!pcb.ok) return 'exited';
  if (pcb.value.state === 'zombie' || pcb.value.state === 'terminated') return 'exited';
  if (!final && Date.now() < deadline) return 'running';
  await stub.signal('SIGKILL', `pipeline:${instance}`, null, true);
  return 'timed_out';
}

/**
 * The item's result from its exit event alone (workflows/notify.ts sends the code and a result of at
 * most 64 KiB): a clean exit of a stage without result_file, whose result is inline. The same value
 * collectTask finds in the PCB; null when only the PCB can tell.
 */
export function collectedFromEvent(stage: ProcessStage, payload: unknown): Collected | null {
  if (stage.result_file || typeof payload !== 'object' || payload === null || !('code' in payload) || payload.code !== 0 || !('result' in payload)) return null;
  const result = payload.result ?? null;
  if (new TextEncoder().encode(JSON.stringify(result)).byteLength > INLINE_RESULT_BYTES) return null;
  return { ok: true, result };
}

/** A failed exit as an error code: the kernel's own code (EQUOTA, EFAULT …), EINTR for a signal, EIO for a non-zero exit. */
function failureCode(code: ExitStatus['code']): ErrorCode {
  if (typeof code === 'number') return 'EIO';
  return code in ERROR_CODES ? (code as ErrorCode) : 'EINTR';
}

export type Collected = { readonly ok: true; readonly result: unknown } | { readonly ok: false; readonly error: ErrorValue; readonly cancelled: boolean };

/**
 * The process has exited: its result (inline or by reference) or why it failed; the task row ends.
 * A one-process stage's end is recorded here too once it is final (no retry follows).
 */
export async function collectTask(env: Env, tenant: string, stage: ProcessStage, ids: TaskIds, pid: string, at: { timedOut: boolean; lastAttempt: boolean }): Promise<Collected> {
  const timedOut = at.timedOut;
  const stub = processStub(env, pid);
  const pcb = await stub.info(tenant);
  const outcome = await (async (): Promise<({ ok: true; result: unknown } | { ok: false; error: ErrorValue }) & { exit_code: string | null }> => {
    if (!pcb.ok) return { ok: false, error: pcb.error, exit_code: null };
    const exit: ExitStatus | null = pcb.value.exit;
    if (!exit) return { ok: false, error: { code: 'ESTATE', message: `process ${pid} has not exited` }, exit_code: null };
    const code = String(exit.code);
    if (timedOut) return { ok: false, error: { code: 'ETIMEDOUT', message: `the process ran past the stage's timeout_seconds (${stage.timeout_seconds} s) and was killed`, details: { pid } }, exit_code: code };
    if (exit.code !== 0) return { ok: false, error: { code: failureCode(exit.code), message: `process ${pid} exited with ${code}: ${exit.reason}`, details: { pid, exit } }, exit_code: code };
    if (stage.result_file) {
      const f = await stub.readPath(stage.result_file, tenant);
      if (!f.ok || f.value.type !== 'file') return { ok: false, error: f.ok ? { code: 'EINVAL', message: `${stage.result_file} is a directory` } : f.error, exit_code: code };
      const bytes = new TextEncoder().encode(f.value.content).byteLength;
      return { ok: true, result: bytes > INLINE_RESULT_BYTES ? ({ $ref: 'file', pid, path: f.value.path, bytes } satisfies ResultRef) : f.value.content, exit_code: code };
    }
    const result = exit.result ?? null;
    const bytes = new TextEncoder().encode(JSON.stringify(result)).byteLength;
    return { ok: true, result: bytes > INLINE_RESULT_BYTES ? ({ $ref: 'exit', pid, bytes } satisfies ResultRef) : result, exit_code: code };
  })();
  const cancelled = !outcome.ok && (await pipelineStatus(env.DB, ids.instance)) === 'cancelled';
  const now = Date.now();
  const collected: Collected = outcome.ok ? { ok: true, result: outcome.result } : { ok: false, error: cancelled ? CANCELLED : outcome.error, cancelled };
  // The task's end and, for a one-process stage once it is final (no retry follows), the stage's: one round trip.
  const stageEnds = !stage.for_each && (collected.ok || collected.cancelled || at.lastAttempt);
  await env.DB.batch([
    endTaskStatement(env.DB, ids.instance, {
      stage: ids.stage,
      item: ids.item,
      attempt: ids.attempt,
      status: outcome.ok ? 'complete' : cancelled ? 'cancelled' : 'failed',
      exit_code: outcome.exit_code,
      ...(outcome.ok ? { result: outcome.result } : { error: outcome.error }),
      now,
    }),
    ...(stageEnds ? [stageStatement(env.DB, ids.instance, ids.stage, { status: collected.ok ? 'complete' : cancelled ? 'cancelled' : 'failed', now, ...(collected.ok ? { result: collected.result } : { error: collected.error }) })] : []),
  ]);
  return collected;
}

// --- human gates -----------------------------------------------------------------------------------

export async function gateId(instance: string, stage: string): Promise<string> {
  return `gate_${(await sha256Hex(`${instance}/${stage}`)).slice(0, 24)}`;
}

/** Open a gate: an approval row like a process's, decided through /v1/approvals; the stage waits. */
export async function openGate(env: Env, p: PipelineParams, stage: ApprovalStage, instance: string, scope: Scope): Promise<Result<{ approval_id: string; expires_at: number }>> {
  let prompt: string;
  try {
    prompt = await render(stage.prompt, scope, derefFor(env, p.tenant));
  } catch (e) {
    return { ok: false, error: toErrorValue(e) };
  }
  const id = await gateId(instance, stage.name);
  const now = Date.now();
  const expires = now + stage.timeout_seconds * 1000;
  const args = { pipeline: instance, stage: stage.name, prompt };
  await env.DB.prepare(
    `INSERT OR IGNORE INTO approvals (id, tenant, pid, step, idx, syscall, args, args_hash, capability, reason, status, created_at, expires_at, pipeline)
     VALUES (?, ?, '', 0, 0, 'pipeline_gate', ?, ?, ?, ?, 'pending', ?, ?, ?)`,
  )
    .bind(id, p.tenant, canonicalJson(args), await sha256Hex(canonicalJson(args)), `pipeline:${p.name ?? instance}/${stage.name}`, prompt.slice(0, 2000), now, expires, instance)
    .run();
  const row = await env.DB.prepare('SELECT expires_at FROM approvals WHERE id = ?').bind(id).first<{ expires_at: number }>();
  await upsertStage(env.DB, instance, stage.name, { status: 'waiting', now, approval_id: id });
  await audit(env, p.tenant, instance, 'gate', 'asked', null, { stage: stage.name, approval_id: id, prompt }, `gate:${stage.name}`);
  return ok({ approval_id: id, expires_at: row?.expires_at ?? expires });
}

export type GateState = { readonly status: 'pending' } | { readonly status: 'approved' | 'denied' | 'expired'; readonly note: string | null; readonly by: string | null };

/** Read a gate's decision (the approval row is the truth; the event only wakes the wait). Past its expiry it expires. */
export async function checkGate(env: Env, id: string): Promise<GateState> {
  const row = await env.DB.prepare('SELECT status, note, decided_by, expires_at FROM approvals WHERE id = ?').bind(id).first<{ status: 'pending' | 'approved' | 'denied' | 'expired'; note: string | null; decided_by: string | null; expires_at: number }>();
  if (!row) return { status: 'expired', note: 'the approval request is gone', by: null };
  if (row.status !== 'pending') return { status: row.status, note: row.note, by: row.decided_by };
  if (Date.now() < row.expires_at) return { status: 'pending' };
  await env.DB.prepare("UPDATE approvals SET status = 'expired', decided_at = ? WHERE id = ? AND status = 'pending'").bind(Date.now(), id).run();
  return checkGate(env, id);
}
