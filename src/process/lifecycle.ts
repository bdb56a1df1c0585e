/**
 * The lifecycle of a process: spawn, signals, exit, children and reaping, wake-ups, and the record
 * of a completed syscall. Each function works on the ProcessCore (./core.ts) inside the caller's
 * synchronous commit, and every state change goes through `apply` (src/kernel/state.ts), saved
 * together with its event, its audit record and its outbox entries.
 */
import type { Statement } from '../audit/audit.ts';
import { type ErrorValue, type Result, fail, ok, toErrorValue } from '../kernel/errors.ts';
import { isOutsideSender } from '../kernel/ipc.ts';
import { type ExitStatus, LIVE_STATES, type Pcb, type Signal, ZERO_USAGE } from '../kernel/pcb.ts';
import type { ExitNotify, SpawnSpec } from '../kernel/spawn.ts';
import type { SyscallResult } from '../kernel/syscalls.ts';
import { EXIT_NOTICE_RESULT_BYTES, type ProcessCore } from './core.ts';
import { META } from './meta.ts';
import { DEFAULT_TERM_GRACE_MS, beginTermination } from './signals.ts';
import type { JournalRow } from './store.ts';

/** Meta key: the pipeline to tell when this process exits. */

function untrustedSource(argsJson: string): string {
  try {
    return new URL((JSON.parse(argsJson) as { args: { url: string } }).args.url).host;
  } catch {
    return 'the network';
  }
}

/** A message received from outside the process world (HTTP, a webhook) is untrusted content. */
function outsideSource(value: unknown): string | null {
  const from = (value as { from?: unknown } | null)?.from;
  return typeof from === 'string' && isOutsideSender(from) ? `a message from ${from}` : null;
}

/**
 * Create the process in one commit: its PCB, settings, task page, event, audit record and a run
 * timer due now. The alarm is not armed here: the caller arms it once what must precede the first
 * step is in (durable/agent-process.ts: the process-table row and the image's tools), and a new
 * instance arms it from the timer if this one dies first. `created` is false when a spawn with the
 * same key made the process already (a retried request), which is then answered as it is.
 */
export function spawn(rt: ProcessCore, spec: SpawnSpec): Result<{ pcb: Pcb; created: boolean }> {
  const existing = rt.pcb();
  if (existing) {
    if (rt.store.getMeta(META.spawnKey) === spec.spawn_key) return ok({ pcb: existing, created: false });
    return fail('EEXIST', `process ${spec.pid} already exists`, { pid: spec.pid });
  }
  const now = rt.now;
  rt.store.transaction(() => {
    const pcb: Pcb = {
      pid: spec.pid,
      tenant: spec.tenant,
      ppid: spec.ppid,
      name: spec.name,
      image: spec.image,
      task: spec.task,
      state: 'ready',
      priority: spec.priority,
      model: spec.model,
      capabilities: [...spec.capabilities],
      quotas: spec.quotas,
      max_context_tokens: spec.max_context_tokens,
      usage: ZERO_USAGE,
      wait: null,
      stopped_from: null,
      exit: null,
      created_at: now,
      updated_at: now,
      version: 1,
    };
    rt.save(pcb);
    rt.store.setMeta(META.spawnKey, spec.spawn_key);
    if (spec.lineage) rt.store.setMeta(META.lineage, spec.lineage);
    if (spec.exit_notify) rt.store.setMeta(META.exitNotify, spec.exit_notify);
    if (spec.checkpoints) rt.store.setMeta(META.ckptAuto, spec.checkpoints);
    rt.store.setMeta(META.image, { system_prompt: spec.system_prompt, tool_mode: spec.tool_mode, script: spec.script });
    rt.addPage(0, { kind: 'task', text: spec.task, ...(spec.untrusted_task ? { untrusted: true, source: 'parent context' } : {}) });
    rt.emit('spawned', { pid: spec.pid, ppid: spec.ppid, name: spec.name, image: spec.image, model: spec.model, priority: spec.priority, quotas: spec.quotas });
    rt.audit('lifecycle', 'spawn', 'ok', null, { ppid: spec.ppid, name: spec.name, image: spec.image, model: spec.model, capabilities: spec.capabilities, untrusted_task: spec.untrusted_task });
    rt.store.setTimer('run', now);
  });
  return ok({ pcb: rt.mustPcb(), created: true });
}

/**
 * List a new process in the process table, so that `ps` shows it once its spawn has answered, with
 * `reads` in the same D1 batch (what the process must read from D1 before its first step rides
 * along: one round trip per spawn). Returns their results, or null if D1 failed: the failure is an
 * event, and the first delivery writes the row (it stays stale until then).
 */
