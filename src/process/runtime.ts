/**
 * The process runtime: lifecycle, timers and the outbox for one agent process. The step loop
 * itself (think → journal → dispatch) is in ./step.ts; both work on the same ProcessStore.
 *
 * Invariants this module keeps:
 *  - Every lifecycle change goes through `transition` (src/kernel/state.ts) and is saved together
 *    with its event, its audit record and its process-table update, in one synchronous commit.
 *  - Effects on other objects and on D1 go through the outbox, committed with the change that
 *    caused them and delivered afterwards with retries; receivers are idempotent.
 *  - The alarm always points at the earliest armable timer, and is re-armed on every entry.
 *  - An alarm run that faults is retried with backoff and counted; after MAX_FAULTS in a row the
 *    process ends with EFAULT. Runs killed mid-way (eviction) count too, because the count is
 *    written before the work starts.
 */
import type { AuditChainApi } from '../../durable/audit-chain.ts';
import type { Outcome } from '../kernel/scheduler.ts';
import type { AuditKind, AuditOutcome, AuditRecord, Statement } from '../audit/audit.ts';
import { type Grant, parseCapability } from '../kernel/capabilities.ts';
import { callHash } from '../kernel/policy.ts';
import { type ErrorValue, KernelError, type Result, fail, ok, toErrorValue } from '../kernel/errors.ts';
import { type ExitStatus, LIVE_STATES, type Pcb, type Signal, ZERO_USAGE } from '../kernel/pcb.ts';
import { preview } from '../kernel/preview.ts';
import type { ExitNotify, SpawnSpec } from '../kernel/spawn.ts';
import { type TransitionEvent, transition } from '../kernel/state.ts';
import type { SyscallResult } from '../kernel/syscalls.ts';
import { MAX_FAULTS, armable, due, earliest, faultBackoffMs } from '../kernel/timers.ts';
import { type PageBody, pageText } from '../kernel/context.ts';
import { INDEX_CHARS, KIND_IMPORTANCE, LexicalIndex } from '../kernel/pager.ts';
import { countTokens } from '../llm/tokens.ts';
import { ProcessFs } from './fs.ts';
import { type EventRow, type JournalRow, ProcessStore } from './store.ts';
import { upsertProcessRow } from './table.ts';
import { isOutsideSender, type WireMessage } from '../kernel/ipc.ts';
import { type DeliveryOutcome, Mailbox } from './mailbox.ts';
import { initPid } from './init.ts';
import { DEFAULT_TERM_GRACE_MS, TERM_PENDING, beginTermination, termAtStepBoundary, termOverdue, termState } from './signals.ts';

export interface ProcessRpcTarget {
  childExited(child: string, exit: ExitStatus): Promise<{ reap: boolean }>;
  reap(by: string): Promise<Result<Pcb>>;
  signal(sig: Signal, from: string, tenant: string | null, cascade?: boolean): Promise<Result<Pcb>>;
  deliverMessages(messages: WireMessage[]): Promise<DeliveryOutcome[]>;
  adopt(tenant: string, child: string, name: string, from: string): Promise<Result<{ pid: string }>>;
  reparent(init: string, oldParent: string): Promise<void>;
}

/** How queued messages leave a process (src/ipc/transport.ts): direct RPC, the Queue, or both. */
export interface IpcTransport {
  deliver(messages: readonly WireMessage[]): Promise<void>;
}

export interface RuntimeDeps {
  readonly storage: DurableObjectStorage;
  readonly db: D1Database;
  /** A stub for another process's object. */
  readonly process: (pid: string) => ProcessRpcTarget;
  /** The tenant's audit chain. */
  readonly auditChain: (tenant: string) => AuditChainApi;
  readonly now: () => number;
  readonly random: () => number;
  readonly onEvent: (event: EventRow) => void;
  /** A shard of an LLM pool's scheduler (src/process/slice.ts); absent: nothing is scheduled. */
  readonly scheduler?: (pool: string, shard: number) => { release(req: { pool: string; shard: number; shards: number; ticket: string; outcome: Outcome }): Promise<unknown> };
  /** Delivers `ipc` outbox rows; without it they go by direct RPC to the recipient. */
  readonly ipc?: IpcTransport;
  /** SIGTERM's grace period (default 30 s). */
  readonly termGraceMs?: number;
  /** Tells a pipeline instance that a process it waits on has exited (workflows/notify.ts). */
  readonly notifyExit?: (message: ExitNotice) => Promise<void>;
}

