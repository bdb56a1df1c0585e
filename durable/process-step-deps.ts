/**
 * What a process's step loop reaches outside its object (src/process/step.ts `StepDeps`), wired
 * from the Worker's environment: the LLM configuration, the scheduler's client, long-term memory,
 * JIT tools and MCP servers, the trace every LLM call is recorded in (and replayed from), the
 * checkpoint syscalls, and the calls that reach other processes (spawning and signalling children).
 */
import type { CheckpointService } from '../src/checkpoints/service.ts';
import { forkFromSyscall } from '../src/checkpoints/rpc.ts';
import { type TraceStore, tracingProvider } from '../src/checkpoints/trace.ts';
import { KernelError } from '../src/kernel/errors.ts';
import type { Pcb, Signal } from '../src/kernel/pcb.ts';
import type { LineageEntry } from '../src/kernel/scheduler.ts';
import { type SpawnRequest, remainingQuotas, resolveSpawn } from '../src/kernel/spawn.ts';
import { checkModel } from '../src/llm/index.ts';
import type { McpHost } from '../src/mcp/host.ts';
import type { MemoryService } from '../src/memory/service.ts';
import type { ProcessRuntime } from '../src/process/runtime.ts';
import { META } from '../src/process/meta.ts';
import type { SliceClient } from '../src/process/slice.ts';
import type { StepDeps } from '../src/process/step.ts';
import { processStub } from '../src/rpc/stubs.ts';
import type { ToolHost } from '../src/tools/host.ts';

export interface StepWiring {
  readonly env: Env;
  readonly rt: ProcessRuntime;
  readonly clock: () => number;
  readonly slices: SliceClient;
  readonly memory: () => MemoryService;
  readonly tools: ToolHost;
  readonly mcp: McpHost;
  readonly traces: TraceStore;
  readonly checkpoints: CheckpointService;
}

export function stepDepsFor(w: StepWiring): StepDeps {
  const { env, rt } = w;
  return {
    llm: env,
    slices: w.slices,
    // Embeddings are cached in this object's SQLite too: recall queries and re-written texts repeat.
    memory: w.memory,
    vectorRecall: (env.CONTEXT_VECTOR_RECALL ?? 'on').trim().toLowerCase() !== 'off',
    tools: w.tools,
    mcp: w.mcp,
    // Every LLM call is recorded with its step; a process spawned with a trace replays it (src/checkpoints/trace.ts).
    wrapProvider: (make) =>
      tracingProvider(make, w.traces, () => Date.now(), (d) => {
        if (rt.store.getMeta(META.replayDiverged)) return;
        rt.store.transaction(() => {
          rt.store.setMeta(META.replayDiverged, true);
          rt.emit('replay_divergence', d);
        });
      }),
    takeTrace: (step) => w.traces.take(step),
    ...(env.CHECKPOINTS
      ? {
          checkpoints: {
            request: (label: string | null) => w.checkpoints.request(label),
            fork: (ref: string | null, task: string | null, callKey: string) => forkFromSyscall(w.checkpoints, rt, ref, task, callKey, (pid) => processStub(env, pid)),
          },
        }
      : {}),
    approvalTtlMs: Math.max(1, Number(env.APPROVAL_TIMEOUT_SECONDS) || 86_400) * 1000,
    fetch: (request) => fetch(request),
    spawnChild: async (parent: Pcb, request: SpawnRequest, pid: string, spawnKey: string, untrusted: boolean) => {
      const now = w.clock();
      const spec = resolveSpawn(request, {
        pid,
        tenant: parent.tenant,
        ppid: parent.pid,
        spawn_key: `${parent.pid}/${spawnKey}`,
        default_model: { provider: env.LLM_PROVIDER, model: env.LLM_MODEL },
        parent_grants: parent.capabilities,
        parent_remaining: remainingQuotas(parent, now),
        untrusted,
        now,
        priority: parent.priority,
        model: parent.model,
      });
      if (!spec.ok) throw KernelError.fromValue(spec.error);
      const usable = checkModel(spec.value.model, env);
      if (!usable.ok) throw KernelError.fromValue(usable.error);
      // The child's ancestors and their budgets: the scheduler charges its usage to each of them.
      const lineage: LineageEntry[] = [{ pid: parent.pid, max_tokens: parent.quotas.max_tokens }, ...(rt.store.getMeta(META.lineage) ?? [])];
      const r = await processStub(env, pid).spawn({ ...spec.value, lineage });
      if (!r.ok) throw KernelError.fromValue(r.error);
      return { pid: r.value.pid };
    },
    signalChild: async (parent: Pcb, pid: string, signal: Signal, cascade?: boolean) => {
      const r = await processStub(env, pid).signal(signal, parent.pid, parent.tenant, cascade);
      if (r.ok) return { delivered: true, state: r.value.state };
      if (r.error.code === 'ESTATE') return { delivered: false, state: String((r.error.details as { state?: string } | undefined)?.state ?? 'exited') };
      throw KernelError.fromValue(r.error);
    },
  };
}
