/**
 * The process control block (PCB): everything the kernel knows about one agent process.
 *
 * These schemas are the single definition of the PCB's shape. The Durable Object persists it, the
 * API returns it, and the OpenAPI document describes it, all from here. Field names are snake_case
 * because they are wire names: the same spelling appears in JSON, in storage and in the docs.
 */
import { z } from 'zod';
import { GrantSchema } from './capabilities.ts';

export const PROCESS_STATES = ['ready', 'running', 'sleeping', 'waiting', 'stopped', 'zombie', 'terminated'] as const;
export const ProcessStateSchema = z.enum(PROCESS_STATES);
export type ProcessState = z.infer<typeof ProcessStateSchema>;

/** States in which a process still exists as a running program (it can be signalled). */
export const LIVE_STATES: ReadonlySet<ProcessState> = new Set(['ready', 'running', 'sleeping', 'waiting', 'stopped']);

export const WAIT_REASONS = ['child', 'message', 'approval'] as const;
export const WaitReasonSchema = z.enum(WAIT_REASONS);
export type WaitReason = z.infer<typeof WaitReasonSchema>;

export const SIGNALS = ['SIGTERM', 'SIGKILL', 'SIGSTOP', 'SIGCONT'] as const;
export const SignalSchema = z.enum(SIGNALS);
export type Signal = z.infer<typeof SignalSchema>;

/** Pids are opaque, URL-safe and fixed-length so an unknown id can be told from a malformed one. */
export const PID_PATTERN = /^p[0-9a-z]{20}$/;
export const PidSchema = z.string().regex(PID_PATTERN, 'a pid looks like "p" followed by 20 lowercase letters or digits');
export type Pid = string;

export const PRIORITY_MIN = 0;
export const PRIORITY_MAX = 100;
export const PRIORITY_DEFAULT = 50;
/** 0 is the most urgent, 100 the least, like Unix nice values. */
export const PrioritySchema = z.number().int().min(PRIORITY_MIN).max(PRIORITY_MAX);

export const QuotasSchema = z
  .object({
    max_steps: z.number().int().min(1).max(1_000_000).describe('LLM steps before the process ends with EQUOTA'),
    max_tokens: z.number().int().min(1).max(1_000_000_000).describe('prompt + completion tokens before EQUOTA'),
    max_wall_seconds: z
      .number()
      .int()
      .min(1)
      .max(366 * 24 * 3600)
      .describe('seconds since spawn before EQUOTA'),
  })
  .strict();
export type Quotas = z.infer<typeof QuotasSchema>;

export const DEFAULT_CONTEXT_TOKENS = 64_000;
export const ContextTokensSchema = z.number().int().min(1000).max(2_000_000);

export const DEFAULT_QUOTAS: Quotas = { max_steps: 200, max_tokens: 2_000_000, max_wall_seconds: 7 * 24 * 3600 };

export const UsageSchema = z.object({
  steps: z.number().int(),
  llm_calls: z.number().int(),
  prompt_tokens: z.number().int(),
  completion_tokens: z.number().int(),
  cached_tokens: z.number().int(),
  cache_write_tokens: z.number().int(),
  syscalls: z.number().int(),
});
export type Usage = z.infer<typeof UsageSchema>;

export const ZERO_USAGE: Usage = {
  steps: 0,
  llm_calls: 0,
  prompt_tokens: 0,
  completion_tokens: 0,
  cached_tokens: 0,
  cache_write_tokens: 0,
  syscalls: 0,
};

/** Exit status. `code` is the agent's own integer, or the name of what ended it (EQUOTA, SIGKILL …). */
export const ExitStatusSchema = z.object({
  code: z.union([z.number().int(), z.string()]),
  reason: z.string(),
  result: z.unknown().optional(),
});
export type ExitStatus = z.infer<typeof ExitStatusSchema>;

export const ModelRefSchema = z.object({
  provider: z.string().min(1).max(32),
  model: z.string().min(1).max(256),
  /** Another server for this process's model. The deployment's API key is never sent there. */
  base_url: z.string().url().max(2048).optional(),
});
export type ModelRef = z.infer<typeof ModelRefSchema>;

export const WaitSchema = z.object({
  reason: WaitReasonSchema,
  /** For reason `child`: the awaited child, or null for any child. */
  pid: PidSchema.nullable().optional(),
  /** For reason `approval`: the approval request. */
  approval_id: z.string().optional(),
  /** For reason `message`: the recv filter a matching arrival must pass (src/kernel/ipc.ts). */
  from: z.string().nullable().optional(),
  correlation_id: z.string().nullable().optional(),
  topic: z.string().nullable().optional(),
  /** Epoch ms after which the wait gives up with ETIMEDOUT, if any. */
  deadline: z.number().nullable().optional(),
});
export type Wait = z.infer<typeof WaitSchema>;

/** Tenants partition everything: pids, lists, events, audit chains, approvals. */
export const TenantSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'a tenant is 1-63 lowercase letters, digits, "_" or "-"');

export const WAIT_REASONS_DOC = 'child: a child to exit; message: a mailbox message; approval: a human decision';

export const PcbSchema = z.object({
  pid: PidSchema,
  tenant: TenantSchema,
  ppid: PidSchema.nullable(),
  name: z.string(),
  image: z.string(),
  task: z.string(),
  state: ProcessStateSchema,
  priority: PrioritySchema,
  model: ModelRefSchema,
  capabilities: z.array(GrantSchema),
  quotas: QuotasSchema,
  /** The working set's token budget (the context manager keeps prompts under it). */
  max_context_tokens: z.number().int(),
  usage: UsageSchema,
  wait: WaitSchema.nullable(),
  /** While stopped: the state SIGCONT returns to. */
  stopped_from: ProcessStateSchema.nullable(),
  /** The exit status once the process has exited (zombie or terminated). */
  exit: ExitStatusSchema.nullable(),
  created_at: z.number().describe('epoch ms'),
  updated_at: z.number().describe('epoch ms'),
  /** Increases by one on every change; lets readers fence stale writes. */
  version: z.number().int(),
  /** Lineage of a fork: `<pid>@<checkpoint id>` it was created from (docs/checkpoints.md). */
  forked_from: z.string().optional(),
});
export type Pcb = z.infer<typeof PcbSchema>;

/** The PCB's fields a step changes in every commit (its usage counters, version and time): kept in the step's row when nothing else changed (src/process/store.ts). */
export const PCB_COUNTERS = ['usage', 'version', 'updated_at'] as const;

/** Whether `next` differs from `prev` only in PCB_COUNTERS (fields compared by reference: a PCB is changed by making a new one). */
export function onlyCountersDiffer(prev: Pcb, next: Pcb): boolean {
  const a = prev as unknown as Record<string, unknown>;
  const b = next as unknown as Record<string, unknown>;
  const keys = Object.keys(b);
  if (keys.length !== Object.keys(a).length) return false;
  for (const k of keys) if (!(PCB_COUNTERS as readonly string[]).includes(k) && a[k] !== b[k]) return false;
  return true;
}
