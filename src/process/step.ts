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
import { KernelError } from '../kernel/errors.ts';
import { buildRequest } from '../kernel/context.ts';
import type { Pcb } from '../kernel/pcb.ts';
import { type RawCall, type SyscallResult, isSyscallName, validateCall } from '../kernel/syscalls.ts';
import { parseTextCalls } from '../kernel/text-protocol.ts';
import { consume } from '../kernel/capabilities.ts';
import { MAX_LLM_ATTEMPTS, STEP_LEASE_MS, llmRetryDelayMs, quotaExceeded } from '../kernel/timers.ts';
import { LlmError } from '../llm/errors.ts';
import { createProvider } from '../llm/index.ts';
import type { LlmProvider, LlmResponse, LlmToolCall } from '../llm/types.ts';
import { prepareContext, vectorRecall } from './context-manager.ts';
import type { ProcessRuntime } from './runtime.ts';
import { type ImageMeta, META } from './meta.ts';
import { type DispatchOutcome, Dispatcher, type Fused, type JournalArgs, type StepDeps } from './dispatch.ts';


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

export type { StepDeps };
export { DEFAULT_APPROVAL_TTL_MS } from './dispatch.ts';

export class StepLoop {
  readonly #rt: ProcessRuntime;
  readonly #deps: StepDeps;
  /** Runs the calls of a step (./dispatch.ts). */
  readonly #calls: Dispatcher;

  constructor(runtime: ProcessRuntime, deps: StepDeps) {
    this.#rt = runtime;
    this.#deps = deps;
    this.#calls = new Dispatcher(runtime, deps);
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
      const outcome = await this.#calls.dispatch(step);
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

  /** Swapped steps similar to the newest input by meaning (none without long-term memory or with vector recall off). */
  async #similarSwappedSteps(pcb: Pcb): Promise<Map<number, number>> {
    const opts = this.#calls.vectorOptions(pcb);
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
    const fused = calls.length === 1 ? await this.#calls.prepareFused(step, calls[0]!) : null;
    let outcome: DispatchOutcome | null = null;
    rt.store.transaction(() => {
      // A fused call's own commit runs first: it may fail alone, and nothing of the step is queued yet (store.attempt).
      const effects = fused ? this.#calls.commitEffects(fused) : undefined;
      rt.store.insertStep(step, response.text, rt.now, this.#deps.takeTrace?.(step) ?? null);
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

  /** Commit a prepared call with its step (inside #think's commit; `effects`: its own commit, already run). */
  #fuse(f: Fused, last: boolean, effects: SyscallResult | undefined): DispatchOutcome {
    const rt = this.#rt;
    const { row, run } = f;
    if (run.kind === 'failed') rt.completeEntry(row, { ok: false, error: run.error }, run.refused);
    else if (run.consume !== null) {
      const pcb = rt.mustPcb();
      rt.save({ ...pcb, capabilities: consume(pcb.capabilities, run.consume), version: pcb.version + 1, updated_at: rt.now });
    }
    const applied = run.kind === 'failed' ? 'continue' : this.#calls.apply(row, run.directive, effects);
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

}
