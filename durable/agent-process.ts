/**
 * AgentProcess: one Durable Object per agent process. A thin shell: it owns the storage, the alarm,
 * the RPC surface and live event streams (./process-streams.ts), wires what the step loop reaches
 * outside the object (./process-step-deps.ts), and delegates every decision to src/process (runtime
 * and step loop) and src/kernel (pure rules).
 *
 * RPC methods return `Result` values rather than throwing: errors are part of the contract, and a
 * value survives the RPC boundary with its code and details intact.
 */
import { DurableObject } from 'cloudflare:workers';
import { type Result, fail, ok, toErrorValue } from '../src/kernel/errors.ts';
import { normalizePath } from '../src/kernel/paths.ts';
import type { ExitStatus, Pcb, Signal } from '../src/kernel/pcb.ts';
import type { SpawnSpec } from '../src/kernel/spawn.ts';
import { pageTable } from '../src/process/context-manager.ts';
import { ProcessRuntime } from '../src/process/runtime.ts';
import { StepLoop, type StepDeps } from '../src/process/step.ts';
import type { EventRow } from '../src/process/store.ts';
import type { ApprovalDecision, ChainHead, FileView, MailboxView, PageTableView, ProcessApi, Served, ToolDefinitionView } from '../src/rpc/contracts.ts';
import { auditChain, processStub, schedulerStub } from '../src/rpc/stubs.ts';
import { deleteProcessRow } from '../src/process/table.ts';
import { SliceClient } from '../src/process/slice.ts';
import { poolsFromEnv } from '../src/kernel/scheduler.ts';
import type { WireMessage } from '../src/kernel/ipc.ts';
import { createTransport, parseMode } from '../src/ipc/transport.ts';
import type { DeliveryOutcome } from '../src/process/mailbox.ts';
import { adopt, createInit, initChildExited, initPid, isInit, reparent } from '../src/process/init.ts';
import { SqlEmbeddingCache } from '../src/memory/embeddings.ts';
import { type MemoryService, memoryService } from '../src/memory/service.ts';
import { forgetPages } from '../src/memory/recall.ts';
import { type BrokerProps, ToolHost, type ToolLimits } from '../src/tools/host.ts';
import { type ImageHeadRow, imageHeadStatement, imageTools } from '../src/tools/images.ts';
import { ToolStore } from '../src/tools/store.ts';
import { notifyPipeline } from '../workflows/notify.ts';
import { McpHost } from '../src/mcp/host.ts';
import { McpRegistry } from '../src/mcp/registry.ts';
import { CheckpointService } from '../src/checkpoints/service.ts';
import { type CheckpointOp, runCheckpointOp } from '../src/checkpoints/rpc.ts';
import { type ForkInput, adoptFork } from '../src/checkpoints/fork.ts';
import { bucketOrFail } from '../src/checkpoints/store.ts';
import { TraceStore } from '../src/checkpoints/trace.ts';
import { EventStreams } from './process-streams.ts';
import { stepDepsFor } from './process-step-deps.ts';

