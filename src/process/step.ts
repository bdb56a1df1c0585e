/**
 * The step loop: build context → one LLM call → parse → journal → dispatch syscalls → persist.
 *
 * Crash safety comes from the write-ahead journal. The LLM's answer and every call it asked for are
 * journaled in one commit before any call runs. Each call is then marked `started` before its
 * effect leaves the object (the platform's output gate holds outgoing requests until that write is
 * durable) and `done` in the same commit as its result. A run that dies anywhere resumes at the
 * first entry not `done`: atomic calls cannot be half-done; idempotent calls run again with the
 * same key; unsafe calls are reported to the model as EINTR instead of being repeated. The LLM
 * call itself has no side effects, so a step that dies before its answer is journaled asks again.
 */
import { type ErrorValue, KernelError, toErrorValue } from '../kernel/errors.ts';
import { buildRequest } from '../kernel/context.ts';
import type { Pcb, Signal } from '../kernel/pcb.ts';
import { type SpawnRequest, childPid, resolveSpawn } from '../kernel/spawn.ts';
import { type RawCall, type SyscallArgs, type SyscallName, type SyscallResult, type ValidCall, isSyscallName, replayClass, validateCall } from '../kernel/syscalls.ts';
import { parseTextCalls } from '../kernel/text-protocol.ts';
import { consume, decide, describeRequirement } from '../kernel/capabilities.ts';
import { callHash, isHighRisk, requirementFor, requirementsFor, sha256Hex } from '../kernel/policy.ts';
import { preview } from '../kernel/preview.ts';
import { MAX_LLM_ATTEMPTS, STEP_LEASE_MS, llmRetryDelayMs, quotaExceeded } from '../kernel/timers.ts';
import { LlmError } from '../llm/errors.ts';
import { type LlmEnv, createProvider } from '../llm/index.ts';
import type { Script } from '../llm/scripted.ts';
import type { LlmProvider, LlmResponse, LlmToolCall, ToolMode } from '../llm/types.ts';
import type { MemoryService } from '../memory/service.ts';
import { type VectorRecallOptions, findSwapped, prepareContext, recallSteps, vectorRecall } from './context-manager.ts';
import { HANDLERS } from './handlers.ts';
import type { CheckpointCalls, Directive, SyscallContext } from './syscall-context.ts';
import type { ToolHost } from '../tools/host.ts';
import type { McpHost } from '../mcp/host.ts';
import type { ProcessRuntime } from './runtime.ts';
import type { SliceClient } from './slice.ts';
import type { JournalRow } from './store.ts';
import { type ImageMeta, META } from './meta.ts';


/**
 * A slice (one alarm run) takes steps back to back for up to SLICE_MS of the kernel's clock, and at
 * most SLICE_STEPS steps, then yields the object to other work. By time, not count: a process whose
 * steps are fast (a local model, cached answers) takes many per slice, so the slice's bookkeeping
 * (dispatch, fault counter, the yield, the outbox round) is spread over them; one whose LLM calls
 * take seconds takes one or a few, and its steps are bounded in wall time all the same.
 */
export const SLICE_MS = 2_000;
export const SLICE_STEPS = 64;

export type { ImageMeta };

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
  /** The checkpoint and fork syscalls (src/checkpoints); without them they fail with ENOSYS. */
  readonly checkpoints?: CheckpointCalls;
}

export const DEFAULT_APPROVAL_TTL_MS = 24 * 3600 * 1000;

/** The journal's `args` column: validated arguments, or the error that made the call invalid. */
type JournalArgs = { readonly args: unknown } | { readonly invalid: ErrorValue };

type DispatchOutcome = 'done' | 'yield' | 'blocked' | 'exited' | 'interrupted';

/**
 * Calls a step may run before its answer is committed (#prepareFused): atomic, with every effect
 * in the directive's commit, and reading nothing of the step being taken (the context calls, which
 * refer to steps, and the checkpoint calls, which need a step boundary, are not here).
 */
const FUSABLE: ReadonlySet<string> = new Set(['exit', 'sleep', 'yield', 'wait', 'fs_read', 'fs_write', 'fs_list', 'send', 'recv', 'subscribe', 'unsubscribe', 'publish']);