/** What a process's exit tells the pipeline that spawned it: the pipeline re-reads the PCB for the rest. */
export type ExitNotice = ExitNotify & { readonly pid: string; readonly code: ExitStatus['code'] };
const EXIT_NOTIFY = 'exit_notify';

/** Meta keys. */
const FAULTS = 'faults';
const AUDIT_SEQ = 'audit_seq';
const TABLE_DIRTY = 'table_dirty';

export type OutboxMessage =
  | { readonly kind: 'd1'; readonly statement: Statement }
  | { readonly kind: 'audit'; readonly record: AuditRecord }
  | { readonly kind: 'child_exited'; readonly parent: string; readonly child: string; readonly exit: ExitStatus }
  | { readonly kind: 'reap'; readonly child: string; readonly by: string }
  | { readonly kind: 'sched_release'; readonly pool: string; readonly shard: number; readonly shards: number; readonly ticket: string; readonly outcome: Outcome }
  | { readonly kind: 'ipc'; readonly message: WireMessage }
  | { readonly kind: 'signal'; readonly pid: string; readonly signal: Signal; readonly from: string; readonly cascade: boolean }
  | { readonly kind: 'orphan'; readonly child: string; readonly name: string; readonly tenant: string; readonly parent: string }
  | ({ readonly kind: 'exit_notify' } & ExitNotice);

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

export class ProcessRuntime {
  readonly store: ProcessStore;
  readonly fs: ProcessFs;
  readonly mailbox: Mailbox;
  readonly deps: RuntimeDeps;
  #armedAt: number | null | undefined;
  #index: LexicalIndex | null = null;
  #flushing: Promise<void> | null = null;

  constructor(deps: RuntimeDeps) {
    this.deps = deps;
    this.store = new ProcessStore(deps.storage);
    this.fs = new ProcessFs(this.store.sql);
    this.mailbox = new Mailbox(this);
  }

  get now(): number {
    return this.deps.now();
  }

  pcb(): Pcb | null {
    return this.store.loadPcb();
  }

  /** Load the PCB of a process that must exist (callers have checked). */
  mustPcb(): Pcb {
    const pcb = this.store.loadPcb();
    if (!pcb) throw new Error('process has no PCB');
    return pcb;
  }

  // --- context pages ------------------------------------------------------------------------------

  /** Append a context page: counted with the tokenizer, scored by kind, and indexed for page faults. */
  addPage(step: number, body: PageBody): void {
    const text = pageText(body);
    const seq = this.store.appendPage(step, body.kind, body, this.now, { tokens: countTokens(text), importance: KIND_IMPORTANCE[body.kind] ?? 0.5, excerpt: text });
    if (body.kind !== 'recall') this.#index?.add(seq, text.slice(0, INDEX_CHARS));
  }

  /**
   * The lexical index over every page but recall pages (copies of pages it already has), built from
   * storage once per object, then kept current.
   */
  index(): LexicalIndex {
    if (!this.#index) {
      const index = new LexicalIndex();
      for (const p of this.store.pages()) if (p.kind !== 'recall') index.add(p.seq, pageText(p.body as PageBody).slice(0, INDEX_CHARS));
      this.#index = index;
    }
    return this.#index;
  }

  // --- records ----------------------------------------------------------------------------------------

  emit(type: string, data: unknown): void {
    this.deps.onEvent(this.store.appendEvent(this.now, type, preview(data)));
  }

  audit(kind: AuditKind, action: string, outcome: AuditOutcome, code: string | null, detail: unknown): void {
    const pcb = this.mustPcb();
    const n = (this.store.getMeta<number>(AUDIT_SEQ) ?? 0) + 1;
    this.store.setMeta(AUDIT_SEQ, n);
    this.send({ kind: 'audit', record: { id: `${pcb.pid}:${n}`, tenant: pcb.tenant, pid: pcb.pid, at: this.now, kind, action, outcome, code, detail } });
  }

  send(message: OutboxMessage): void {
    this.store.enqueue(message.kind, message);
  }

  /**
   * Save a PCB and mark the process table's row stale. The row is written once per outbox delivery
   * from the PCB as it is then, not once per change: `ps` needs the latest state, not every state.
   */
  save(pcb: Pcb): void {
    this.store.savePcb(pcb);
    this.store.setMeta(TABLE_DIRTY, true);
  }

