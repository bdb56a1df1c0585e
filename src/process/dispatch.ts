/**
 * Running a step's syscalls: each call is authorized against the process's capabilities (or an
 * operator is asked), run by its handler (./handlers.ts) with its context, and its directive applied
 * (a result, a block, an exit). The journaled path (`dispatch`) marks a call `started` before a
 * call with effects outside the object, so a crash never repeats it; the fused path
 * (`prepareFused`, ./step.ts) runs one atomic call before its answer commits, so the two commit
 * together.
 */
import { type ErrorValue, KernelError, toErrorValue } from '../kernel/errors.ts';
import type { Pcb, Signal } from '../kernel/pcb.ts';
import { type SpawnRequest, childPid } from '../kernel/spawn.ts';
import { type SyscallArgs, type SyscallName, type SyscallResult, type ValidCall, replayClass } from '../kernel/syscalls.ts';
import { consume, decide, describeRequirement } from '../kernel/capabilities.ts';
import { callHash, isHighRisk, requirementFor, requirementsFor, sha256Hex } from '../kernel/policy.ts';
import { preview } from '../kernel/preview.ts';
import { type LlmEnv } from '../llm/index.ts';
import type { LlmProvider } from '../llm/types.ts';
import type { MemoryService } from '../memory/service.ts';
import { type VectorRecallOptions, findSwapped, recallSteps, vectorRecall } from './context-manager.ts';
import { HANDLERS } from './handlers.ts';
import { type CheckpointCalls, type Directive, OutcomeUnknown, type SyscallContext } from './syscall-context.ts';
import type { ToolHost } from '../tools/host.ts';
import type { McpHost } from '../mcp/host.ts';
import type { ProcessRuntime } from './runtime.ts';
import type { SliceClient } from './slice.ts';
import type { JournalRow } from './store.ts';
import { type ImageMeta, META } from './meta.ts';

/** What the kernel needs from outside the object to run a step. */
export interface StepDeps {
  /** The deployment's LLM configuration (keys, base URLs, timeouts, the AI binding). */
  readonly llm: LlmEnv;
  /** Replace provider construction (benchmarks, tests of adapters). */
  readonly provider?: (pcb: Pcb, image: ImageMeta) => LlmProvider;
  readonly fetch: (request: Request) => Promise<Response>;
  readonly spawnChild: (parent: Pcb, request: SpawnRequest, pid: string, spawnKey: string, untrusted: boolean) => Promise<{ pid: string }>;
  readonly signalChild: (parent: Pcb, pid: string, signal: Signal, cascade?: boolean) => Promise<{ delivered: boolean; state: string }>;
  /** The most steps a slice takes (SLICE_STEPS), and the kernel-clock milliseconds it may run for (SLICE_MS). */
  readonly sliceSteps?: number;
  readonly sliceMs?: number;
  /** How long an approval request stays open before the call fails with EPERM. */
  readonly approvalTtlMs?: number;
  /** The LLM scheduler's client: a slice is asked for before each call and given back after it. */
  readonly slices?: SliceClient;
  /**
   * Long-term memory for the mem_* syscalls (src/memory/service.ts), built on first use (a configuration
   * error then fails the call, not the object); without it they fail with ENOSYS.
   */
  readonly memory?: () => MemoryService;
  /**
   * Recall by meaning into the context (context-manager.ts vectorRecall): swapped-out pages are
   * indexed in long-term memory and the newest input is searched against them before each prompt.
   * Needs `memory`; CONTEXT_VECTOR_RECALL = "off" turns it off.
   */
  readonly vectorRecall?: boolean;
  /** JIT tools (src/tools/host.ts): registered tools join the tool list and can be called by name. */
  readonly tools?: ToolHost;
  /** MCP servers (src/mcp/host.ts): the tools the grants name join the tool list; calls by their names become mcp_call. */
  readonly mcp?: McpHost;
  /** Wraps the provider of every call (src/checkpoints/trace.ts: record, or replay from a trace); `make` builds the real one. */
  readonly wrapProvider?: (make: () => LlmProvider, pcb: Pcb) => LlmProvider;
  /** The record of the LLM call that answered `step`, written in its row (src/checkpoints/trace.ts `TraceStore.take`); none: nothing is recorded. */
  readonly takeTrace?: (step: number) => string | null;
  /** The checkpoint and fork syscalls (src/checkpoints); without them they fail with ENOSYS. */
  readonly checkpoints?: CheckpointCalls;
}

