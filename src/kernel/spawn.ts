/**
 * Spawning: from a request (HTTP body or spawn syscall) to the complete, self-contained spec a new
 * process starts from. The image is resolved at spawn time and copied into the process, like exec:
 * a later change to an image never alters a process that is already running.
 */
import { z } from 'zod';
import { type Script, ScriptSchema } from '../llm/scripted.ts';
import type { ToolMode } from '../llm/types.ts';
import { attenuate, inheritGrants } from './attenuation.ts';
import { type Grant, GrantInputSchema, normalizeGrant } from './capabilities.ts';
import { type Result, fail, ok } from './errors.ts';
import { type AutoPolicy, AutoPolicySchema, autoPolicyOf } from '../checkpoints/policy.ts';
import { type Trace, TraceSchema } from '../checkpoints/trace.ts';
import { IMAGES, IMAGE_NAMES } from './images.ts';
import { ContextTokensSchema, DEFAULT_CONTEXT_TOKENS, DEFAULT_QUOTAS, type ModelRef, ModelRefSchema, PRIORITY_DEFAULT, type Pid, PrioritySchema, type Quotas, QuotasSchema } from './pcb.ts';

export const SpawnRequestSchema = z
  .object({
    name: z.string().min(1).max(128),
    task: z.string().min(1).max(256 * 1024),
    image: z.string().min(1).max(64).optional().describe(`one of: ${IMAGE_NAMES.join(', ')} (default "default")`),
    priority: PrioritySchema.optional().describe('0 (most urgent) to 100; default 50'),
    model: z
      .union([z.string().min(1).max(256), ModelRefSchema.strict()])
      .optional()
      .describe('a model name for the configured provider, or {provider, model}'),
    quotas: QuotasSchema.partial().optional(),
    max_context_tokens: ContextTokensSchema.optional().describe('token budget of the working set (default: the image\'s, else 64000)'),
    tool_mode: z.enum(['native', 'text']).optional().describe('how syscalls reach the model: native tools, or [SYS_CALL::…] text for models without tool calling'),
    script: ScriptSchema.optional().describe('turns for the scripted provider (tests, demos)'),
    capabilities: z
      .array(GrantInputSchema)
      .max(64)
      .optional()
      .describe('grants: "fs:/**:rw" or {cap, effect: allow|deny|ask, expires_at?, uses?}; default: what the image declares (for a child: what its parent holds of that)'),
    replay: TraceSchema.optional().describe('run on a replay provider that answers from this trace (GET /v1/processes/:pid/trace) and reports the first divergence'),
    checkpoints: AutoPolicySchema.partial().optional().describe('automatic checkpoints: {every_steps, on_sigstop, keep}; default: the image\'s, else none'),
  })
  .strict();
export type SpawnRequest = z.infer<typeof SpawnRequestSchema>;

export interface SpawnSpec {
  readonly pid: Pid;
  readonly tenant: string;
  readonly ppid: Pid | null;
  readonly name: string;
  readonly task: string;
  readonly image: string;
  readonly system_prompt: string;
  readonly tool_mode: ToolMode;
  readonly priority: number;
  readonly model: ModelRef;
  readonly quotas: Quotas;
  readonly max_context_tokens: number;
  readonly capabilities: readonly Grant[];
  /** The task came from a process whose context held untrusted content: it is untrusted too. */
  readonly untrusted_task: boolean;
  readonly script: Script | null;
  /** Makes spawning idempotent: the same key on the same pid is the same spawn. */
  readonly spawn_key: string;
  /** A trace to replay instead of calling the model (docs/checkpoints.md). */
  readonly replay?: Trace;
  /** Automatic checkpoints (docs/checkpoints.md), when the image or the request asks for them. */
  readonly checkpoints?: AutoPolicy;
  /** The ancestors, parent first, with their token budgets: the scheduler charges a child's usage to them too. */
  readonly lineage?: readonly { readonly pid: Pid; readonly max_tokens: number }[];
  /** Who learns of this process's exit besides its parent: a pipeline instance waiting on it (workflows/). */
  readonly exit_notify?: ExitNotify;
}

/** A pipeline instance (its Workflow instance id) and the event type its exit is sent as. */
export interface ExitNotify {
  readonly pipeline: string;
  readonly event: string;
}

export interface SpawnContext {
  readonly pid: Pid;
  readonly tenant: string;
  readonly ppid: Pid | null;
  readonly spawn_key: string;
  /** The deployment's default provider and model (LLM_PROVIDER, LLM_MODEL). */
  readonly default_model: ModelRef;
  /** A child's grants are attenuated from its parent's (null for a process spawned through the API). */
  readonly parent_grants?: readonly Grant[] | null;
  /** What the parent has left of its quotas: a child never gets more. */
  readonly parent_remaining?: Quotas;
  /** Whether the parent's context held untrusted content when it spawned. */
  readonly untrusted?: boolean;
  readonly now?: number;
  /** The parent's model: a child runs on it unless the request or the child's image names another. */
  readonly model?: ModelRef;
  readonly priority?: number;
}