  /** Apply a lifecycle event, save, and record it. Throws KernelError(ESTATE) if illegal. */
  apply(event: TransitionEvent): Pcb {
    const before = this.mustPcb();
    const r = transition(before, event, this.now);
    if (!r.ok) throw KernelError.fromValue(r.error);
    this.save(r.value);
    this.emit('state', { from: before.state, to: r.value.state, event: event.type });
    return r.value;
  }

  tryApply(event: TransitionEvent): Result<Pcb> {
    const before = this.mustPcb();
    const r = transition(before, event, this.now);
    if (!r.ok) return r;
    this.save(r.value);
    this.emit('state', { from: before.state, to: r.value.state, event: event.type });
    return r;
  }

  // --- spawn ------------------------------------------------------------------------------------------

  async spawn(spec: SpawnSpec): Promise<Result<Pcb>> {
    const existing = this.pcb();
    if (existing) {
      if (this.store.getMeta<string>('spawn_key') === spec.spawn_key) {
        await this.settle();
        return ok(existing);
      }
      return fail('EEXIST', `process ${spec.pid} already exists`, { pid: spec.pid });
    }
    const now = this.now;
    this.store.transaction(() => {
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
      this.save(pcb);
      this.store.setMeta('spawn_key', spec.spawn_key);
      if (spec.lineage) this.store.setMeta('lineage', spec.lineage);
      if (spec.exit_notify) this.store.setMeta(EXIT_NOTIFY, spec.exit_notify);
      this.store.setMeta('image', { system_prompt: spec.system_prompt, tool_mode: spec.tool_mode, script: spec.script });
      this.addPage(0, { kind: 'task', text: spec.task, ...(spec.untrusted_task ? { untrusted: true, source: 'parent context' } : {}) });
      this.emit('spawned', { pid: spec.pid, ppid: spec.ppid, name: spec.name, image: spec.image, model: spec.model, priority: spec.priority, quotas: spec.quotas });
      this.audit('lifecycle', 'spawn', 'ok', null, { ppid: spec.ppid, name: spec.name, image: spec.image, model: spec.model, capabilities: spec.capabilities, untrusted_task: spec.untrusted_task });
      this.store.setTimer('run', now);
    });
    // Answer once the process is durable and armed, and (unless D1 is down) listed; its first alarm,
    // due now, delivers the audit and retries the listing if it failed.
    await this.rearm();
    try {
      await this.flushTable();
    } catch (e) {
      this.emit('outbox_retry', { attempts: 1, error: toErrorValue(e) });
    }
    return ok(this.mustPcb());
  }

  // --- signals, children, reaping -------------------------------------------------------------------

  signal(sig: Signal, from: string, cascade = false): Result<Pcb> {
    const pcb = this.pcb();
    if (!pcb) return fail('ENOENT', 'no such process');
    if (!LIVE_STATES.has(pcb.state)) {
      return fail('ESTATE', `process ${pcb.pid} has already exited (${pcb.state}); it cannot be signalled`, { pid: pcb.pid, state: pcb.state });
    }
    let result: Result<Pcb> = ok(pcb);
    this.store.transaction(() => {
      this.emit('signal', { signal: sig, from, ...(cascade ? { cascade } : {}) });
      // The process group: the signal goes on to every live child (and from each, to its children),
      // through the outbox, so it reaches the whole subtree even if this object dies now.
      if (cascade) for (const c of this.store.children()) if (c.status === 'live') this.send({ kind: 'signal', pid: c.pid, signal: sig, from, cascade: true });
      switch (sig) {
        case 'SIGKILL':
          this.exit({ code: 'SIGKILL', reason: `killed by ${from}` });
          break;
        case 'SIGTERM':
          // A stopped process cannot clean up: it ends now. Any other gets its clean-up step (./signals.ts).
          if (pcb.state === 'stopped') this.exit({ code: 'SIGTERM', reason: `terminated by ${from}` });
          else beginTermination(this, from, this.deps.termGraceMs ?? DEFAULT_TERM_GRACE_MS);
          break;
        case 'SIGSTOP':
          result = this.tryApply({ type: 'stop' });
          break;
        case 'SIGCONT':
          result = this.tryApply({ type: 'cont' });
          if (result.ok) this.recheckWait();
          // Resumed as ready (it was stopped mid-step): run now, not when the step's lease runs out.
          if (result.ok && this.mustPcb().state === 'ready') this.store.setTimer('run', this.now);
          break;
      }
      if (result.ok) this.audit('signal', sig, 'ok', null, { from });
      else this.audit('signal', sig, 'refused', result.error.code, { from, state: pcb.state });
    });
    return result.ok ? ok(this.mustPcb()) : result;
  }