export const DEFAULT_APPROVAL_TTL_MS = 24 * 3600 * 1000;

/** The journal's `args` column: validated arguments, or the error that made the call invalid. */
export type JournalArgs = { readonly args: unknown } | { readonly invalid: ErrorValue };

export type DispatchOutcome = 'done' | 'yield' | 'blocked' | 'exited' | 'interrupted';

/**
 * Calls a step may run before its answer is committed (`prepareFused`): atomic, with every effect
 * in the directive's commit, and reading nothing of the step being taken (the context calls, which
 * refer to steps, and the checkpoint calls, which need a step boundary, are not here).
 */
const FUSABLE: ReadonlySet<string> = new Set(['exit', 'sleep', 'yield', 'wait', 'fs_read', 'fs_write', 'fs_list', 'send', 'recv', 'subscribe', 'unsubscribe', 'publish']);

/** A prepared call: what its handler decided, or why it failed before running. */
export type Fused = {
  readonly row: JournalRow;
  readonly run: { readonly kind: 'directive'; readonly directive: Exclude<Directive, { kind: 'ask' }>; readonly consume: number | null } | { readonly kind: 'failed'; readonly error: ErrorValue; readonly refused?: 'refused' };
};

export class Dispatcher {
  readonly #rt: ProcessRuntime;
  readonly #deps: StepDeps;
  #memoryErrorSaid = false;

  constructor(runtime: ProcessRuntime, deps: StepDeps) {
    this.#rt = runtime;
    this.#deps = deps;
  }

  /** Whether untrusted content is in the working set (above the context floor). */
  tainted(): boolean {
    return this.#rt.store.pages.tainted(this.#rt.store.getMeta(META.contextFloor) ?? 0);
  }