/** A prepared call: what its handler decided, or why it failed before running. */
type Fused = {
  readonly row: JournalRow;
  readonly run: { readonly kind: 'directive'; readonly directive: Exclude<Directive, { kind: 'ask' }>; readonly consume: number | null } | { readonly kind: 'failed'; readonly error: ErrorValue; readonly refused?: 'refused' };
};

export class StepLoop {
  readonly #rt: ProcessRuntime;
  readonly #deps: StepDeps;
  #memoryErrorSaid = false;

  constructor(runtime: ProcessRuntime, deps: StepDeps) {
    this.#rt = runtime;
    this.#deps = deps;
  }

  /**
   * Run a time slice: steps back to back for up to `sliceMs` (SLICE_MS), at most `sliceSteps`. The
   * process is dispatched once and stays running for the whole slice (quotas and SIGTERM are still
   * checked at every step boundary), then yields; a step that blocks, exits or is stopped ends the
   * slice early. Whether a step is the slice's last is decided before it runs (its commit then
   * carries the yield): when the steps so far, at their mean duration, leave no room for another.
   */
  async runSlice(): Promise<void> {
    const rt = this.#rt;
    const maxSteps = this.#deps.sliceSteps ?? SLICE_STEPS;
    const budget = this.#deps.sliceMs ?? SLICE_MS;
    if (rt.mustPcb().state !== 'ready') return;
    rt.store.transaction(() => {
      rt.apply({ type: 'dispatch' });
      rt.store.setTimer('run', rt.now + STEP_LEASE_MS);
    });
    const start = rt.now;
    const isLast = (i: number): boolean => {
      if (i >= maxSteps - 1) return true;
      if (i === 0) return false;
      const spent = rt.now - start;
      return spent + spent / i > budget;
    };
    for (let i = 0; i < maxSteps; i++) {
      const lastStep = isLast(i);
      const pcb = rt.mustPcb();
      if (pcb.state !== 'running') return;
      let step = rt.store.openStep();
      if (step !== null && rt.store.journal(step).every((row) => row.status === 'done')) {
        // The wake-up that completed the step's last call already did its work: just close the step.
        rt.store.finishStep(step);
        step = null;
      }
      // After a SIGTERM, the step under way finishes and one clean-up step follows (./signals.ts).
      const term = step === null ? rt.termAtStepBoundary() : rt.termOverdue();
      if (term) {
        rt.store.transaction(() => rt.exit({ code: 'SIGTERM', reason: `terminated by ${term}` }));
        return;
      }
      if (step === null) {
        const over = quotaExceeded(pcb, rt.now);
        if (over) {
          rt.store.transaction(() => rt.exit(over));
          return;
        }
        const thought = await this.#think(lastStep);
        if (thought === null) return;
        if (thought.outcome !== null) {
          // The whole step, its call included, is in one commit (#fuse).
          if (thought.outcome === 'done' && !lastStep) continue;
          return;
        }
        step = thought.step;
      }
      const outcome = await this.#dispatch(step);
      if (outcome !== 'done' && outcome !== 'yield') return;
      const last = outcome === 'yield' || lastStep;
      rt.store.transaction(() => {
        rt.store.finishStep(step);
        if (last) {
          rt.apply({ type: 'yield' });
          rt.store.setTimer('run', rt.now);
        }
      });
      if (last) return;
    }
  }