export class AgentProcess extends DurableObject<Env> implements Served<ProcessApi> {
  readonly #rt: ProcessRuntime;
  readonly #loop: StepLoop;
  readonly #slices: SliceClient;
  readonly #streams = new EventStreams();
  #memory: MemoryService | Error | undefined;
  readonly #checkpoints: CheckpointService;
  readonly #traces: TraceStore;
  /** JIT tools: the tool table, the isolates in flight, the broker's and the proxy's callbacks. */
  readonly toolHost: ToolHost;
  /** MCP servers: the tools this process's grants name, and the calls to them. */
  readonly mcpHost: McpHost;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#slices = new SliceClient(poolsFromEnv(env.SCHEDULER_POOLS), (pool, shard) => schedulerStub(env, pool, shard));
    this.#rt = new ProcessRuntime({
      storage: ctx.storage,
      db: env.DB,
      process: (pid) => processStub(env, pid),
      auditChain: (tenant) => auditChain(env, tenant),
      now: () => this.clock(),
      random: Math.random,
      onEvent: (e) => this.#streams.broadcast(e),
      scheduler: (pool, shard) => schedulerStub(env, pool, shard),
      ipc: createTransport({
        mode: parseMode(env.IPC_TRANSPORT),
        rpc: (to, messages) => processStub(env, to).deliverMessages(messages),
        queue: env.IPC_QUEUE as Queue<WireMessage> | undefined,
        db: env.DB,
        now: () => this.clock(),
        onFallback: (to, count, why) => this.#rt.emit('ipc_fallback', { to, count, why }),
      }),
      termGraceMs: Math.max(0, Number(env.SIGTERM_GRACE_SECONDS ?? 30) || 0) * 1000,
      notifyExit: (notice) => notifyPipeline(env.PIPELINES, notice),
    });
    this.toolHost = new ToolHost(this.#rt, new ToolStore(ctx.storage.sql), this.toolBindings(), this.toolLimits());
    this.mcpHost = new McpHost({
      registry: new McpRegistry(env.DB, env.MCP_SECRET_KEY),
      fetch: (input, init) => fetch(input, init),
      now: () => Date.now(),
      emit: (type, data) => this.#rt.store.transaction(() => this.#rt.emit(type, data)),
    });
    this.#traces = new TraceStore(ctx.storage.sql);
    this.#checkpoints = new CheckpointService(this.#rt, () => env.CHECKPOINTS);
    // Last: what the step loop is given (./process-step-deps.ts) holds the parts built above.
    this.#loop = new StepLoop(this.#rt, this.stepDeps());
    // A new instance means the old one is gone: a step it left open resumes now, and every timer is re-armed.
    void ctx.blockConcurrencyWhile(() => this.#rt.recover());
  }

  /** The wall clock every decision of this process reads, injected into the runtime (tests and benchmarks override it). */
  protected clock(): number {
    return Date.now();
  }

  /** The Worker Loader and the broker/egress entrypoints bound through ctx.exports (null without a LOADER binding). */
  protected toolBindings(): ConstructorParameters<typeof ToolHost>[2] {
    const loader = this.env.LOADER;
    const exports = (this.ctx as unknown as { exports?: Record<string, ((o: { props: BrokerProps }) => Fetcher) | undefined> }).exports;
    const broker = exports?.ToolBroker;
    const egress = exports?.ToolEgress;
    if (!loader || !broker || !egress) return null;
    return { loader, broker: (props) => broker({ props }), egress: (props) => egress({ props }) };
  }

  /** Per-call tool limits (tests and benchmarks override). */
  protected toolLimits(): Partial<ToolLimits> {
    return {};
  }

  /** Long-term memory, built on first use. Embeddings are cached in this object's SQLite too: recall queries and re-written texts repeat. */
  #memoryService(): MemoryService {
    if (this.#memory === undefined) {
      try {
        this.#memory = memoryService(this.env, new SqlEmbeddingCache(this.ctx.storage.sql));
      } catch (e) {
        // A configuration error stays one until the object restarts (a deploy): not rebuilt on every step.
        this.#memory = e instanceof Error ? e : new Error(String(e));
      }
    }
    if (this.#memory instanceof Error) throw this.#memory;
    return this.#memory;
  }

  /** What the step loop uses to reach outside this object (./process-step-deps.ts). Overridable for benchmarks and adapters. */
  protected stepDeps(): StepDeps {
    return stepDepsFor({
      env: this.env,
      rt: this.#rt,
      clock: () => this.clock(),
      slices: this.#slices,
      memory: () => this.#memoryService(),
      tools: this.toolHost,
      mcp: this.mcpHost,
      traces: this.#traces,
      checkpoints: this.#checkpoints,
    });
  }

  override async alarm(): Promise<void> {
    await this.#checkpoints.slice(() => this.#rt.onAlarm(() => this.#loop.runSlice()));
    await this.#checkpoints.afterSlice();
  }

  // --- RPC ------------------------------------------------------------------------------------------

  /**
   * Spawn: the process is created in one commit (src/process/lifecycle.ts), then, in one D1 round
   * trip, listed in the process table (so `ps` shows it once this answers) and the tools published
   * into its image are read. Those and the image's built-in tools are registered before the first
   * step: the alarm that runs it is armed only after them, and nothing else reaches this object
   * meanwhile. A retried spawn (same key) is answered with the process as it is.
   */
  async spawn(spec: SpawnSpec): Promise<Result<Pcb>> {
    // The trace to replay is in before the process exists, so its first step already answers from it.
    if (spec.replay && !this.#rt.pcb()) this.#traces.loadReplay(spec.replay);
    const r = this.#rt.spawn(spec);
    if (!r.ok) return r;
    const { created } = r.value;
    if (created || this.toolHost.store.count() === 0) {
      await this.ctx.blockConcurrencyWhile(async () => {
        try {
          const head = imageHeadStatement(spec.tenant, spec.image);
          const read = created ? await this.#rt.listNew([head]) : [await this.env.DB.prepare(head.sql).bind(...head.params).all<ImageHeadRow>()];
          if (read === null) throw new Error('D1 was not reachable; the published tools could not be read');
          for (const { defs, origin } of imageTools(spec.image, read[0]?.results[0] as ImageHeadRow | undefined)) await this.toolHost.install(defs, origin);
        } catch (e) {
          this.#rt.store.transaction(() => this.#rt.emit('tool_install_failed', { image: spec.image, error: toErrorValue(e) }));
        }
      });
    }
    // A new process's audit record goes to D1 with its first step's; a retried spawn delivers what it owes.
    if (created) await this.#rt.rearm();
    else await this.#rt.settle();
    return ok(this.#rt.mustPcb());
  }

  // --- JIT tools: callbacks from a tool's broker and egress proxy, and the tool list ---------------

  async toolSyscall(token: string, name: string, args: unknown): Promise<Result<unknown>> {
    return this.toolHost.syscall(token, name, args);
  }

  toolEgress(token: string, url: string, method: string): Result<null> {
    return this.toolHost.egress(token, url, method);
  }

  listTools(tenant: string): Result<ToolDefinitionView[]> {
    const own = this.#own(tenant);
    if (!own.ok) return own;
    return ok(this.toolHost.store.list().map((t) => ({ ...t, source: this.toolHost.store.code(t.hash)?.source ?? '' })));
  }

  // --- checkpoints, restore, fork -------------------------------------------------------------------

  async checkpoints(tenant: string, op: CheckpointOp): Promise<Result<unknown>> {
    const own = this.#own(tenant);
    if (!own.ok) return own;
    try {
      return ok(await runCheckpointOp(this.#checkpoints, this.#rt, op, (pid) => processStub(this.env, pid), this.#traces));
    } catch (e) {
      return { ok: false, error: toErrorValue(e) };
    }
  }

  async adoptFork(input: ForkInput): Promise<Result<Pcb>> {
    try {
      return ok(await adoptFork(this.#rt, bucketOrFail(this.env.CHECKPOINTS), input));
    } catch (e) {
      return { ok: false, error: toErrorValue(e) };
    }
  }

  /** The PCB if it exists and belongs to `tenant`; another tenant's process does not exist for the caller. */
  #own(tenant: string | null): Result<Pcb> {
    const pcb = this.#rt.pcb();
    return pcb && (tenant === null || pcb.tenant === tenant) ? ok(pcb) : fail('ENOENT', 'no such process');
  }

  info(tenant: string): Result<Pcb> {
    return this.#own(tenant);
  }

  /** `tenant` null: a kernel-internal sender (a parent signalling its child). */
  async signal(sig: Signal, from: string, tenant: string | null, cascade = false): Promise<Result<Pcb>> {
    const own = this.#own(tenant);
    if (!own.ok) return own;
    if (isInit(this.#rt)) return fail('EPERM', 'init cannot be signalled: it adopts and reaps orphaned processes', { pid: own.value.pid });
    const r = this.#rt.signal(sig, from, cascade);
    await this.#rt.settle();
    if (r.ok && sig === 'SIGSTOP') await this.#checkpoints.onSigstop();
    return r;
  }

  async decideApproval(input: ApprovalDecision): Promise<Result<Pcb>> {
    return this.#rt.decideApproval(input);
  }

  events(after: number, limit: number, tenant: string): Result<{ events: EventRow[]; next_after: number }> {
    const own = this.#own(tenant);
    if (!own.ok) return own;
    const events = this.#rt.store.events(after, limit);
    return ok({ events, next_after: events.at(-1)?.seq ?? after });
  }

  /** The working set and the page table. */
  context(tenant: string): Result<PageTableView> {
    const own = this.#own(tenant);
    if (!own.ok) return own;
    return ok(pageTable(this.#rt, own.value.max_context_tokens, own.value.usage.steps + 1));
  }

  readPath(path: string, tenant: string): Result<FileView> {
    const own = this.#own(tenant);
    if (!own.ok) return own;
    const p = normalizePath(path);
    if (!p.ok) return p;
    try {
      const fs = this.#rt.fs;
      const stat = fs.stat(p.value);
      if (stat) return ok({ type: 'file', path: p.value, content: fs.read(p.value), size: stat.size });
      return ok({ type: 'dir', path: p.value, entries: fs.list(p.value) });
    } catch (e) {
      return { ok: false, error: toErrorValue(e) };
    }
  }

  /** Called by the LLM scheduler when this process's ticket has been decided: run now. */
  async schedulerWake(ticket: string): Promise<{ wanted: boolean }> {
    return this.#slices.wake(this.#rt, ticket);
  }

  /** Called by a child (through its outbox) when it exits. */
  async childExited(child: string, exit: ExitStatus): Promise<{ reap: boolean }> {
    const r = isInit(this.#rt) ? initChildExited(this.#rt, child, exit) : this.#rt.childExited(child, exit);
    await this.#rt.settle();
    return r;
  }

  /** Called by the parent (through its outbox) once it has collected this process's exit status. */
  async reap(by: string): Promise<Result<Pcb>> {
    const r = this.#rt.reap(by);
    await this.#rt.settle();
    return r;
  }

  /**
   * Remove the process: kill it if it is alive, deliver what it owes others (its parent's SIGCHLD,
   * audit rows), then drop its row from the process table and release its storage.
   */
  async auditHead(tenant: string): Promise<Result<ChainHead>> {
    const own = this.#own(tenant);
    if (!own.ok) return own;
    const head = this.#rt.store.deliveries.auditHead();
    return ok({ seq: head.seq, hash: head.hash });
  }

  async remove(by: string, tenant: string): Promise<Result<{ pid: string; exit: ExitStatus | null }>> {
    const own = this.#own(tenant);
    if (!own.ok) return own;
    const pcb = own.value;
    if (isInit(this.#rt)) return fail('EPERM', 'init cannot be removed: it adopts and reaps orphaned processes', { pid: pcb.pid });
    if (pcb.state !== 'zombie' && pcb.state !== 'terminated') this.#rt.signal('SIGKILL', by);
    // Its swapped-out pages' vectors (pages/<pid>) go with it. Best effort: a store that cannot be
    // reached must not keep a process from being removed; what is left is in the audit record.
    const indexed = this.#rt.store.pages.embedded();
    let forgot: Record<string, unknown> | null = null;
    if (indexed.length > 0) {
      const chunks = indexed.reduce((n, p) => n + p.chunks, 0);
      try {
        await forgetPages(this.#memoryService(), { tenant: pcb.tenant, pid: pcb.pid }, indexed);
        forgot = { namespace: `pages/${pcb.pid}`, chunks };
      } catch (e) {
        forgot = { namespace: `pages/${pcb.pid}`, chunks, error: e instanceof Error ? e.message : String(e) };
      }
    }
    this.#rt.store.transaction(() => {
      this.#rt.audit('lifecycle', 'remove', 'ok', null, { by });
      if (forgot) {
        this.#rt.audit('memory', 'forget_pages', forgot.error ? 'error' : 'ok', forgot.error ? 'EIO' : null, forgot);
        // Retrying a removal (EAGAIN below) does not delete or audit them again.
        this.#rt.store.pages.markEmbedded(indexed.map((p) => ({ seq: p.seq, chunks: 0 })));
      }
    });
    await this.#rt.flush();
    const head = this.#rt.store.deliveries.auditHead();
    // Its audit chain must be in D1 and anchored in the tenant's chain before its storage goes.
    if (this.#rt.store.deliveries.owed() > 0 || head.anchored < head.seq) {
      await this.#rt.rearm();
      return fail('EAGAIN', 'the process has deliveries that could not be made yet (its parent or D1 is unreachable); retry shortly', { pid: pcb.pid });
    }
    // Its checkpoints go with it (docs/checkpoints.md, retention): nothing can restore or fork them
    // once the process is gone, and a fork already holds its own copy.
    try {
      await this.#checkpoints.purge();
    } catch (e) {
      return fail('EAGAIN', `the process's checkpoints could not be deleted yet (${e instanceof Error ? e.message : String(e)}); retry shortly`, { pid: pcb.pid });
    }
    const s = deleteProcessRow(pcb.pid);
    await this.env.DB.prepare(s.sql).bind(...s.params).run();
    const exit = this.#rt.pcb()?.exit ?? null;
    this.#streams.closeAll();
    await this.#rt.destroy();
    this.toolHost.store.reset();
    return ok({ pid: pcb.pid, exit });
  }

  // --- IPC ----------------------------------------------------------------------------------------

  /** Messages arrive (another process's outbox, the Queue consumer, the API). Idempotent; see src/process/mailbox.ts. */
  async deliverMessages(messages: WireMessage[]): Promise<DeliveryOutcome[]> {
    const outcomes = this.#rt.mailbox.deliver(messages);
    if (outcomes.some((o) => o.status === 'applied')) await this.#rt.settle();
    return outcomes;
  }

  mailbox(tenant: string, status: 'queued' | 'received' | 'all', limit: number, before: number | null): Result<MailboxView> {
    const own = this.#own(tenant);
    if (!own.ok) return own;
    return ok({ pid: own.value.pid, ...this.#rt.mailbox.counts(), ...this.#rt.mailbox.list(status, limit, before) });
  }

  /** This object is (or becomes) the tenant's init process, and takes an orphan. */
  async adopt(tenant: string, child: string, name: string, from: string): Promise<Result<{ pid: string }>> {
    let pcb = this.#rt.pcb();
    if (pcb && !isInit(this.#rt)) return fail('EEXIST', `process ${pcb.pid} is not an init process`);
    if (pcb && pcb.tenant !== tenant) return fail('ENOENT', 'no such process');
    if (!pcb) pcb = createInit(this.#rt, await initPid(tenant), tenant);
    adopt(this.#rt, child, name, from);
    await this.#rt.settle();
    return ok({ pid: pcb.pid });
  }

  /** The parent exited: `init` is this process's parent now. */
  async reparent(init: string, oldParent: string): Promise<void> {
    reparent(this.#rt, init, oldParent);
    await this.#rt.settle();
  }

  // --- live events (server-sent events, ./process-streams.ts) ------------------------------------

  override async fetch(request: Request): Promise<Response> {
    return this.#streams.open(request, this.#rt);
  }
}
