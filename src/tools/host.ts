/**
 * The process side of JIT tools (one per AgentProcess object): registering, calling, and serving
 * the broker and the egress proxy while a call is in flight.
 *
 * A call:
 *   1. validates its arguments against the tool's JSON Schema (EINVAL before anything starts);
 *   2. takes one of MAX_CONCURRENT_TOOL_CALLS slots; an eleventh concurrent call waits in a queue;
 *   3. loads (or reuses) the slot's dynamic isolate for this tool through the Worker Loader. Its `env`
 *      holds only `SYS`, the ToolBroker entrypoint bound through `ctx.exports` to this pid and the
 *      grants the tool runs with; its `globalOutbound` is the ToolEgress proxy bound the same way, or
 *      null when no grant could let a request out; its `limits` are the platform's cpuMs/subRequests;
 *   4. invokes the harness with a fresh random token that identifies the call to the broker and the
 *      proxy, a CPU budget in budget-hook ticks and a memory budget, raced against a wall-clock timeout;
 *   5. returns the tool's value, or throws the typed error the harness reported.
 * An isolate is keyed by pid, tool hash, grants and slot, so warm calls reuse it and no state is
 * shared between processes. One that ran out of budget or timed out is never reused.
 */
import { type Grant } from '../kernel/capabilities.ts';
import { type ErrorValue, KernelError, type Result, fail, ok, toErrorValue } from '../kernel/errors.ts';
import type { Pcb } from '../kernel/pcb.ts';
import { canonicalJson } from '../kernel/policy.ts';
import { type SyscallArgs, type ToolSpec, isSyscallName, validateCall } from '../kernel/syscalls.ts';
import { MAX_CONCURRENT_TOOL_CALLS, MAX_TOOLS, TICKS_PER_CPU_MS, TOOL_LIMITS } from '../kernel/tools.ts';
import { HANDLERS } from '../process/handlers.ts';
import type { SyscallContext, ToolRunner } from '../process/syscall-context.ts';
import type { ProcessRuntime } from '../process/runtime.ts';
import { authorizeEgress, authorizeToolCall, mayReachNetwork, toolGrants } from './authorize.ts';
import { compileTool } from './compile.ts';
import { TOOL_SYSCALLS, type ToolSyscall, toolModules } from './harness.ts';
import { checkParameters, validateArgs } from './schema.ts';
import { type ToolDefinition, type ToolRow, ToolStore } from './store.ts';

export interface BrokerProps {
  readonly pid: string;
  readonly grants: Grant[];
}

/** What the host needs from the Worker: the loader binding and the two loopback entrypoints. */
export interface ToolBindings {
  readonly loader: WorkerLoader;
  broker(props: BrokerProps): Fetcher;
  egress(props: BrokerProps): Fetcher;
}

export interface ToolLimits {
  readonly cpuMs: number;
  readonly subRequests: number;
  readonly wallMs: number;
  readonly memoryBytes: number;
}

interface InFlight {
  readonly tool: string;
  readonly grants: Grant[];
  /** Whether the caller's working set held untrusted content when it called (then `grants` has no net:). */
  readonly tainted: boolean;
  subrequests: number;
  network: number;
}

type HarnessResult = { ok: true; value: unknown } | { ok: false; error: ErrorValue };

interface ToolEntrypoint {
  invoke(call: { name: string; args: unknown; token: string; ticks: number; memory: number }): Promise<HarnessResult>;
}

/** The date the tool isolates run at: the harness depends on nothing newer. */
const TOOL_COMPATIBILITY_DATE = '2026-01-01';
/** What the model sees of a tool's value at most (characters of JSON). */
export const MAX_TOOL_RESULT_CHARS = 64 * 1024;

export interface ToolCallResult {
  readonly tool: string;
  readonly result: unknown;
  /** Requests the tool made to the network (its result then counts as untrusted content). */
  readonly network_requests?: number;
  readonly truncated?: boolean;
}

