/**
 * The process core: what the modules of one process's runtime may use of it, and what it needs
 * from outside its object. ProcessRuntime (./runtime.ts) implements `ProcessCore`; the modules
 * installed on it (./lifecycle.ts, ./approvals.ts, ./alarm.ts, ./outbox.ts, ./signals.ts,
 * ./mailbox.ts, ./init.ts) take a `ProcessCore` and import this leaf, never the runtime itself,
 * so none of them depends on another through the class (scripts/check-imports.mjs checks that
 * there is no cycle).
 *
 * Every method that changes state runs inside the caller's synchronous commit
 * (`store.transaction`): a lifecycle change, its event, its audit record and its outbox entries
 * are saved together or not at all.
 */
import type { AuditKind, AuditOutcome, AuditRecord, Statement } from '../audit/audit.ts';
import type { PageBody } from '../kernel/context.ts';
import type { Result } from '../kernel/errors.ts';
import type { WireMessage } from '../kernel/ipc.ts';
import type { ExitStatus, Pcb, Signal } from '../kernel/pcb.ts';
import type { Outcome } from '../kernel/pool-rate.ts';
import type { ExitNotify } from '../kernel/spawn.ts';
import type { TransitionEvent } from '../kernel/state.ts';
import type { SyscallResult } from '../kernel/syscalls.ts';
import type { AuditChainApi, DeliveryOutcome, EventRow } from '../rpc/contracts.ts';
import type { ProcessFs } from './fs.ts';
import type { JournalRow, ProcessStore } from './store.ts';

/** What a process asks of another process's object (through its outbox). */
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

/** What the runtime needs from outside its object. Clocks and randomness are injected here, once. */
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

/**
 * What a process's exit tells the pipeline that spawned it: its code and, when its JSON is at most
 * EXIT_NOTICE_RESULT_BYTES, its result (so a stage that succeeded goes on without re-reading the
 * PCB); the pipeline re-reads the PCB for the rest.
 */
export type ExitNotice = ExitNotify & { readonly pid: string; readonly code: ExitStatus['code']; readonly result?: unknown };
export const EXIT_NOTICE_RESULT_BYTES = 64 * 1024;

/** An effect on another object or on D1, committed with the change that caused it and delivered afterwards (./outbox.ts). */
export type OutboxMessage =
  | { readonly kind: 'd1'; readonly statement: Statement }
  | { readonly kind: 'child_exited'; readonly parent: string; readonly child: string; readonly exit: ExitStatus }
  | { readonly kind: 'reap'; readonly child: string; readonly by: string }
  | { readonly kind: 'sched_release'; readonly pool: string; readonly shard: number; readonly shards: number; readonly ticket: string; readonly outcome: Outcome; readonly sent_at?: number | null }
  | { readonly kind: 'ipc'; readonly message: WireMessage }
  | { readonly kind: 'signal'; readonly pid: string; readonly signal: Signal; readonly from: string; readonly cascade: boolean }
  | { readonly kind: 'orphan'; readonly child: string; readonly name: string; readonly tenant: string; readonly parent: string }
  | ({ readonly kind: 'exit_notify' } & ExitNotice);

/** What the lifecycle needs of the mailbox (./mailbox.ts implements it). */
export interface MailboxPort {
  /** SIGCHLD: a child's exit lands in the mailbox. */
  sigchld(pcb: Pcb, child: string, exit: ExitStatus): void;
  /** A process waiting in recv: complete the wait if a matching message is there. Returns whether it did. */
  recheck(): boolean;
}

/** The process, as the modules of its runtime see it. */
export interface ProcessCore {
  readonly store: ProcessStore;
  readonly fs: ProcessFs;
  readonly mailbox: MailboxPort;
  readonly deps: RuntimeDeps;
  /** The injected clock's reading. */
  readonly now: number;
  pcb(): Pcb | null;
  mustPcb(): Pcb;
  /** Save a PCB and mark the process table's row stale. */
  save(pcb: Pcb): void;
  /** Apply a lifecycle event (src/kernel/state.ts), save, and record it; throws KernelError(ESTATE) if illegal. */
  apply(event: TransitionEvent): Pcb;
  tryApply(event: TransitionEvent): Result<Pcb>;
  emit(type: string, data: unknown): void;
  audit(kind: AuditKind, action: string, outcome: AuditOutcome, code: string | null, detail: unknown): void;
  send(message: OutboxMessage): void;
  addPage(step: number, body: PageBody): void;
  /** Blocked → ready: clear the wait's timers and schedule a run. */
  wake(): void;
  /** Record a syscall's result: journal, context page, usage, event, audit. */
  completeEntry(row: JournalRow, result: SyscallResult, refused?: 'refused'): void;
  exit(status: ExitStatus): void;
  recheckWait(tellChild?: boolean): boolean;
  reap(by: string): Result<Pcb>;
  /** Deliver the outbox and re-arm: the tail of every entry point that changed something. */
  settle(): Promise<void>;
  rearm(): Promise<void>;
  /** Write the process table's row if it is stale, with `reads` in the same D1 batch; their results. */
  flushTable(reads?: readonly Statement[]): Promise<D1Result[]>;
}