  /** Long-term memory for recall by meaning, or undefined (none configured, vector recall off, or a configuration error: logged). */
  vectorOptions(pcb: Pcb): VectorRecallOptions | undefined {
    const deps = this.#deps;
    if (!deps.memory || deps.vectorRecall === false) return undefined;
    try {
      return { memory: deps.memory(), owner: { tenant: pcb.tenant, pid: pcb.pid } };
    } catch (e) {
      // Said once per instance: the configuration does not change between steps.
      if (!this.#memoryErrorSaid) this.#rt.emit('vector_recall_error', { phase: 'configure', error: e instanceof Error ? e.message : String(e) });
      this.#memoryErrorSaid = true;
      return undefined;
    }
  }

  /**
   * The hot path: a step whose answer asks for one atomic call that needs no approval runs that
   * call before anything is written, and commits the answer, the call's result and the step's end
   * together (#fuse): one transaction per step. An atomic call's effects are all in its commit, so
   * dying before it loses nothing but the answer, which is asked for again, as for a crash during
   * the LLM call. Anything else (several calls, calls with effects outside the object, an approval
   * to ask, a process signalled meanwhile) takes the journaled path of `dispatch`.
   */
  async prepareFused(step: number, c: { id: string; name: string; entry: JournalArgs }): Promise<Fused | null> {
    if (!FUSABLE.has(c.name)) return null;
    const rt = this.#rt;
    const row: JournalRow = { step, idx: 0, call_id: c.id, name: c.name, args: JSON.stringify(c.entry), status: 'pending', result: null, attempts: 0 };
    if ('invalid' in c.entry) return { row, run: { kind: 'failed', error: c.entry.invalid } };
    const call = { id: c.id, name: c.name as SyscallName, args: c.entry.args } as ValidCall;
    if (replayClass(call) !== 'atomic') return null;
    const verdict = this.#authorize(row, call);
    if (verdict.kind === 'deny') return { row, run: { kind: 'failed', error: verdict.error, refused: 'refused' } };
    if (verdict.kind === 'ask') return null;
    let run: Fused['run'];
    try {
      const handler = HANDLERS[call.name] as (args: unknown, ctx: SyscallContext) => Promise<Directive> | Directive;
      const directive = await handler(call.args, this.#context(rt.mustPcb(), row));
      if (directive.kind === 'ask') return null;
      run = { kind: 'directive', directive, consume: verdict.consume };
    } catch (e) {
      run = { kind: 'failed', error: toErrorValue(e) };
    }
    // Signalled while the handler ran: the journaled path decides what happens to the call.
    return rt.mustPcb().state === 'running' ? { row, run } : null;
  }

  /** Run a prepared call's own commit, if it has one: its result, or undefined when there was nothing to run. */
  commitEffects(f: Fused): SyscallResult | undefined {
    if (f.run.kind !== 'directive' || f.run.directive.kind !== 'result' || !f.run.directive.commit) return undefined;
    return this.#runCommit(f.run.directive.value, f.run.directive.commit);
  }

  /** A handler's commit, as a part of the open commit that may fail alone. */
  #runCommit(value: unknown, commit: () => void): SyscallResult {
    try {
      this.#rt.store.attempt(commit);
      return { ok: true, value };
    } catch (e) {
      return { ok: false, error: toErrorValue(e) };
    }
  }

  #context(pcb: Pcb, row: JournalRow): SyscallContext {
    const deps = this.#deps;
    const rt = this.#rt;
    return {
      pcb,
      store: rt.store,
      fs: rt.fs,
      now: rt.now,
      callKey: `${row.step}.${row.idx}`,
      spawnChild: async (args: SyscallArgs<'spawn'>, callKey: string) => {
        const pid = await childPid(pcb.pid, callKey);
        const tainted = this.tainted();
        // Record the child before it exists, so an exit it reports at once is never lost.
        rt.store.children.add(pid, args.name, callKey, rt.now);
        try {
          return await deps.spawnChild(pcb, args, pid, callKey, tainted);
        } catch (e) {
          // A refusal (a KernelError, from the checks or the child's answer) made no child. Anything
          // else failed in transit, perhaps after the child was made: keep it, and spawn again.
          if (!(e instanceof KernelError)) throw new OutcomeUnknown(e);
          rt.store.children.remove(pid);
          throw e;
        }
      },
      mayFetch: (url: string, method: string) => {
        const req = requirementFor({ id: 'hop', name: 'net_fetch', args: { url, method } } as ValidCall, { children_spawned: 0 });
        if (!req) return 'not a fetchable URL';
        const d = decide(rt.mustPcb().capabilities, req, rt.now);
        if (d.decision !== 'allow') return `it needs "${describeRequirement(req)}" without asking`;
        if (this.tainted()) return 'untrusted content is in the context; fetch the new URL yourself (it will ask for approval)';
        return null;
      },
      findSwapped: (query: string, limit: number) => findSwapped(rt, query, rt.mustPcb().usage.steps, limit, this.vectorOptions(pcb)),
      recall: (steps: readonly number[]) => recallSteps(rt, steps, row.step),
      stepState: (step: number) => {
        const pages = rt.store.pages.ofSteps([step]);
        if (pages.length === 0) return 'unknown';
        if (rt.store.pages.recalledSteps().has(step)) return 'recalled';
        return rt.store.pages.meta().some((p) => p.step === step && !p.resident) ? 'swapped' : 'resident';
      },
      signalChild: (pid: string, signal: Signal, cascade?: boolean) => deps.signalChild(pcb, pid, signal, cascade),
      mailbox: rt.mailbox,
      db: rt.deps.db,
      knownSteps: () => new Set(rt.store.pages.meta().map((p) => p.step)),
      fetch: deps.fetch,
      ...(deps.memory
        ? {
            memory: {
              service: deps.memory,
              audit: (action: 'write' | 'delete', detail: Record<string, unknown>) => rt.audit('memory', action, 'ok', null, { ...detail, step: row.step, idx: row.idx }),
            },
          }
        : {}),
      ...(deps.tools ? { tools: deps.tools } : {}),
      ...(deps.mcp ? { mcp: deps.mcp } : {}),
      ...(deps.checkpoints ? { checkpoints: deps.checkpoints } : {}),
      tainted: () => this.tainted(),
    };
  }