export async function listNew(rt: ProcessCore, reads: readonly Statement[]): Promise<D1Result[] | null> {
  try {
    return await rt.flushTable(reads);
  } catch (e) {
    rt.store.transaction(() => rt.emit('outbox_retry', { attempts: 1, error: toErrorValue(e) }));
    return null;
  }
}

export function signal(rt: ProcessCore, sig: Signal, from: string, cascade = false): Result<Pcb> {
  const pcb = rt.pcb();
  if (!pcb) return fail('ENOENT', 'no such process');
  if (!LIVE_STATES.has(pcb.state)) {
    return fail('ESTATE', `process ${pcb.pid} has already exited (${pcb.state}); it cannot be signalled`, { pid: pcb.pid, state: pcb.state });
  }
  let result: Result<Pcb> = ok(pcb);
  rt.store.transaction(() => {
    rt.emit('signal', { signal: sig, from, ...(cascade ? { cascade } : {}) });
    // The process group: the signal goes on to every live child (and from each, to its children),
    // through the outbox, so it reaches the whole subtree even if this object dies now.
    if (cascade) for (const c of rt.store.children.all()) if (c.status === 'live') rt.send({ kind: 'signal', pid: c.pid, signal: sig, from, cascade: true });
    switch (sig) {
      case 'SIGKILL':
        rt.exit({ code: 'SIGKILL', reason: `killed by ${from}` });
        break;
      case 'SIGTERM':
        // A stopped process cannot clean up: it ends now. Any other gets its clean-up step (./signals.ts).
        if (pcb.state === 'stopped') rt.exit({ code: 'SIGTERM', reason: `terminated by ${from}` });
        else beginTermination(rt, from, rt.deps.termGraceMs ?? DEFAULT_TERM_GRACE_MS);
        break;
      case 'SIGSTOP':
        result = rt.tryApply({ type: 'stop' });
        break;
      case 'SIGCONT':
        result = rt.tryApply({ type: 'cont' });
        if (result.ok) rt.recheckWait();
        // Resumed as ready (it was stopped mid-step): run now, not when the step's lease runs out.
        if (result.ok && rt.mustPcb().state === 'ready') rt.store.setTimer('run', rt.now);
        break;
    }
    if (result.ok) rt.audit('signal', sig, 'ok', null, { from });
    else rt.audit('signal', sig, 'refused', result.error.code, { from, state: pcb.state });
  });
  return result.ok ? ok(rt.mustPcb()) : result;
}

/**
 * End the process: zombie until its parent waits (or terminated at once if it has none).
 * Runs inside the caller's synchronous commit.
 */
export function exit(rt: ProcessCore, status: ExitStatus): void {
  const pcb = rt.apply({ type: 'exit', status });
  const blocked = rt.store.blockedEntry();
  if (blocked) rt.completeEntry(blocked, { ok: false, error: { code: 'EINTR', message: 'the process exited while this call was blocked' } });
  for (const t of ['run', 'wake', 'wait_timeout', 'fault', 'term'] as const) rt.store.clearTimer(t);
  rt.store.setMeta(META.termPending, null);
  rt.emit('exit', status);
  rt.audit('lifecycle', 'exit', typeof status.code === 'number' && status.code === 0 ? 'ok' : 'error', String(status.code), status);
  for (const child of rt.store.children.all()) {
    if (child.status === 'exited') {
      rt.store.children.setStatus(child.pid, 'reaped', null);
      rt.send({ kind: 'reap', child: child.pid, by: pcb.pid });
    } else if (child.status === 'live') {
      // An orphan: the tenant's init process becomes its parent (./init.ts).
      rt.send({ kind: 'orphan', child: child.pid, name: child.name, tenant: pcb.tenant, parent: pcb.pid });
    }
  }
  // An exited process receives no more topic messages.
  rt.send({ kind: 'd1', statement: { sql: 'DELETE FROM subscriptions WHERE tenant = ? AND pid = ?', params: [pcb.tenant, pcb.pid] } });
  if (pcb.ppid) rt.send({ kind: 'child_exited', parent: pcb.ppid, child: pcb.pid, exit: status });
  else rt.apply({ type: 'reap' });
  const notify = rt.store.getMeta(META.exitNotify);
  if (notify) {
    const small = new TextEncoder().encode(JSON.stringify(status.result ?? null)).byteLength <= EXIT_NOTICE_RESULT_BYTES;
    rt.send({ kind: 'exit_notify', ...notify, pid: pcb.pid, code: status.code, ...(small ? { result: status.result ?? null } : {}) });
  }
}

