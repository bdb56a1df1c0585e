/**
 * The process's `meta` table, described once: every key a process keeps there, the type of its
 * value and what it holds, as ./schema.ts describes its tables. `ProcessStore.getMeta`/`setMeta`
 * take only these keys, so a value is read back with the type it was written with, and a key
 * cannot be misspelt. Values are JSON.
 */
import type { ProcessChainHead } from '../audit/audit.ts';
import type { AutoPolicy } from '../checkpoints/policy.ts';
import type { ErrorValue } from '../kernel/errors.ts';
import type { LineageEntry } from '../kernel/scheduler.ts';
import type { ExitNotify } from '../kernel/spawn.ts';
import type { Script } from '../llm/scripted.ts';
import type { ToolMode } from '../llm/types.ts';

declare const VALUE: unique symbol;

/** A meta key whose value has type T. */
export interface MetaKey<T> {
  readonly name: string;
  readonly holds: string;
  /** Only for the type checker: the value's type. */
  readonly [VALUE]?: (value: T) => T;
}

const keys: MetaKey<unknown>[] = [];

function key<T>(name: string, holds: string): MetaKey<T> {
  const k: MetaKey<T> = { name, holds };
  keys.push(k as MetaKey<unknown>);
  return k;
}

/** What a process runs: its system prompt, how tools are offered, and the scripted model's script. */
export interface ImageMeta {
  readonly system_prompt: string;
  readonly tool_mode: ToolMode;
  readonly script: Script | null;
}

/** A SIGTERM under way (./signals.ts). */
export interface TermState {
  readonly from: string;
  readonly deadline: number;
  /** Whether the clean-up step has been handed out. */
  readonly cleanup: boolean;
}

/** The scheduler ticket being asked for or held (./slice.ts). */
export interface HeldTicket {
  readonly id: string;
  readonly pool: string;
  readonly shard: number;
  readonly shards: number;
  readonly granted: boolean;
  readonly queued: boolean;
  readonly est_tokens: number;
  /** When the grant was first heard (the call goes then): the provider's window counts the request from it. */
  readonly sent_at?: number;
}

/** Where this process's audit chain stands: delivered to D1 up to `seq` (hash `hash`), anchored in the tenant's chain up to `anchored`. */
export type AuditHead = ProcessChainHead & { readonly anchored: number };

export const META = {
  image: key<ImageMeta>('image', 'the image the process was spawned with (lifecycle.ts)'),
  spawnKey: key<string>('spawn_key', 'the idempotency key it was spawned under'),
  lineage: key<readonly LineageEntry[]>('lineage', "its ancestors' pids and token budgets, nearest first (the scheduler counts descendants' usage)"),
  exitNotify: key<ExitNotify>('exit_notify', 'who hears of its exit (a pipeline stage)'),
  initialized: key<boolean>('init', "the tenant's init process has set itself up (init.ts)"),
  tableDirty: key<boolean>('table_dirty', "the process table's row in D1 is older than the PCB (outbox.ts)"),
  auditHead: key<AuditHead>('audit_head', "the audit chain's head: delivered to D1 and anchored up to"),
  auditSeqLegacy: key<number>('audit_seq', 'audit records numbered by kernels before the audit log (read, never written)'),
  faults: key<number>('faults', 'alarm runs in a row that faulted (counted before each run, reset after it; alarm.ts)'),
  lastFault: key<ErrorValue>('last_fault', 'the last fault, for the EFAULT reason'),
  termPending: key<TermState | null>('term_pending', 'a SIGTERM under way (signals.ts)'),
  llmAttempts: key<number>('llm_attempts', 'LLM calls in a row that failed (step.ts)'),
  contextFloor: key<number>('context_floor', 'the first step still in the context'),
  contextShrunkAt: key<number>('context_shrunk_at', 'the step that last shrank the context'),
  schedTicket: key<HeldTicket | null>('sched_ticket', 'the scheduler ticket being asked for or held (slice.ts)'),
  schedSeq: key<number>('sched_seq', "the last ticket's number"),
  schedWoken: key<string | null>('sched_woken', 'a wake that arrived while asking'),
  schedLast: key<string>('sched_last', 'the last ticket given back'),
  ckptAuto: key<AutoPolicy>('ckpt_auto', 'the automatic checkpoint policy'),
  ckptAutoLast: key<number>('ckpt_auto_last', 'the step of the last automatic checkpoint'),
  ckptSigstopPending: key<boolean>('ckpt_sigstop_pending', 'a checkpoint is due when the step under way ends (SIGSTOP)'),
  ckptRequested: key<{ label: string | null } | null>('ckpt_requested', 'a checkpoint asked for through the API, due at the next step boundary'),
  replayDiverged: key<boolean>('replay_diverged', 'a replaying process asked something its trace does not hold'),
} as const;

/** Every meta key, for the checks that storage holds nothing undescribed. */
export const META_KEYS: readonly MetaKey<unknown>[] = keys;