export function resolveSpawn(req: SpawnRequest, ctx: SpawnContext): Result<SpawnSpec> {
  const imageName = req.image ?? 'default';
  const image = IMAGES[imageName];
  if (!image) return fail('EINVAL', `unknown image "${imageName}"; available images: ${IMAGE_NAMES.join(', ')}`, { image: imageName });
  const model: ModelRef =
    typeof req.model === 'string' ? { provider: (ctx.model ?? ctx.default_model).provider, model: req.model } : (req.model ?? image.model ?? ctx.model ?? ctx.default_model);
  if (req.script !== undefined && model.provider !== 'scripted') {
    return fail('EINVAL', `a script only applies to the scripted provider, not "${model.provider}"`);
  }
  let requested: Grant[] = [];
  for (const input of req.capabilities ?? image.capabilities) {
    const g = normalizeGrant(input);
    if (!g.ok) return g;
    requested.push(g.value);
  }
  // Listing no capabilities means "what I hold, as far as the image needs it", not the image's
  // defaults, which a modest parent would not hold (docs/syscalls.md).
  if (req.capabilities === undefined && ctx.parent_grants) requested = inheritGrants(ctx.parent_grants, requested, ctx.now ?? 0);
  let capabilities = requested;
  if (ctx.parent_grants) {
    const attenuated = attenuate(ctx.parent_grants, requested, ctx.now ?? 0);
    if (!attenuated.ok) return attenuated;
    capabilities = attenuated.value;
  }
  return ok({
    pid: ctx.pid,
    tenant: ctx.tenant,
    ppid: ctx.ppid,
    name: req.name,
    task: req.task,
    image: image.name,
    system_prompt: image.system_prompt,
    tool_mode: req.tool_mode ?? image.tool_mode,
    priority: req.priority ?? ctx.priority ?? PRIORITY_DEFAULT,
    model,
    quotas: clampQuotas({ ...DEFAULT_QUOTAS, ...Object.fromEntries(Object.entries(req.quotas ?? {}).filter(([, v]) => v !== undefined)) }, ctx.parent_remaining),
    max_context_tokens: req.max_context_tokens ?? image.max_context_tokens ?? DEFAULT_CONTEXT_TOKENS,
    capabilities,
    untrusted_task: ctx.untrusted ?? false,
    script: req.script ?? image.script ?? null,
    spawn_key: ctx.spawn_key,
    ...(req.replay ? { replay: req.replay } : {}),
    ...(req.checkpoints || image.checkpoints ? { checkpoints: autoPolicyOf(image.checkpoints, req.checkpoints) } : {}),
  });
}

function clampQuotas(q: Quotas, limit: Quotas | undefined): Quotas {
  if (!limit) return q;
  return {
    max_steps: Math.max(1, Math.min(q.max_steps, limit.max_steps)),
    max_tokens: Math.max(1, Math.min(q.max_tokens, limit.max_tokens)),
    max_wall_seconds: Math.max(1, Math.min(q.max_wall_seconds, limit.max_wall_seconds)),
  };
}

/** What a process has left of its quotas (what its children may at most receive). */
export function remainingQuotas(pcb: { quotas: Quotas; usage: { steps: number; prompt_tokens: number; completion_tokens: number }; created_at: number }, now: number): Quotas {
  return {
    max_steps: Math.max(1, pcb.quotas.max_steps - pcb.usage.steps),
    max_tokens: Math.max(1, pcb.quotas.max_tokens - pcb.usage.prompt_tokens - pcb.usage.completion_tokens),
    max_wall_seconds: Math.max(1, Math.floor(pcb.quotas.max_wall_seconds - (now - pcb.created_at) / 1000)),
  };
}

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

function pidFrom(bytes: Uint8Array): Pid {
  let s = 'p';
  for (let i = 0; i < 20; i++) s += ALPHABET[(bytes[i] ?? 0) % 36];
  return s;
}

/** A fresh random pid. */
export function randomPid(random: (bytes: Uint8Array) => Uint8Array = (b) => crypto.getRandomValues(b)): Pid {
  return pidFrom(random(new Uint8Array(20)));
}

/** The pid of the child spawned by one journal entry: the same entry always names the same child. */
export async function childPid(parent: Pid, callKey: string): Promise<Pid> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(`${parent}/${callKey}`));
  return pidFrom(new Uint8Array(digest));
}