  /** Who sent a pending SIGTERM, if one is pending. */
  termPending(): string | undefined {
    return termState(this)?.from;
  }

  /** At a step boundary: who terminated the process if it must end now (./signals.ts). */
  termAtStepBoundary(): string | null {
    return termAtStepBoundary(this);
  }

  /** Between syscalls: who terminated the process if its grace period is over. */
  termOverdue(): string | null {
    return termOverdue(this);
  }

  /**
   * End the process: zombie until its parent waits (or terminated at once if it has none).
   * Runs inside the caller's synchronous commit.
   */
  exit(status: ExitStatus): void {
    const pcb = this.apply({ type: 'exit', status });
    const blocked = this.store.blockedEntry();
    if (blocked) this.completeEntry(blocked, { ok: false, error: { code: 'EINTR', message: 'the process exited while this call was blocked' } });
    for (const t of ['run', 'wake', 'wait_timeout', 'fault', 'term'] as const) this.store.clearTimer(t);
    this.store.setMeta(TERM_PENDING, null);
    this.emit('exit', status);
    this.audit('lifecycle', 'exit', typeof status.code === 'number' && status.code === 0 ? 'ok' : 'error', String(status.code), status);
    for (const child of this.store.children()) {
      if (child.status === 'exited') {
        this.store.setChildStatus(child.pid, 'reaped', null);
        this.send({ kind: 'reap', child: child.pid, by: pcb.pid });
      } else if (child.status === 'live') {
        // An orphan: the tenant's init process becomes its parent (./init.ts).
        this.send({ kind: 'orphan', child: child.pid, name: child.name, tenant: pcb.tenant, parent: pcb.pid });
      }
    }
    // An exited process receives no more topic messages.
    this.send({ kind: 'd1', statement: { sql: 'DELETE FROM subscriptions WHERE tenant = ? AND pid = ?', params: [pcb.tenant, pcb.pid] } });
    if (pcb.ppid) this.send({ kind: 'child_exited', parent: pcb.ppid, child: pcb.pid, exit: status });
    else this.apply({ type: 'reap' });
    const notify = this.store.getMeta<ExitNotify>(EXIT_NOTIFY);
    if (notify) this.send({ kind: 'exit_notify', ...notify, pid: pcb.pid, code: status.code });
  }

  /** A child reports its exit. Returns whether the child should reap itself now. */
  childExited(childPid: string, exit: ExitStatus): { reap: boolean } {
    const pcb = this.pcb();
    if (!pcb || !LIVE_STATES.has(pcb.state)) return { reap: true };
    const child = this.store.child(childPid);
    if (!child) return { reap: true };
    if (child.status !== 'live') return { reap: child.status === 'reaped' };
    let reaped = false;
    this.store.transaction(() => {
      this.store.setChildStatus(childPid, 'exited', JSON.stringify(exit));
      this.emit('child_exited', { pid: childPid, exit });
      // SIGCHLD: the exit also lands in the mailbox, so a parent blocked in recv learns of it.
      this.emit('signal', { signal: 'SIGCHLD', from: childPid });
      this.mailbox.sigchld(pcb, childPid, exit);
      // The child learns it was reaped from this answer; no separate reap message is needed.
      reaped = this.recheckWait(false);
    });
    return { reap: reaped };
  }

  /** If the process is waiting for a child that has exited, complete the wait. Returns whether a child was reaped. */
  recheckWait(tellChild = true): boolean {
    const pcb = this.mustPcb();
    if (pcb.state === 'waiting' && pcb.wait?.reason === 'message') {
      this.mailbox.recheck();
      return false;
    }
    if (pcb.state !== 'waiting' || pcb.wait?.reason !== 'child') return false;
    const want = pcb.wait.pid ?? null;
    const exited = this.store.children().find((c) => c.status === 'exited' && (want === null || c.pid === want));
    if (!exited) return false;
    const entry = this.store.blockedEntry();
    this.store.setChildStatus(exited.pid, 'reaped', null);
    if (tellChild) this.send({ kind: 'reap', child: exited.pid, by: pcb.pid });
    if (entry) this.completeEntry(entry, { ok: true, value: { pid: exited.pid, exit: JSON.parse(exited.exit ?? 'null') as unknown } });
    this.wake();
    return true;
  }