/** A child reports its exit. Returns whether the child should reap itself now. */
export function childExited(rt: ProcessCore, childPid: string, exit: ExitStatus): { reap: boolean } {
  const pcb = rt.pcb();
  if (!pcb || !LIVE_STATES.has(pcb.state)) return { reap: true };
  const child = rt.store.children.get(childPid);
  if (!child) return { reap: true };
  if (child.status !== 'live') return { reap: child.status === 'reaped' };
  let reaped = false;
  rt.store.transaction(() => {
    rt.store.children.setStatus(childPid, 'exited', JSON.stringify(exit));
    rt.emit('child_exited', { pid: childPid, exit });
    // SIGCHLD: the exit also lands in the mailbox, so a parent blocked in recv learns of it.
    rt.emit('signal', { signal: 'SIGCHLD', from: childPid });
    rt.mailbox.sigchld(pcb, childPid, exit);
    // The child learns it was reaped from this answer; no separate reap message is needed.
    reaped = rt.recheckWait(false);
  });
  return { reap: reaped };
}

/** If the process is waiting for a child that has exited, complete the wait. Returns whether a child was reaped. */
export function recheckWait(rt: ProcessCore, tellChild = true): boolean {
  const pcb = rt.mustPcb();
  if (pcb.state === 'waiting' && pcb.wait?.reason === 'message') {
    rt.mailbox.recheck();
    return false;
  }
  if (pcb.state !== 'waiting' || pcb.wait?.reason !== 'child') return false;
  const want = pcb.wait.pid ?? null;
  const exited = rt.store.children.all().find((c) => c.status === 'exited' && (want === null || c.pid === want));
  if (!exited) return false;
  const entry = rt.store.blockedEntry();
  rt.store.children.setStatus(exited.pid, 'reaped', null);
  if (tellChild) rt.send({ kind: 'reap', child: exited.pid, by: pcb.pid });
  if (entry) rt.completeEntry(entry, { ok: true, value: { pid: exited.pid, exit: JSON.parse(exited.exit ?? 'null') as unknown } });
  rt.wake();
  return true;
}

/** The parent has collected this process's exit status. */
export function reap(rt: ProcessCore, by: string): Result<Pcb> {
  const pcb = rt.pcb();
  if (!pcb) return fail('ENOENT', 'no such process');
  if (pcb.state === 'terminated') return ok(pcb);
  const r = rt.store.transaction(() => rt.tryApply({ type: 'reap' }));
  if (r.ok) rt.emit('reaped', { by });
  return r;
}

/** Blocked → ready: clear the wait's timers and schedule a run. */
export function wake(rt: ProcessCore): void {
  rt.apply({ type: 'wake' });
  rt.store.clearTimer('wake');
  rt.store.clearTimer('wait_timeout');
  rt.store.setTimer('run', rt.now);
}

/** Record a syscall's result: journal, context page, usage, event, audit. Part of the caller's commit. */
export function completeEntry(rt: ProcessCore, row: JournalRow, result: SyscallResult, refused?: 'refused'): void {
  rt.store.markDone(row.step, row.idx, JSON.stringify(result));
  const via = row.call_id.startsWith('text-') ? 'text' : 'native';
  // Content from outside the operator's trust is labelled as it enters the context.
  const source =
    result.ok && row.name === 'net_fetch'
      ? untrustedSource(row.args)
      : result.ok && row.name === 'recv'
        ? outsideSource(result.value)
        : result.ok && row.name === 'mem_search' && (result.value as { untrusted?: boolean }).untrusted
          ? 'long-term memory written from an untrusted context'
          : result.ok && row.name === 'tool_call' && (result.value as { network_requests?: number } | null)?.network_requests
            ? `tool ${(result.value as { tool: string }).tool} (network)`
            : result.ok && row.name === 'mcp_call'
              ? `MCP server ${(result.value as { server: string }).server}`
              : null;
  rt.addPage(row.step, { kind: 'result', call_id: row.call_id, name: row.name, via, result, ...(source ? { untrusted: true, source } : {}) });
  const pcb = rt.mustPcb();
  rt.store.savePcb({ ...pcb, usage: { ...pcb.usage, syscalls: pcb.usage.syscalls + 1 } });
  const args = (JSON.parse(row.args) as { args?: unknown }).args;
  const error: ErrorValue | null = result.ok ? null : result.error;
  rt.emit('syscall', { step: row.step, idx: row.idx, name: row.name, args, ok: result.ok, ...(result.ok ? { result: result.value } : { error }) });
  rt.audit('syscall', row.name, result.ok ? 'ok' : (refused ?? 'error'), error?.code ?? null, { step: row.step, idx: row.idx, llm_call: `${rt.mustPcb().pid}:step:${row.step}`, args, ...(error ? { error } : {}) });
}
