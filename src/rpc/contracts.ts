/**
 * The RPC contracts of the kernel's Durable Objects: what a caller may ask of a process
 * (`AgentProcess`), an LLM pool's scheduler shard (`LlmScheduler`), a tenant's audit chain
 * (`AuditChain`) and a memory index (`MemoryIndex`). The classes in durable/ implement these
 * interfaces; everything in src/ reaches an object only through them (stubs in ./stubs.ts), so
 * src/ never imports durable/ (scripts/check-imports.mjs checks it, with the rest of the layout in
 * docs/architecture.md).
 *
 * A leaf: only `import type`, nothing here runs but the one header name. The interfaces are
 * declared explicitly, not taken from the generated stub types, because those map `unknown` fields
 * (exit results, error details) to `never`. Methods return `Result` values rather than throwing:
 * an error survives the RPC boundary with its code and details intact.
 */
import type { AuditRecord } from '../audit/audit.ts';
import type { Result } from '../kernel/errors.ts';
import type { WireMessage } from '../kernel/ipc.ts';
import type { ExitStatus, Pcb, Signal } from '../kernel/pcb.ts';
import type { Outcome } from '../kernel/pool-rate.ts';
import type { LineageEntry, PoolConfig } from '../kernel/scheduler.ts';
import type { SpawnSpec } from '../kernel/spawn.ts';
import type { MemoryMatch, MemoryQuery, MemoryRecord, MemoryScope } from '../memory/types.ts';
import type { SwappedRun } from '../kernel/pager.ts';
import type { ToolRow } from '../tools/store.ts';
import type { CheckpointOp, ForkInput } from '../checkpoints/contract.ts';

/**
 * A contract as its object implements it: a caller always gets a promise over RPC, and a method
 * that answers synchronously (reads from the object's own storage) may return the value itself.
 * @example export class AgentProcess extends DurableObject<Env> implements Served<ProcessApi> {}
 */
export type Served<Api> = {
  [K in keyof Api]: Api[K] extends (...args: infer A) => Promise<infer R> ? (...args: A) => R | Promise<R> : Api[K];
};

// --- AgentProcess -----------------------------------------------------------------------------------

/**
 * The RPC surface of a process, as callers see it. Declared explicitly because the generated stub
 * type maps `unknown` fields (exit results, error details) to `never`.
 */
export interface ProcessApi {
  spawn(spec: SpawnSpec): Promise<Result<Pcb>>;
  info(tenant: string): Promise<Result<Pcb>>;
  signal(sig: Signal, from: string, tenant: string | null, cascade?: boolean): Promise<Result<Pcb>>;
  deliverMessages(messages: WireMessage[]): Promise<DeliveryOutcome[]>;
  mailbox(tenant: string, status: 'queued' | 'received' | 'all', limit: number, before: number | null): Promise<Result<MailboxView>>;
  adopt(tenant: string, child: string, name: string, from: string): Promise<Result<{ pid: string }>>;
  reparent(init: string, oldParent: string): Promise<void>;
  events(after: number, limit: number, tenant: string): Promise<Result<{ events: EventRow[]; next_after: number }>>;
  readPath(path: string, tenant: string): Promise<Result<FileView>>;
  context(tenant: string): Promise<Result<PageTableView>>;
  decideApproval(input: ApprovalDecision): Promise<Result<Pcb>>;
  childExited(child: string, exit: ExitStatus): Promise<{ reap: boolean }>;
  reap(by: string): Promise<Result<Pcb>>;
  remove(by: string, tenant: string): Promise<Result<{ pid: string; exit: ExitStatus | null }>>;
  schedulerWake(ticket: string): Promise<{ wanted: boolean }>;
  fetch(request: Request): Promise<Response>;
  toolSyscall(token: string, name: string, args: unknown): Promise<Result<unknown>>;
  toolEgress(token: string, url: string, method: string): Promise<Result<null>>;
  listTools(tenant: string): Promise<Result<ToolDefinitionView[]>>;
  /** Checkpoints, restore and fork (src/checkpoints/rpc.ts). */
  checkpoints(tenant: string, op: CheckpointOp): Promise<Result<unknown>>;
  /** Become a fork of another process's checkpoint (called by the original's object). */
  adoptFork(input: ForkInput): Promise<Result<Pcb>>;
  /** Where the process's own audit chain stands: the last record it put in D1 (for /v1/audit/verify). */
  auditHead(tenant: string): Promise<Result<ChainHead>>;
}

export interface MailboxView {
  readonly pid: string;
  readonly queued: number;
  readonly held: number;
  readonly messages: (MailboxMessage & { seq: number; status: string; received_at: number | null })[];
  readonly next_before: number | null;
}
/** A registered tool as the API shows it (with its source, for publishing into an image). */
export type ToolDefinitionView = ToolRow & { readonly source: string };

export interface ApprovalDecision {
  readonly id: string;
  readonly tenant: string;
  readonly args_hash: string;
  readonly decision: 'approve' | 'deny';
  readonly grant: 'once' | 'always';
  readonly note: string;
  readonly by: string;
}

/** The header the Worker uses to tell a process's fetch handler which tenant is asking. */
export const TENANT_HEADER = 'x-agentos-tenant';

export type FileView = { readonly type: 'file'; readonly path: string; readonly content: string; readonly size: number } | { readonly type: 'dir'; readonly path: string; readonly entries: DirEntry[] };