  /** The parent has collected this process's exit status. */
  reap(by: string): Result<Pcb> {
    const pcb = this.pcb();
    if (!pcb) return fail('ENOENT', 'no such process');
    if (pcb.state === 'terminated') return ok(pcb);
    const r = this.store.transaction(() => this.tryApply({ type: 'reap' }));
    if (r.ok) this.emit('reaped', { by });
    return r;
  }

  /** Blocked → ready: clear the wait's timers and schedule a run. */
  wake(): void {
    this.apply({ type: 'wake' });
    this.store.clearTimer('wake');
    this.store.clearTimer('wait_timeout');
    this.store.setTimer('run', this.now);
  }

  /** Record a syscall's result: journal, context page, usage, event, audit. Part of the caller's commit. */
  completeEntry(row: JournalRow, result: SyscallResult, refused?: 'refused'): void {
    this.store.markDone(row.step, row.idx, JSON.stringify(result));
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
              : null;
    this.addPage(row.step, { kind: 'result', call_id: row.call_id, name: row.name, via, result, ...(source ? { untrusted: true, source } : {}) });
    const pcb = this.mustPcb();
    this.store.savePcb({ ...pcb, usage: { ...pcb.usage, syscalls: pcb.usage.syscalls + 1 } });
    const args = (JSON.parse(row.args) as { args?: unknown }).args;
    const error: ErrorValue | null = result.ok ? null : result.error;
    this.emit('syscall', { step: row.step, idx: row.idx, name: row.name, args, ok: result.ok, ...(result.ok ? { result: result.value } : { error }) });
    this.audit('syscall', row.name, result.ok ? 'ok' : (refused ?? 'error'), error?.code ?? null, { step: row.step, idx: row.idx, llm_call: `${this.mustPcb().pid}:step:${row.step}`, args, ...(error ? { error } : {}) });
  }

  // --- approvals --------------------------------------------------------------------------------------

  /**
   * An operator decided an approval. It must be the one this process is blocked on, and the call in
   * the journal must hash to what the operator was shown (`argsHash`): an approval never applies to
   * other arguments. Approve: the entry goes back to pending and the dispatcher runs it (for
   * `always`, a standing grant is added first). Deny: the call returns EPERM. Either way the process wakes.
   */
  async decideApproval(input: { id: string; tenant: string; args_hash: string; decision: 'approve' | 'deny'; grant: 'once' | 'always'; note: string; by: string }): Promise<Result<Pcb>> {
    const pcb = this.pcb();
    if (!pcb || pcb.tenant !== input.tenant) return fail('ENOENT', 'no such process');
    const key = this.store.getMeta<string>(`approval_index:${input.id}`);
    const entry = this.store.blockedEntry();
    if (!key || pcb.state !== 'waiting' || pcb.wait?.approval_id !== input.id || !entry || `${entry.step}.${entry.idx}` !== key) {
      return fail('ESTATE', `process ${pcb.pid} is not waiting for approval ${input.id}`, { state: pcb.state });
    }
    const args = (JSON.parse(entry.args) as { args?: unknown }).args;
    if ((await callHash(entry.name, args)) !== input.args_hash) {
      return fail('EPERM', 'the approval does not match the call it was requested for', { id: input.id });
    }
    const request = this.store.getMeta<{ needed: string }>(`approval:${key}`);
    try {
      this.#applyDecision(input, entry, request?.needed ?? '');
    } catch (e) {
      return { ok: false, error: toErrorValue(e) };
    }
    await this.settle();
    return ok(this.mustPcb());
  }

