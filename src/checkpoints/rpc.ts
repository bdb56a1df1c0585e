/**
 * The checkpoint operations a process's Durable Object answers over RPC (from the API and from
 * its own syscalls), as one discriminated union, so the object class gains two methods, not nine.
 */
import { type Grant, normalizeGrant } from '../kernel/capabilities.ts';
import { KernelError, type Result } from '../kernel/errors.ts';
import type { Pcb, Quotas } from '../kernel/pcb.ts';
import { childPid, remainingQuotas } from '../kernel/spawn.ts';
import type { ProcessRuntime } from '../process/runtime.ts';
import type { CheckpointOp, ForkInput } from './contract.ts';
export type { CheckpointOp, ForkRequest } from './contract.ts';
export { ForkRequestSchema } from './contract.ts';
import { forkGrants } from './policy.ts';
import { pcbOf } from './reader.ts';
import type { CheckpointService } from './service.ts';
import { manifestKey, prefixOf } from './store.ts';
import { TRACE_FORMAT, type Trace, type TraceStore } from './trace.ts';
import { META } from '../process/meta.ts';

export interface ForkTarget {
  adoptFork(input: ForkInput): Promise<Result<Pcb>>;
}

export async function runCheckpointOp(svc: CheckpointService, rt: ProcessRuntime, op: CheckpointOp, target: (pid: string) => ForkTarget, traces: TraceStore): Promise<unknown> {
  switch (op.op) {
    case 'trace':
      return exportTrace(rt, traces);
    case 'create':
      return svc.create(op.label, 'api');
    case 'list':
      return { ...svc.list(op.limit, op.after), policy: svc.autoPolicy() };
    case 'get':
      return svc.manifest(op.id);
    case 'diff':
      return svc.diff(op.from, op.to);
    case 'delete':
      return svc.delete(op.id);
    case 'restore':
      return svc.restore(op.id, op.by);
    case 'digest':
      return { digest: await svc.digestNow() };
    case 'fork':
      return fork(svc, rt, op, target);
  }
}

/**
 * The fork syscall: a child of the calling process, at a pid derived from the journal entry (the
 * same entry always names the same fork, so running it again after a crash adopts the same one).
 * It is recorded as a child before it exists, like spawn, so its exit is never lost.
 */
export async function forkFromSyscall(svc: CheckpointService, rt: ProcessRuntime, ref: string | null, task: string | null, callKey: string, target: (pid: string) => ForkTarget): Promise<{ pid: string; forked_from: string }> {
  const parent = rt.mustPcb();
  const checkpoint = svc.resolve(ref);
  const pid = await childPid(parent.pid, `fork/${callKey}`);
  const lineage = [{ pid: parent.pid, max_tokens: parent.quotas.max_tokens }, ...(rt.store.getMeta(META.lineage) ?? [])];
  rt.store.children.add(pid, `${parent.name}-fork`, `fork/${callKey}`, rt.now);
  try {
    const pcb = await fork(svc, rt, { op: 'fork', id: checkpoint.id, by: parent.pid, request: { name: `${parent.name}-fork`, ...(task ? { task } : {}) }, pid, ppid: parent.pid, spawn_key: `${parent.pid}/fork/${callKey}`, lineage }, target);
    return { pid: pcb.pid, forked_from: pcb.forked_from ?? `${parent.pid}@${checkpoint.id}` };
  } catch (e) {
    rt.store.children.remove(pid);
    throw e;
  }
}

async function fork(svc: CheckpointService, rt: ProcessRuntime, op: Extract<CheckpointOp, { op: 'fork' }>, target: (pid: string) => ForkTarget): Promise<Pcb> {
  const manifest = await svc.manifest(op.id);
  const atCheckpoint = pcbOf(await svc.load({ ...manifest, tables: manifest.tables.filter((t) => t.name === 'pcb') }));
  if (!atCheckpoint) throw new KernelError('EIO', `checkpoint ${op.id} holds no PCB`);
  const live = rt.mustPcb();
  let requested: Grant[] | null = null;
  if (op.request.capabilities) {
    requested = [];
    for (const input of op.request.capabilities) {
      const g = normalizeGrant(input);
      if (!g.ok) throw KernelError.fromValue(g.error);
      requested.push(g.value);
    }
  }
  // The original's grants now bound the fork, whatever the checkpoint held.
  const grants = forkGrants(atCheckpoint.capabilities, live.capabilities, requested, rt.now);
  if (!grants.ok) throw KernelError.fromValue(grants.error);
  // A fork made by a process is its child: it never gets more than the parent has left.
  const quotas: Quotas = op.ppid ? clamp(atCheckpoint.quotas, remainingQuotas(live, rt.now)) : atCheckpoint.quotas;
  const model = typeof op.request.model === 'string' ? { ...atCheckpoint.model, model: op.request.model } : op.request.model;
  const forkedFrom = `${live.pid}@${op.id}`;
  const r = await target(op.pid).adoptFork({
    manifest_key: manifestKey(prefixOf(manifest.tenant, manifest.pid), op.id),
    pid: op.pid,
    tenant: live.tenant,
    ppid: op.ppid,
    forked_from: forkedFrom,
    spawn_key: op.spawn_key,
    capabilities: grants.value,
    quotas,
    ...(op.request.name ? { name: op.request.name } : {}),
    ...(op.request.task ? { task: op.request.task } : {}),
    ...(model ? { model } : {}),
    ...(op.request.priority !== undefined ? { priority: op.request.priority } : {}),
    ...(op.lineage ? { lineage: [...op.lineage] } : {}),
  });
  if (!r.ok) throw KernelError.fromValue(r.error);
  rt.store.transaction(() => {
    rt.emit('forked', { checkpoint: op.id, child: r.value.pid, by: op.by });
    rt.audit('lifecycle', 'fork', 'ok', null, { checkpoint: op.id, fork: r.value.pid, by: op.by, capabilities: grants.value });
  });
  // From the API the records go out now; from a syscall, with the step's own commit.
  if (op.ppid === null) await rt.settle();
  return r.value;
}

/** The process's run as a trace file: its spawn, every LLM call with its step, every syscall result. */
export function exportTrace(rt: ProcessRuntime, traces: TraceStore): Trace {
  const pcb = rt.mustPcb();
  const image = rt.store.getMeta(META.image);
  const syscalls = rt.store.sql
    .exec<{ step: number; idx: number; name: string; args: string; result: string }>("SELECT step, idx, name, args, result FROM journal WHERE status = 'done' ORDER BY step, idx")
    .toArray()
    .map((r) => ({ step: r.step, idx: r.idx, name: r.name, args: (JSON.parse(r.args) as { args?: unknown }).args ?? null, result: JSON.parse(r.result) as unknown }));
  return {
    format: TRACE_FORMAT,
    pid: pcb.pid,
    spawn: { name: pcb.name, task: pcb.task, image: pcb.image, model: { provider: pcb.model.provider, model: pcb.model.model }, tool_mode: image?.tool_mode ?? 'native', max_context_tokens: pcb.max_context_tokens },
    steps: traces.steps(),
    syscalls,
    exit: pcb.exit,
  };
}

function clamp(q: Quotas, limit: Quotas): Quotas {
  return { max_steps: Math.min(q.max_steps, limit.max_steps), max_tokens: Math.min(q.max_tokens, limit.max_tokens), max_wall_seconds: Math.min(q.max_wall_seconds, limit.max_wall_seconds) };
}