  #image(): ImageMeta {
    const image = this.#rt.store.getMeta(META.image);
    if (!image) throw new KernelError('EFAULT', 'process has no image metadata');
    return image;
  }

  #provider(pcb: Pcb, image: ImageMeta): LlmProvider {
    const make = (): LlmProvider => {
      if (this.#deps.provider) return this.#deps.provider(pcb, image);
      const p = createProvider({ model: pcb.model, script: image.script, env: this.#deps.llm });
      if (!p.ok) throw KernelError.fromValue(p.error);
      return p.value;
    };
    return this.#deps.wrapProvider ? this.#deps.wrapProvider(make, pcb) : make();
  }

  /** Whether untrusted content is in the working set (above the context floor). */
  #tainted(): boolean {
    return this.#rt.store.pages.tainted(this.#rt.store.getMeta(META.contextFloor) ?? 0);
  }

  /** Long-term memory for recall by meaning, or undefined (none configured, vector recall off, or a configuration error: logged). */
  #vectorOptions(pcb: Pcb): VectorRecallOptions | undefined {
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

  /** Swapped steps similar to the newest input by meaning (none without long-term memory or with vector recall off). */
  async #similarSwappedSteps(pcb: Pcb): Promise<Map<number, number>> {
    const opts = this.#vectorOptions(pcb);
    return opts ? vectorRecall(this.#rt, opts) : new Map();
  }

  /**
   * Ask the LLM for the next step and journal its answer. Returns the step number, or null if the
   * process was killed meanwhile; `outcome` is set when the step's one call ran in the same commit
   * as the answer (#fuse), and is then the dispatch's outcome (`last`: the slice ends after it).
   */
  async #think(last: boolean): Promise<{ step: number; outcome: DispatchOutcome | null } | null> {
    const rt = this.#rt;
    const pcb = rt.mustPcb();
    const image = this.#image();
    const started = rt.now;
    let response: LlmResponse;
    const semantic = await this.#similarSwappedSteps(pcb);
    await this.#deps.mcp?.prepare(pcb);
    for (;;) {
      const floor = rt.store.getMeta(META.contextFloor) ?? 0;
      const { pages, tokens } = prepareContext(rt, pcb.max_context_tokens, pcb.usage.steps + 1, semantic);
      const request = { ...buildRequest({ system_prompt: image.system_prompt, tool_mode: image.tool_mode, model: pcb.model.model, pages, floor_step: floor, extra_tools: [...(this.#deps.tools?.specs() ?? []), ...(this.#deps.mcp?.specs() ?? [])] }), step: pcb.usage.steps + 1 };
      const slices = this.#deps.slices;
      if (slices && (await slices.admit(rt, pcb, tokens + slices.promptOverhead(image.system_prompt))) === 'stop') return null;
      try {
        response = await this.#provider(pcb, image).complete(request);
        break;
      } catch (e) {
        if (!(e instanceof LlmError)) throw e;
        if (slices) {
          rt.store.transaction(() => slices.releaseInCommit(rt, e.status === 429 ? { kind: 'rate_limited', retry_after_ms: e.retryAfterMs } : { kind: 'error' }));
          await slices.flush(rt);
        }
        const state = rt.mustPcb().state;
        if (state !== 'running') return null;
        if (!this.#onLlmError(e, pcb.usage.steps + 1)) return null;
      }
    }
    const latency = rt.now - started;
    const after = rt.mustPcb();
    const used = { kind: 'ok' as const, tokens: response.usage.prompt_tokens + response.usage.completion_tokens };
    // Killed during the call: the answer is discarded (it had no effects). Stopped: it is journaled and dispatched on SIGCONT.
    if (after.state !== 'running' && after.state !== 'stopped') {
      const slices = this.#deps.slices;
      if (slices) {
        rt.store.transaction(() => slices.releaseInCommit(rt, used));
        await slices.flush(rt);
      }
      return null;
    }
    if ((rt.store.getMeta(META.llmAttempts) ?? 0) > 0) rt.store.setMeta(META.llmAttempts, 0);
    const step = after.usage.steps + 1;
    const native = response.tool_calls.length > 0;
    const parsed = native ? null : parseTextCalls(response.text, `text-${step}`);
    const calls: { id: string; name: string; entry: JournalArgs }[] = [];
    const tools = this.#deps.tools;
    const add = (call: RawCall) => {
      // A registered tool called by its own name is a tool_call with the same call id.
      const jit = tools && !isSyscallName(call.name) && tools.store.get(call.name) ? { id: call.id, name: 'tool_call', args: { name: call.name, args: call.args ?? {} } } : call;
      // An MCP tool called by its listed name is an mcp_call; the kernel sets its replay class.
      const raw = this.#deps.mcp?.rewrite(jit) ?? jit;
      const v = validateCall(raw);
      calls.push(v.ok ? { id: raw.id, name: raw.name, entry: { args: v.value.args } } : { id: raw.id, name: raw.name, entry: { invalid: v.error } });
    };
    if (native) for (const c of response.tool_calls) add(c);
    else for (const c of parsed?.calls ?? []) {
      if (c.call) add(c.call);
      else calls.push({ id: c.error.id, name: 'SYS_CALL', entry: { invalid: { code: c.error.code, message: c.error.message, details: c.error.details } } });
    }
    // A turn with no syscalls at all is the model's final answer: an implicit exit(0) with its text.
    if (calls.length === 0) calls.push({ id: `exit-${step}`, name: 'exit', entry: { args: { code: 0, result: response.text } } });
    const toolCalls: LlmToolCall[] = native ? [...response.tool_calls] : [];
    const fused = calls.length === 1 ? await this.#prepareFused(step, calls[0]!) : null;
    let outcome: DispatchOutcome | null = null;
    rt.store.transaction(() => {
      // A fused call's own commit runs first: it may fail alone, and nothing of the step is queued yet (store.attempt).
      const effects = fused ? this.#commitEffects(fused) : undefined;
      rt.store.insertStep(step, response.text, rt.now);
      calls.forEach((c, idx) => rt.store.insertJournal(step, idx, c.id, c.name, JSON.stringify(c.entry), 'pending', null));
      rt.addPage(step, { kind: 'assistant', text: response.text, tool_calls: toolCalls });
      const current = rt.mustPcb();
      const u = current.usage;
      rt.save({
        ...current,
        usage: {
          ...u,
          steps: u.steps + 1,
          llm_calls: u.llm_calls + 1,
          prompt_tokens: u.prompt_tokens + response.usage.prompt_tokens,
          completion_tokens: u.completion_tokens + response.usage.completion_tokens,
          cached_tokens: u.cached_tokens + response.usage.cached_tokens,
          cache_write_tokens: u.cache_write_tokens + response.usage.cache_write_tokens,
        },
        version: current.version + 1,
        updated_at: rt.now,
      });
      rt.emit('llm_call', {
        step,
        model: response.model,
        provider: pcb.model.provider,
        usage: response.usage,
        latency_ms: latency,
        stop_reason: response.stop_reason,
        text: response.text,
        calls: calls.map((c) => c.name),
      });
      rt.audit('llm', 'llm_call', 'ok', null, { step, provider: pcb.model.provider, model: response.model, usage: response.usage, latency_ms: latency });
      this.#deps.slices?.releaseInCommit(rt, used);
      if (fused) outcome = this.#fuse(fused, last, effects);
    });
    await this.#deps.slices?.flush(rt);
    return { step, outcome };
  }

  /**
   * The hot path: a step whose answer asks for one atomic call that needs no approval runs that
   * call before anything is written, and commits the answer, the call's result and the step's end
   * together (#fuse): one transaction per step. An atomic call's effects are all in its commit, so
   * dying before it loses nothing but the answer, which is asked for again, as for a crash during
   * the LLM call. Anything else (several calls, calls with effects outside the object, an approval
   * to ask, a process signalled meanwhile) takes the journaled path of #dispatch.
   */
  async #prepareFused(step: number, c: { id: string; name: string; entry: JournalArgs }): Promise<Fused | null> {
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
  #commitEffects(f: Fused): SyscallResult | undefined {
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

  /** Commit a prepared call with its step (inside #think's commit; `effects`: its own commit, already run). */
  #fuse(f: Fused, last: boolean, effects: SyscallResult | undefined): DispatchOutcome {
    const rt = this.#rt;
    const { row, run } = f;
    if (run.kind === 'failed') rt.completeEntry(row, { ok: false, error: run.error }, run.refused);
    else if (run.consume !== null) {
      const pcb = rt.mustPcb();
      rt.save({ ...pcb, capabilities: consume(pcb.capabilities, run.consume), version: pcb.version + 1, updated_at: rt.now });
    }
    const applied = run.kind === 'failed' ? 'continue' : this.#apply(row, run.directive, effects);
    if (applied !== 'continue' && applied !== 'yield') return applied;
    rt.store.finishStep(row.step);
    if (applied === 'yield' || last) {
      rt.apply({ type: 'yield' });
      rt.store.setTimer('run', rt.now);
    }
    return applied === 'yield' ? 'yield' : 'done';
  }

  /**
   * A provider call failed. Retryable: park the process until the provider's retry-after (or backoff)
   * on its run timer, bounded to MAX_LLM_ATTEMPTS. Context too long: raise the context floor once and
   * retry now. Anything else: the process ends with the error's code. Returns true to retry at once.
   */
  #onLlmError(e: LlmError, step: number): boolean {
    const rt = this.#rt;
    const error = { code: e.code, message: e.message, ...(e.status === null ? {} : { details: { status: e.status } }) };
    if (e.kind === 'context') {
      const floor = rt.store.getMeta(META.contextFloor) ?? 0;
      if (rt.store.getMeta(META.contextShrunkAt) !== step && step - 1 > floor + 1) {
        // Drop the older half of the steps still in the context; the task page always stays.
        const next = floor + Math.ceil((step - floor) / 2);
        rt.store.transaction(() => {
          rt.store.setMeta(META.contextFloor, next);
          rt.store.setMeta(META.contextShrunkAt, step);
          rt.emit('context_shrunk', { step, dropped_before_step: next, error });
        });
        return true;
      }
    }
    const attempts = (rt.store.getMeta(META.llmAttempts) ?? 0) + 1;
    rt.store.transaction(() => {
      rt.emit('llm_error', { step, kind: e.kind, attempt: attempts, retry_after_ms: e.retryAfterMs, error });
      rt.audit('llm', 'llm_call', 'error', e.code, { step, kind: e.kind, attempt: attempts, error });
      if (e.kind === 'retryable' && attempts < MAX_LLM_ATTEMPTS) {
        rt.store.setMeta(META.llmAttempts, attempts);
        rt.apply({ type: 'yield' });
        rt.store.setTimer('run', rt.now + llmRetryDelayMs(attempts, e.retryAfterMs, rt.deps.random));
      } else {
        rt.store.setMeta(META.llmAttempts, 0);
        const why = e.kind === 'retryable' ? `the LLM provider failed ${attempts} times in a row; last: ${e.message}` : e.message;
        rt.exit({ code: e.code, reason: why });
      }
    });
    return false;
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
        const tainted = this.#tainted();
        // Record the child before it exists, so an exit it reports at once is never lost.
        rt.store.children.add(pid, args.name, callKey, rt.now);
        try {
          return await deps.spawnChild(pcb, args, pid, callKey, tainted);
        } catch (e) {
          rt.store.children.remove(pid);
          throw e;
        }
      },
      mayFetch: (url: string, method: string) => {
        const req = requirementFor({ id: 'hop', name: 'net_fetch', args: { url, method } } as ValidCall, { children_spawned: 0 });
        if (!req) return 'not a fetchable URL';
        const d = decide(rt.mustPcb().capabilities, req, rt.now);
        if (d.decision !== 'allow') return `it needs "${describeRequirement(req)}" without asking`;
        if (this.#tainted()) return 'untrusted content is in the context; fetch the new URL yourself (it will ask for approval)';
        return null;
      },
      findSwapped: (query: string, limit: number) => findSwapped(rt, query, rt.mustPcb().usage.steps, limit, this.#vectorOptions(pcb)),
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
      tainted: () => this.#tainted(),
    };
  }

  /** Run the step's journal entries that are not done, in order. */
  async #dispatch(step: number): Promise<DispatchOutcome> {
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
        rt.store.transaction(() => rt.completeEntry(row, { ok: false, error: toErrorValue(e) }));
        continue;
      }
      const state = rt.mustPcb().state;
      if (state === 'zombie' || state === 'terminated') return 'exited';
      if (directive.kind === 'ask') {
        await this.#requestApproval(row, call, directive.needed, directive.reason);
        return 'blocked';
      }
      const outcome = this.#apply(row, directive);
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
    const prior = rt.store.approvalFor(row.step, row.idx);
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
    if (isHighRisk(call) && this.#tainted()) {
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
      rt.store.addApproval({ id, step: row.step, idx: row.idx, needed, status: 'pending' });
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
  #apply(row: JournalRow, d: Exclude<Directive, { kind: 'ask' }>, effects?: SyscallResult): 'continue' | 'yield' | 'blocked' | 'exited' {
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