/** One entry of a process's event log (GET /v1/processes/:pid/events, and live over SSE). */
export type EventRow = {
  readonly seq: number;
  readonly at: number;
  readonly type: string;
  readonly data: unknown;
};

/** An entry of a directory in a process's filesystem. */
export interface DirEntry {
  readonly name: string;
  readonly type: 'file' | 'dir';
  readonly size?: number;
}

/** What happened to one arriving message. `dead`: it can never be delivered here (dead-letter it). */
export type DeliveryStatus = 'applied' | 'duplicate' | 'held' | 'retry' | 'dead';
export interface DeliveryOutcome {
  readonly id: string;
  readonly status: DeliveryStatus;
  readonly code?: 'ENOENT' | 'ESTATE';
  readonly reason?: string;
}

/** A message as recv returns it (and the mailbox API lists it). */
export interface MailboxMessage {
  readonly id: string;
  readonly from: string;
  readonly topic: string | null;
  readonly correlation_id: string | null;
  readonly reply_to: string | null;
  readonly body: unknown;
  readonly sent_at: number;
  readonly arrived_at: number;
  readonly late?: boolean;
}

/** The working set and the page table, as GET /v1/processes/:pid/context shows them. */
export interface PageTableView {
  readonly budget: number;
  readonly tokens: number;
  readonly steps: readonly {
    readonly step: number;
    readonly resident: boolean;
    readonly recalled: boolean;
    readonly protected: boolean;
    readonly tokens: number;
    readonly batch: number;
    readonly relevance: number;
    readonly score: number;
    readonly pages: readonly { readonly seq: number; readonly kind: string; readonly tokens: number; readonly importance: number; readonly pinned: boolean; readonly access_count: number; readonly last_access: number; readonly excerpt: string }[];
  }[];
  readonly swapped_runs: readonly SwappedRun[];
}

// --- LlmScheduler -----------------------------------------------------------------------------------

export interface AcquireRequest {
  readonly pool: string;
  readonly shard: number;
  readonly shards: number;
  readonly ticket: string;
  readonly pid: string;
  readonly tenant: string;
  readonly priority: number;
  readonly est_tokens: number;
  readonly lineage: readonly LineageEntry[];
  /** If the ticket must wait but can be granted within this many ms, answer then instead of at once (saves a park and a wake). */
  readonly hold_ms?: number;
}

export type AcquireResult =
  | { readonly status: 'granted'; readonly lease_until: number; readonly waited_ms: number; readonly class: number }
  | { readonly status: 'queued'; readonly position: number; readonly higher_waiting: number; readonly blocked_by: string | null; readonly eta: number | null }
  | { readonly status: 'denied'; readonly pid: string; readonly used: number; readonly max_tokens: number }
  | { readonly status: 'expired' | 'released' | 'unscheduled' };

export interface ReleaseRequest {
  readonly pool: string;
  readonly shard: number;
  readonly shards: number;
  readonly ticket: string;
  readonly outcome: Outcome;
  /** When the call's request left the process (its clock), if it did: the provider's window counts it from then. */
  readonly sent_at?: number | null;
}

export interface ClassWaits {
  readonly granted: number;
  readonly mean_ms: number | null;
  readonly p50_ms: number | null;
  readonly p95_ms: number | null;
  readonly max_ms: number;
}

export interface ShardStats {
  readonly pool: string;
  readonly shard: number;
  readonly config: PoolConfig | null;
  readonly queue_length: number;
  readonly in_flight: number;
  readonly tokens_per_min: number;
  readonly requests_per_min: number;
  readonly granted: number;
  readonly released: number;
  readonly expired: number;
  readonly denied: number;
  readonly abandoned: number;
  readonly rate_limited: number;
  readonly paused_until: number | null;
  readonly rate_factor: number;
  readonly est_ratio: number;
  readonly waits: Readonly<Record<string, ClassWaits>>;
}

export interface SchedulerApi {
  acquire(req: AcquireRequest): Promise<AcquireResult>;
  release(req: ReleaseRequest): Promise<{ ok: true }>;
  stats(pool: string, shard: number): Promise<ShardStats>;
}

// --- AuditChain -------------------------------------------------------------------------------------

export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly tenant: string;
  /** Rows checked: the tenant's chain and every process chain. */
  readonly rows: number;
  /** Process chains checked. */
  readonly chains: number;
  /** The tenant chain's head. */
  readonly head: ChainHead | null;
  /** The first break found: in the tenant's chain (`chain_seq`) or in a process's chain (`pid`, `pid_seq`). */
  readonly first_broken: {
    readonly chain_seq: number | null;
    readonly pid: string | null;
    readonly pid_seq: number | null;
    readonly id: string | null;
    readonly reason: string;
  } | null;
}

export interface AuditChainApi {
  append(tenant: string, records: AuditRecord[]): Promise<{ appended: number }>;
  verify(tenant: string): Promise<VerifyReport>;
}

// --- MemoryIndex ------------------------------------------------------------------------------------

/** The RPC surface of a MemoryIndex object. */
export interface MemoryIndexApi {
  upsert(scope: MemoryScope, records: readonly MemoryRecord[]): Promise<void>;
  query(scope: MemoryScope, query: MemoryQuery): Promise<MemoryMatch[]>;
  remove(scope: MemoryScope, ids: readonly string[]): Promise<string[]>;
  count(scope: MemoryScope): Promise<number>;
}
