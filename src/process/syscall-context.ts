/**
 * What a syscall handler is given and what it gives back: the `SyscallContext` (the process's
 * state and the ways out of the object a handler may use) and the `Directive` the step engine
 * applies. A module of its own, with no runtime imports, so the handler families (./handlers.ts,
 * ./ipc-handlers.ts, ./memory-handlers.ts, src/tools/handlers.ts) and the modules that run
 * handlers (./step.ts, src/tools/host.ts) depend on it rather than on each other.
 */
import type { ExitStatus, Pcb, Signal, Wait } from '../kernel/pcb.ts';
import type { SyscallArgs, SyscallName } from '../kernel/syscalls.ts';
import type { McpHost } from '../mcp/host.ts';
import type { MemoryService } from '../memory/service.ts';
import type { ToolDefinition } from '../tools/store.ts';
import type { ProcessFs } from './fs.ts';
import type { Mailbox } from './mailbox.ts';
import type { ProcessStore } from './store.ts';

/** What the tool syscalls need of the JIT tool host (src/tools/host.ts implements it). */
export interface ToolRunner {
  prepare(def: ToolDefinition, origin: string, now: number): Promise<{ readonly value: { readonly name: string; readonly hash: string; readonly version: number; readonly source_bytes: number; readonly js_bytes: number }; readonly commit: () => void }>;
  call(pcb: Pcb, name: string, args: Record<string, unknown>, tainted: boolean): Promise<unknown>;
}

export interface MemoryAccess {
  /** The service (built on first use; throws KernelError if the deployment's configuration is wrong). */
  service(): MemoryService;
  /** Put a `memory` audit record in the outbox (call it inside the result's commit). */
  audit(action: 'write' | 'delete', detail: Record<string, unknown>): void;
}

/**
 * Thrown by a handler whose request left the object and whose answer never came back (an RPC that
 * failed in transit: the other object may have acted on it). Only an idempotent call throws it:
 * the dispatcher does not record it as the call's result, the run ends as a fault, and the next
 * run issues the call again with the same key (docs/process.md, crash safety).
 */
export class OutcomeUnknown extends Error {
  constructor(cause: unknown) {
    super(`the outcome is unknown: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

export type Directive =
  | { readonly kind: 'result'; readonly value: unknown; readonly commit?: () => void }
  | { readonly kind: 'sleep'; readonly until: number }
  | { readonly kind: 'block'; readonly wait: Wait; readonly deadline: number | null }
  | { readonly kind: 'exit'; readonly status: ExitStatus }
  /** End the step and the slice; `value` is the call's result (default {}). */
  | { readonly kind: 'yield'; readonly value?: unknown }
  /** Needs a human decision: the process blocks until an operator approves or denies. */
  | { readonly kind: 'ask'; readonly needed: string; readonly reason: string };

/** What a handler may use. `commit` work in a `result` directive runs inside the journal's transaction. */
export interface SyscallContext {
  readonly pcb: Pcb;
  readonly store: ProcessStore;
  readonly fs: ProcessFs;
  readonly now: number;
  /** A key unique to this journal entry: idempotency key for effects on other objects. */
  readonly callKey: string;
  spawnChild(args: SyscallArgs<'spawn'>, callKey: string): Promise<{ pid: string }>;
  signalChild(pid: string, signal: Signal, cascade?: boolean): Promise<{ delivered: boolean; state: string }>;
  /** This process's mailbox (send, recv, publish). */
  readonly mailbox: Mailbox;
  /** D1: the topic registry (subscriptions). */
  readonly db: D1Database;
  fetch(request: Request): Promise<Response>;
  /** Whether another request (a redirect hop) may go out without asking: null if so, else why not. */
  mayFetch(url: string, method: string): string | null;
  /** Swapped-out steps whose pages match a query (by words, and by meaning where memory is configured), best first, at most `limit` (for page_in). */
  findSwapped(query: string, limit: number): Promise<number[]>;
  /** Append copies of swapped steps to the current step (a page fault). Part of the commit. */
  recall(steps: readonly number[]): { step: number; pages: number }[];
  /** Where a step's pages are: in the prompt, swapped out, swapped out with a copy recalled, or no such step. */
  stepState(step: number): 'resident' | 'swapped' | 'recalled' | 'unknown';
  knownSteps(): Set<number>;
  /** Long-term memory (mem_* syscalls); absent where the deployment configures none. */
  readonly memory?: MemoryAccess;
  /** JIT tools (src/tools/host.ts): absent where the deployment has no Worker Loader. */
  readonly tools?: ToolRunner;
  /** Registered MCP servers' tools (src/mcp/host.ts). */
  readonly mcp?: McpHost;
  /** Whether untrusted content is in the working set (memories written then are labelled; tools run without network grants). */
  tainted(): boolean;
  /** Checkpoints of this process (src/checkpoints); absent where the deployment has no CHECKPOINTS bucket. */
  readonly checkpoints?: CheckpointCalls;
}

export type Handlers = { readonly [N in SyscallName]: (args: SyscallArgs<N>, ctx: SyscallContext) => Promise<Directive> | Directive };


/** What the checkpoint and fork syscalls need from the process's object. */
export interface CheckpointCalls {
  /** Take a checkpoint when the current step ends. */
  request(label: string | null): void;
  /** Start a child that is a fork of one of this process's checkpoints (by id or label; null: the newest). */
  fork(checkpoint: string | null, task: string | null, callKey: string): Promise<{ pid: string; forked_from: string }>;
}