  /** Run the step's journal entries that are not done, in order. */
  async dispatch(step: number): Promise<DispatchOutcome> {
    const rt = this.#rt;
    let yielded = false;
    for (const row of rt.store.journal(step)) {
      if (row.status === 'done') continue;
      if (rt.mustPcb().state !== 'running') return 'interrupted';
      const term = rt.termOverdue();
      if (term) {
        rt.store.transaction(() => rt.exit({ code: 'SIGTERM', reason: `terminated by ${term}; the grace period ran out` }));
        return 'exited';
      }
      const entry = JSON.parse(row.args) as JournalArgs;
      if ('invalid' in entry) {
        rt.store.transaction(() => rt.completeEntry(row, { ok: false, error: entry.invalid as ErrorValue }));
        continue;
      }
      const call = { id: row.call_id, name: row.name as SyscallName, args: entry.args } as ValidCall;
      const replay = replayClass(call);
      if (row.status === 'started' && replay === 'unsafe') {
        rt.store.transaction(() =>
          rt.completeEntry(row, {
            ok: false,
            error: { code: 'EINTR', message: `the process was interrupted during ${row.name}; it may or may not have taken effect. Check before retrying.` },
          }),
        );
        continue;
      }
      const verdict = this.#authorize(row, call);
      if (verdict.kind === 'deny') {
        rt.store.transaction(() => rt.completeEntry(row, { ok: false, error: verdict.error }, 'refused'));
        continue;
      }
      if (verdict.kind === 'ask') {
        await this.#requestApproval(row, call, verdict.needed, verdict.reason);
        return 'blocked';
      }
      if (verdict.consume !== null) {
        const index = verdict.consume;
        rt.store.transaction(() => {
          const pcb = rt.mustPcb();
          rt.save({ ...pcb, capabilities: consume(pcb.capabilities, index), version: pcb.version + 1, updated_at: rt.now });
        });
      }
      if (replay !== 'atomic') {
        rt.store.markStarted(row.step, row.idx);
        rt.emit('syscall_start', { step: row.step, idx: row.idx, name: row.name, attempt: row.attempts + 1 });
      }
      let directive: Directive;
      try {
        const handler = HANDLERS[call.name] as (args: unknown, ctx: SyscallContext) => Promise<Directive> | Directive;
        directive = await handler(call.args, this.#context(rt.mustPcb(), row));
      } catch (e) {
        // The call may have taken effect: it stays `started`, and the next run issues it again.
        if (e instanceof OutcomeUnknown && replay === 'idempotent') throw e;
        rt.store.transaction(() => rt.completeEntry(row, { ok: false, error: toErrorValue(e) }));
        continue;
      }
      const state = rt.mustPcb().state;
      if (state === 'zombie' || state === 'terminated') return 'exited';
      if (directive.kind === 'ask') {
        await this.#requestApproval(row, call, directive.needed, directive.reason);
        return 'blocked';
      }
      const outcome = this.apply(row, directive);
      if (outcome === 'yield') yielded = true;
      else if (outcome !== 'continue') return outcome;
    }
    return yielded ? 'yield' : 'done';
  }

  /**
   * The dispatcher's capability check, before anything runs. An approval already decided for this
   * journal entry settles it. Otherwise the grants decide (deny > standing approval > ask > allow),
   * and while untrusted content is in the working set a high-risk call needs approval regardless.
   */
  #authorize(row: JournalRow, call: ValidCall): { kind: 'allow'; consume: number | null } | { kind: 'deny'; error: ErrorValue } | { kind: 'ask'; needed: string; reason: string } {
    const rt = this.#rt;
    const prior = rt.store.approvals.forEntry(row.step, row.idx);
    if (prior?.status === 'approved') return { kind: 'allow', consume: null };
    const pcb = rt.mustPcb();
    const reqs = requirementsFor(call, { children_spawned: rt.store.children.all().length });
    const decisions = reqs.map((r) => decide(pcb.capabilities, r, rt.now));
    const denied = decisions.find((d) => d.decision === 'deny');
    if (denied && denied.decision === 'deny') {
      const by = denied.grant === null ? 'no capability grants it' : `it is denied by "${pcb.capabilities[denied.grant]?.cap}"`;
      return { kind: 'deny', error: { code: 'EPERM', message: `${call.name} needs the capability "${denied.needed}", and ${by}`, details: { needed: denied.needed } } };
    }
    const asked = decisions.find((d) => d.decision === 'ask');
    if (asked && asked.decision === 'ask') return { kind: 'ask', needed: asked.needed, reason: `policy marks "${asked.needed}" as ask` };
    if (isHighRisk(call) && this.tainted()) {
      return { kind: 'ask', needed: reqs[0] ? describeRequirement(reqs[0]) : call.name, reason: 'untrusted content is in the context, and this call is high-risk' };
    }
    const limited = decisions.find((d) => d.decision === 'allow' && typeof pcb.capabilities[d.grant]?.uses === 'number');
    return { kind: 'allow', consume: limited ? limited.grant : null };
  }