/** A short, fast, non-cryptographic key (FNV-1a, 32 bits, hex): tells grant sets apart in isolate ids. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

export class ToolHost implements ToolRunner {
  readonly store: ToolStore;
  readonly #rt: ProcessRuntime;
  readonly #bindings: ToolBindings | null;
  readonly #limits: ToolLimits;
  readonly #inflight = new Map<string, InFlight>();
  readonly #busy: boolean[] = Array.from({ length: MAX_CONCURRENT_TOOL_CALLS }, () => false);
  readonly #generation: number[] = Array.from({ length: MAX_CONCURRENT_TOOL_CALLS }, () => 0);
  readonly #queue: (() => void)[] = [];
  /** Most isolates in flight at once so far (observability, tests). */
  peak = 0;
  /** Calls that had to wait for a slot. */
  queued = 0;

  constructor(rt: ProcessRuntime, store: ToolStore, bindings: ToolBindings | null, limits: Partial<ToolLimits> = {}) {
    this.#rt = rt;
    this.store = store;
    this.#bindings = bindings;
    this.#limits = { ...TOOL_LIMITS, ...limits };
  }

  /** The registered tools as the model sees them (after the syscalls), in name order. */
  specs(): ToolSpec[] {
    return this.store.list().map((t) => ({ name: t.name, description: `${t.description} (JIT tool)`, parameters: t.parameters }));
  }

  // --- registering ---------------------------------------------------------------------------------

  /**
   * Compile and check a tool. Returns its row-to-be and a commit that stores it; the step loop runs
   * the commit inside the journal's transaction (tool_register is atomic).
   */
  async prepare(def: ToolDefinition, origin: string, now: number): Promise<{ value: { name: string; hash: string; version: number; source_bytes: number; js_bytes: number }; commit: () => void }> {
    if (isSyscallName(def.name)) throw new KernelError('EEXIST', `"${def.name}" is a syscall; choose another name for the tool`, { name: def.name });
    const existing = this.store.get(def.name);
    if (!existing && this.store.count() >= MAX_TOOLS) throw new KernelError('EQUOTA', `a process may hold at most ${MAX_TOOLS} tools`);
    checkParameters(def.parameters);
    const compiled = await compileTool(def.source);
    const version = (existing?.version ?? 0) + 1;
    return {
      value: { name: def.name, hash: compiled.hash, version, source_bytes: compiled.source_bytes, js_bytes: compiled.js_bytes },
      commit: () => {
        this.store.put({ name: def.name, description: def.description, parameters: def.parameters, hash: compiled.hash, origin }, { hash: compiled.hash, source: def.source, js: compiled.js }, now);
      },
    };
  }

  /** Register tools outside a syscall (an image's built-in or published tools at spawn). */
  async install(defs: readonly ToolDefinition[], origin: string): Promise<void> {
    for (const def of defs) {
      const p = await this.prepare(def, origin, this.#rt.now);
      this.#rt.store.transaction(() => {
        p.commit();
        this.#rt.emit('tool_registered', { ...p.value, origin });
      });
    }
  }

  // --- calling -------------------------------------------------------------------------------------

  async call(pcb: Pcb, name: string, args: Record<string, unknown>, tainted: boolean): Promise<ToolCallResult> {
    const tool = this.store.get(name);
    if (!tool) throw new KernelError('ENOENT', `no tool named "${name}"; registered: ${this.store.list().map((t) => t.name).join(', ') || 'none'}`, { name });
    validateArgs(name, tool.parameters, args);
    const code = this.store.code(tool.hash);
    if (!code) throw new KernelError('EFAULT', `the code of tool ${name} is missing from the tool table`);
    const bindings = this.#bindings;
    if (!bindings) throw new KernelError('ENOSYS', 'this deployment has no Worker Loader binding (LOADER); tools cannot run');
    const grants = toolGrants(pcb.capabilities, tainted);
    const slot = await this.#acquire();
    const token = crypto.randomUUID();
    const inflight: InFlight = { tool: name, grants, tainted, subrequests: 0, network: 0 };
    this.#inflight.set(token, inflight);
    let poisoned = false;
    try {
      const grantsKey = fnv1a(canonicalJson(grants));
      const id = `${pcb.pid}:${tool.hash.slice(0, 24)}:${grantsKey}:${slot}.${this.#generation[slot]}`;
      const limits = this.#limits;
      const worker = bindings.loader.get(id, () => ({
        compatibilityDate: TOOL_COMPATIBILITY_DATE,
        mainModule: 'harness.js',
        modules: toolModules(code.js),
        env: { SYS: bindings.broker({ pid: pcb.pid, grants }) },
        globalOutbound: mayReachNetwork(grants) ? bindings.egress({ pid: pcb.pid, grants }) : null,
        limits: { cpuMs: limits.cpuMs, subRequests: limits.subRequests },
      }));
      const entry = worker.getEntrypoint('Tool') as unknown as ToolEntrypoint;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<HarnessResult>((resolve) => {
        timer = setTimeout(() => resolve({ ok: false, error: { code: 'ETIMEDOUT', message: `tool ${name} did not finish within ${limits.wallMs} ms`, details: { tool: name, wall_ms: limits.wallMs } } }), limits.wallMs);
      });
      let result: HarnessResult;
      try {
        result = await Promise.race([entry.invoke({ name, args, token, ticks: limits.cpuMs * TICKS_PER_CPU_MS, memory: limits.memoryBytes }), timeout]);
      } catch (e) {
        const message = (e as Error).message ?? String(e);
        result = { ok: false, error: { code: /CPU budget|runaway/i.test(message) ? 'ETIMEDOUT' : 'EFAULT', message: `tool ${name} failed to load or crashed: ${message.slice(0, 2000)}`, details: { tool: name } } };
      } finally {
        clearTimeout(timer);
      }
      if (!result.ok) {
        poisoned = result.error.code === 'ETIMEDOUT' || result.error.code === 'EQUOTA' || result.error.code === 'EFAULT';
        throw KernelError.fromValue(result.error);
      }
      const json = JSON.stringify(result.value) ?? 'null';
      const out: ToolCallResult =
        json.length > MAX_TOOL_RESULT_CHARS
          ? { tool: name, result: json.slice(0, MAX_TOOL_RESULT_CHARS), truncated: true }
          : { tool: name, result: result.value };
      return inflight.network > 0 ? { ...out, network_requests: inflight.network } : out;
    } finally {
      this.#inflight.delete(token);
      if (poisoned) this.#generation[slot] = (this.#generation[slot] ?? 0) + 1;
      this.#release(slot);
    }
  }

  async #acquire(): Promise<number> {
    for (;;) {
      const free = this.#busy.indexOf(false);
      if (free >= 0) {
        this.#busy[free] = true;
        this.peak = Math.max(this.peak, this.#busy.filter(Boolean).length);
        return free;
      }
      this.queued++;
      await new Promise<void>((resolve) => this.#queue.push(resolve));
    }
  }

  #release(slot: number): void {
    this.#busy[slot] = false;
    this.#queue.shift()?.();
  }

  // --- the broker and the egress proxy (called back by the isolate while a call is in flight) -----

  /** A syscall from a tool: the call must be in flight, the syscall allowed to tools and granted. */
  async syscall(token: string, name: string, args: unknown): Promise<Result<unknown>> {
    const call = this.#inflight.get(token);
    if (!call) return fail('EPERM', 'this tool call is no longer in flight');
    if (!(TOOL_SYSCALLS as readonly string[]).includes(name)) return fail('ENOSYS', `tools can call ${TOOL_SYSCALLS.join(', ')}; not "${name}"`);
    if (++call.subrequests > this.#limits.subRequests) return fail('EQUOTA', `tool ${call.tool} made more than ${this.#limits.subRequests} subrequests`);
    const v = validateCall({ id: `tool:${token}`, name, args });
    if (!v.ok) return v;
    const rt = this.#rt;
    const allowed = authorizeToolCall(call.grants, v.value, rt.now);
    if (!allowed.ok) {
      rt.store.transaction(() => rt.audit('syscall', name, 'refused', 'EPERM', { via_tool: call.tool, args: v.value.args, error: allowed.error }));
      return allowed;
    }
    if (name === 'net_fetch') call.network++;
    const pcb = rt.mustPcb();
    const ctx: SyscallContext = {
      pcb,
      store: rt.store,
      fs: rt.fs,
      now: rt.now,
      callKey: `tool:${token}`,
      spawnChild: () => Promise.reject(new KernelError('ENOSYS', 'tools cannot spawn')),
      signalChild: () => Promise.reject(new KernelError('ENOSYS', 'tools cannot signal')),
      fetch: (request) => fetch(request),
      mayFetch: (url, method) => {
        const r = authorizeEgress(call.grants, url, method, rt.now);
        return r.ok ? null : r.error.message;
      },
      // Tools reach only fs_* and net_fetch (TOOL_SYSCALLS); the process's mailbox and context are not theirs.
      mailbox: rt.mailbox,
      db: rt.deps.db,
      findSwapped: async () => [],
      recall: () => [],
      stepState: () => 'unknown',
      knownSteps: () => new Set<number>(),
      tainted: () => call.tainted,
    };
    try {
      const handler = HANDLERS[name as ToolSyscall] as (a: SyscallArgs<ToolSyscall>, c: SyscallContext) => ReturnType<(typeof HANDLERS)[ToolSyscall]>;
      const d = await handler(v.value.args as SyscallArgs<ToolSyscall>, ctx);
      if (d.kind !== 'result') return fail('EFAULT', `${name} did not produce a result`);
      rt.store.transaction(() => {
        d.commit?.();
        rt.emit('tool_syscall', { tool: call.tool, name, ok: true });
        rt.audit('syscall', name, 'ok', null, { via_tool: call.tool, args: v.value.args });
      });
      return ok(d.value);
    } catch (e) {
      const error = toErrorValue(e);
      rt.store.transaction(() => rt.audit('syscall', name, 'error', error.code, { via_tool: call.tool, args: v.value.args, error }));
      return { ok: false, error };
    }
  }

  /** A request through the egress proxy: the call must be in flight, the host granted, the budget left. */
  egress(token: string, url: string, method: string): Result<null> {
    const call = this.#inflight.get(token);
    if (!call) return fail('EPERM', 'this tool call is no longer in flight');
    const allowed = authorizeEgress(call.grants, url, method, this.#rt.now);
    if (!allowed.ok) return allowed;
    if (++call.subrequests > this.#limits.subRequests) return fail('EQUOTA', `tool ${call.tool} made more than ${this.#limits.subRequests} subrequests`);
    call.network++;
    return ok(null);
  }

  list(): ToolRow[] {
    return this.store.list();
  }
}