  /** Apply an operator's decision to the blocked entry, in one commit. */
  #applyDecision(input: { id: string; decision: 'approve' | 'deny'; grant: 'once' | 'always'; note: string; by: string }, entry: JournalRow, neededCap: string): void {
    this.store.transaction(() => {
      if (input.decision === 'deny') {
        this.#settleApproval(input.id, 'denied', input.grant, input.note, input.by);
        this.completeEntry(entry, { ok: false, error: { code: 'EPERM', message: `an operator denied ${entry.name}${input.note ? `: ${input.note}` : ''}` } });
      } else {
        this.#settleApproval(input.id, 'approved', input.grant, input.note, input.by);
        const needed = neededCap;
        if (entry.name === 'request_capability') {
          this.addGrant({ cap: needed, effect: 'allow', approved: true, ...(input.grant === 'once' ? { uses: 1 } : {}) }, input.by);
          this.completeEntry(entry, { ok: true, value: { granted: needed, grant: input.grant } });
        } else {
          if (input.grant === 'always' && parseCapability(needed).ok) this.addGrant({ cap: needed, effect: 'allow', approved: true }, input.by);
          this.store.markPending(entry.step, entry.idx);
        }
      }
      this.wake();
    });
  }

  addGrant(grant: Grant, by: string): void {
    const pcb = this.mustPcb();
    this.save({ ...pcb, capabilities: [...pcb.capabilities, grant], version: pcb.version + 1, updated_at: this.now });
    this.emit('capability_granted', { grant, by });
    this.audit('capability', 'grant', 'ok', null, { grant, by });
  }

  #settleApproval(id: string, status: 'approved' | 'denied' | 'expired', grant: 'once' | 'always' | null, note: string, by: string): void {
    const key = this.store.getMeta<string>(`approval_index:${id}`);
    if (key) this.store.setMeta(`approval:${key}`, { ...this.store.getMeta<object>(`approval:${key}`), status });
    this.send({
      kind: 'd1',
      statement: {
        sql: "UPDATE approvals SET status = ?, grant_kind = ?, note = ?, decided_at = ?, decided_by = ? WHERE id = ? AND status = 'pending'",
        params: [status, grant, note, this.now, by, id],
      },
    });
    this.emit('approval_decided', { id, status, grant, note, by });
    this.audit('approval', id, status === 'approved' ? 'approved' : status === 'denied' ? 'denied' : 'expired', null, { id, grant, note, by });
  }

  /** Release all storage (the process is removed). */
  async destroy(): Promise<void> {
    await this.store.destroy();
    this.mailbox.reset();
    this.#armedAt = null;
    this.#index = null;
  }

  // --- timers and the alarm --------------------------------------------------------------------------

  /**
   * A fresh instance of this object starts. A Durable Object runs in one place at a time, so a new
   * instance proves its predecessor is gone: a step it left `running` is dead, and resumes now (the
   * next alarm yields it and dispatches the journal's open entries), not when its `run` lease
   * would have expired. Exactly-once still comes from the journal. Then the alarm is re-armed, so
   * a restart never loses a schedule.
   */
  async recover(): Promise<void> {
    const pcb = this.pcb();
    if (pcb?.state === 'running') {
      const run = this.store.timers().find((t) => t.kind === 'run');
      if (!run || run.fire_at > this.now) this.store.setTimer('run', this.now);
    }
    await this.rearm();
  }

  /** Point the alarm at the earliest timer the current state can act on. */
  async rearm(): Promise<void> {
    const pcb = this.pcb();
    const next = pcb ? earliest(armable(pcb.state, this.store.timers())) : null;
    const at = next?.fire_at ?? null;
    if (this.#armedAt === undefined) this.#armedAt = await this.deps.storage.getAlarm();
    if (at === this.#armedAt) return;
    if (at === null) await this.deps.storage.deleteAlarm();
    else await this.deps.storage.setAlarm(at);
    this.#armedAt = at;
  }

  /**
   * Fire due timers. Returns true when the process is ready to run a slice.
   *
   * The alarm is the timer interrupt: when it fires, the earliest armed timer is due by definition,
   * even if the clock reads a little earlier (the platform never fires early; a test that drives the
   * alarm with runDurableObjectAlarm is a time jump). Later timers fire only once the clock reaches them.
   */
  fireTimers(): boolean {
    const pcb = this.mustPcb();
    const armed = armable(pcb.state, this.store.timers());
    const now = Math.max(this.now, earliest(armed)?.fire_at ?? 0);
    for (const timer of due(armed, now)) {
      this.store.transaction(() => {
        this.store.clearTimer(timer.kind);
        const current = this.mustPcb();
        if (timer.kind === 'wake' && current.state === 'sleeping') {
          const entry = this.store.blockedEntry();
          if (entry) this.completeEntry(entry, { ok: true, value: { slept_seconds: (JSON.parse(entry.args) as { args: { seconds: number } }).args.seconds } });
          this.wake();
        } else if (timer.kind === 'wait_timeout' && current.state === 'waiting') {
          const entry = this.store.blockedEntry();
          if (current.wait?.reason === 'approval' && current.wait.approval_id) {
            this.#settleApproval(current.wait.approval_id, 'expired', null, 'the approval request expired before anyone decided', 'kernel');
            if (entry) this.completeEntry(entry, { ok: false, error: { code: 'EPERM', message: 'the approval request expired before an operator decided; the call was not made' } });
          } else if (entry) {
            const what = current.wait?.reason === 'message' ? 'no matching message arrived before the timeout' : 'wait timed out before a child exited';
            this.completeEntry(entry, { ok: false, error: { code: 'ETIMEDOUT', message: what } });
          }
          this.wake();
        } else if (timer.kind === 'term' && LIVE_STATES.has(current.state)) {
          const term = termState(this);
          this.exit({ code: 'SIGTERM', reason: `terminated by ${term?.from ?? 'a signal'}; the grace period ran out` });
        }
      });
    }
    return this.mustPcb().state === 'ready';
  }

  /**
   * One alarm run. `runSlice` is the step loop. Faults are caught, counted and retried with backoff;
   * the count is written first, so a run that dies without reaching the catch is counted too.
   */
  async onAlarm(runSlice: () => Promise<void>): Promise<void> {
    this.#armedAt = null; // the alarm that woke us is spent
    const pcb = this.pcb();
    if (!pcb) return;
    const faults = (this.store.getMeta<number>(FAULTS) ?? 0) + 1;
    this.store.setMeta(FAULTS, faults);
    try {
      if (LIVE_STATES.has(pcb.state)) {
        if (faults > MAX_FAULTS) {
          const last = this.store.getMeta<ErrorValue>('last_fault');
          this.store.transaction(() => this.exit({ code: 'EFAULT', reason: `the process faulted ${MAX_FAULTS} times in a row${last ? `; last: ${last.message}` : ''}` }));
        } else {
          // A PCB left `running` means the previous run died mid-step: resume from the journal.
          if (pcb.state === 'running') this.store.transaction(() => this.apply({ type: 'yield' }));
          if (this.fireTimers()) await runSlice();
        }
      }
      this.store.setMeta(FAULTS, 0);
    } catch (e) {
      const error = toErrorValue(e);
      this.store.transaction(() => {
        this.store.setMeta('last_fault', error);
        this.emit('fault', { attempt: faults, max: MAX_FAULTS, error });
        if (this.mustPcb().state === 'running') this.apply({ type: 'yield' });
        this.store.setTimer('fault', this.now + faultBackoffMs(faults, this.deps.random));
      });
    }
    await this.settle();
  }

  /**
   * Deliver the outbox and re-arm: the tail of every entry point that changed something.
   * If a delivery is already under way it is not awaited: it keeps draining until the outbox is
   * empty, so it takes the new rows too, and waiting on it from inside an RPC it is making (a
   * parent's childExited calling back into this child) would deadlock.
   */
  async settle(): Promise<void> {
    if (!this.#flushing) await this.flush();
    await this.rearm();
  }

  // --- the outbox -------------------------------------------------------------------------------------

  async flush(): Promise<void> {
    if (this.#flushing) return this.#flushing;
    this.#flushing = this.#drain().finally(() => {
      this.#flushing = null;
    });
    return this.#flushing;
  }

  /** Write the process table's row if it is stale (spawn does only this before answering). */
  async flushTable(): Promise<void> {
    if (!this.store.getMeta<boolean>(TABLE_DIRTY)) return;
    const pcb = this.pcb();
    if (!pcb) return;
    const s = upsertProcessRow(pcb);
    await this.deps.db.prepare(s.sql).bind(...s.params).run();
    // Only clear the flag if nothing changed while the write was in flight.
    if (this.pcb() === pcb) this.store.setMeta(TABLE_DIRTY, false);
  }

  async #drain(): Promise<void> {
    for (;;) {
      if (this.store.getMeta<boolean>(TABLE_DIRTY)) {
        try {
          await this.flushTable();
        } catch (e) {
          this.emit('outbox_retry', { attempts: 1, error: toErrorValue(e) });
          this.store.setTimer('outbox', this.now + faultBackoffMs(1, this.deps.random));
          return;
        }
      }
      const rows = this.store.outbox(200);
      if (rows.length === 0) {
        if (this.store.getMeta<boolean>(TABLE_DIRTY)) continue;
        this.store.clearTimer('outbox');
        return;
      }
      const messages = rows.map((r) => ({ id: r.id, attempts: r.attempts, message: JSON.parse(r.payload) as OutboxMessage }));
      const sql = messages.filter((m) => m.message.kind === 'd1');
      const audits = messages.filter((m) => m.message.kind === 'audit');
      const mail = messages.filter((m) => m.message.kind === 'ipc');
      try {
        if (audits.length > 0) {
          const byTenant = new Map<string, AuditRecord[]>();
          for (const m of audits) {
            const r = (m.message as Extract<OutboxMessage, { kind: 'audit' }>).record;
            byTenant.set(r.tenant, [...(byTenant.get(r.tenant) ?? []), r]);
          }
          for (const [tenant, records] of byTenant) await this.deps.auditChain(tenant).append(tenant, records);
          this.store.deleteOutbox(audits.map((m) => m.id));
        }
        if (sql.length > 0) {
          const stmts = sql.map((m) => {
            const s = (m.message as Extract<OutboxMessage, { kind: 'd1' }>).statement;
            return this.deps.db.prepare(s.sql).bind(...s.params);
          });
          await this.deps.db.batch(stmts);
          this.store.deleteOutbox(sql.map((m) => m.id));
        }
        if (mail.length > 0) {
          const wire = mail.map((m) => (m.message as Extract<OutboxMessage, { kind: 'ipc' }>).message);
          if (this.deps.ipc) await this.deps.ipc.deliver(wire);
          else await this.#deliverDirect(wire);
          this.store.deleteOutbox(mail.map((m) => m.id));
        }
        for (const m of messages) {
          if (m.message.kind === 'd1' || m.message.kind === 'audit' || m.message.kind === 'ipc') continue;
          await this.#deliver(m.message);
          this.store.deleteOutbox([m.id]);
        }
      } catch (e) {
        const pending = this.store.outbox(1)[0];
        const attempts = (pending?.attempts ?? 0) + 1;
        if (pending) this.store.bumpOutbox([pending.id]);
        this.emit('outbox_retry', { attempts, error: toErrorValue(e) });
        this.store.setTimer('outbox', this.now + faultBackoffMs(attempts, this.deps.random));
        return;
      }
    }
  }

  /**
   * Deliver the outbox rows of one kind now, without waiting for the end of the alarm run. A failure
   * leaves the row for the regular delivery and its retries (receivers are idempotent).
   */
  async deliverNow(kind: OutboxMessage['kind']): Promise<void> {
    for (const row of this.store.outboxOfKind(kind, 20)) {
      try {
        await this.#deliver(JSON.parse(row.payload) as OutboxMessage);
        this.store.deleteOutbox([row.id]);
      } catch (e) {
        this.store.setTimer('outbox', this.now);
        this.emit('outbox_retry', { attempts: row.attempts + 1, error: toErrorValue(e) });
        return;
      }
    }
  }

  async #deliver(message: OutboxMessage): Promise<void> {
    switch (message.kind) {
      case 'child_exited': {
        const { reap } = await this.deps.process(message.parent).childExited(message.child, message.exit);
        if (reap) this.reap(message.parent);
        return;
      }
      case 'reap':
        await this.deps.process(message.child).reap(message.by);
        return;
      case 'sched_release':
        if (this.deps.scheduler) await this.deps.scheduler(message.pool, message.shard).release(message);
        return;
      case 'signal': {
        const r = await this.deps.process(message.pid).signal(message.signal, message.from, null, message.cascade);
        // A member of the group that has exited or is gone needs no signal; anything else is retried.
        if (!r.ok && r.error.code !== 'ESTATE' && r.error.code !== 'ENOENT') throw KernelError.fromValue(r.error);
        return;
      }
      case 'orphan': {
        const init = await initPid(message.tenant);
        const adopted = await this.deps.process(init).adopt(message.tenant, message.child, message.name, message.parent);
        if (!adopted.ok) throw KernelError.fromValue(adopted.error);
        await this.deps.process(message.child).reparent(init, message.parent);
        return;
      }
      case 'exit_notify':
        await this.deps.notifyExit?.(message);
        return;
      case 'd1':
      case 'audit':
      case 'ipc':
        return;
    }
  }

  /** Without a transport: one RPC per recipient, in order. A refused message throws, so the outbox retries. */
  async #deliverDirect(messages: readonly WireMessage[]): Promise<void> {
    const byRecipient = new Map<string, WireMessage[]>();
    for (const m of messages) byRecipient.set(m.to, [...(byRecipient.get(m.to) ?? []), m]);
    for (const [to, batch] of byRecipient) {
      const outcomes = await this.deps.process(to).deliverMessages(batch);
      const stuck = outcomes.find((o) => o.status === 'retry' || o.status === 'dead');
      if (stuck) throw new KernelError('EAGAIN', `message ${stuck.id} to ${to} was not accepted (${stuck.status}${stuck.reason ? `: ${stuck.reason}` : ''})`);
    }
  }
}