  /** Block the process on a human decision, bound to this journal entry and the hash of its call. */
  async #requestApproval(row: JournalRow, call: ValidCall, needed: string, reason: string): Promise<void> {
    const rt = this.#rt;
    const pcb = rt.mustPcb();
    const key = `${row.step}.${row.idx}`;
    const id = `ap_${(await sha256Hex(`${pcb.pid}/${key}`)).slice(0, 24)}`;
    const argsHash = await callHash(call.name, call.args);
    const expires = rt.now + (this.#deps.approvalTtlMs ?? DEFAULT_APPROVAL_TTL_MS);
    rt.store.transaction(() => {
      rt.store.approvals.add({ id, step: row.step, idx: row.idx, needed, status: 'pending' });
      rt.store.markBlocked(row.step, row.idx);
      rt.store.clearTimer('run');
      rt.apply({ type: 'block', wait: { reason: 'approval', approval_id: id, deadline: expires } });
      rt.store.setTimer('wait_timeout', expires);
      rt.send({
        kind: 'd1',
        statement: {
          sql: `INSERT OR IGNORE INTO approvals (id, tenant, pid, step, idx, syscall, args, args_hash, capability, reason, status, created_at, expires_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)`,
          params: [id, pcb.tenant, pcb.pid, row.step, row.idx, call.name, JSON.stringify(preview(call.args, 2000)), argsHash, needed, reason, rt.now, expires],
        },
      });
      rt.emit('approval_requested', { id, step: row.step, idx: row.idx, name: call.name, needed, reason, expires_at: expires });
      rt.audit('syscall', call.name, 'asked', null, { step: row.step, idx: row.idx, args: call.args, needed, reason, approval_id: id });
    });
  }

  /** Apply a handler's directive in one commit (`effects`: the result of its own commit, if that already ran). */
  apply(row: JournalRow, d: Exclude<Directive, { kind: 'ask' }>, effects?: SyscallResult): 'continue' | 'yield' | 'blocked' | 'exited' {
    const rt = this.#rt;
    return rt.store.transaction(() => {
      switch (d.kind) {
        case 'result': {
          const result: SyscallResult = effects ?? (d.commit ? this.#runCommit(d.value, d.commit) : { ok: true, value: d.value });
          if (result.ok && row.name === 'wait') {
            // wait found an exited child: collect it now, in the same commit as the result.
            const reaped = (d.value as { pid: string }).pid;
            rt.store.children.setStatus(reaped, 'reaped', null);
            rt.send({ kind: 'reap', child: reaped, by: rt.mustPcb().pid });
          }
          rt.completeEntry(row, result);
          return 'continue';
        }
        case 'yield':
          rt.completeEntry(row, { ok: true, value: d.value ?? {} });
          return 'yield';
        case 'exit':
          rt.completeEntry(row, { ok: true, value: { exiting: true } });
          rt.exit(d.status);
          return 'exited';
        case 'sleep':
          rt.store.markBlocked(row.step, row.idx);
          rt.store.clearTimer('run');
          rt.apply({ type: 'sleep' });
          rt.store.setTimer('wake', d.until);
          return 'blocked';
        case 'block':
          rt.store.markBlocked(row.step, row.idx);
          rt.store.clearTimer('run');
          rt.apply({ type: 'block', wait: d.wait });
          if (d.deadline !== null) rt.store.setTimer('wait_timeout', d.deadline);
          return 'blocked';
      }
    });
  }
}
