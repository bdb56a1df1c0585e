/**
 * The pipeline spec: a DAG of stages, validated once with zod when a pipeline is created or a named
 * spec is stored, so a running pipeline never meets a malformed spec.
 *
 * A stage either runs processes (`type: "process"`, the default) or waits for a human
 * (`type: "approval"`). A process stage spawns one process from a task template, or one per item
 * of a list (`for_each`) with at most `concurrency` alive at once; its result is the process's exit
 * result, or the list of the items' results in item order (fan-in). Templates and conditions may
 * only name stages the stage depends on (`needs`, transitively): what they read is always there.
 *
 * Validation is linear in the spec's size: names are looked up in maps, the DAG is sorted with
 * Kahn's algorithm, templates are scanned once (./template.ts).
 */
import { z } from 'zod';
import { GrantInputSchema } from '../src/kernel/capabilities.ts';
import { type Result, fail, ok } from '../src/kernel/errors.ts';
import { ContextTokensSchema, ModelRefSchema, PrioritySchema, QuotasSchema } from '../src/kernel/pcb.ts';
import { ScriptSchema } from '../src/llm/scripted.ts';
import { type Path, parsePath, templateRefs } from './template.ts';

export const MAX_STAGES = 50;
export const MAX_FAN_OUT = 1000;
export const MAX_CONCURRENCY = 50;
const DAY = 24 * 3600;

const StageNameSchema = z.string().regex(/^[a-z][a-z0-9_]{0,31}$/, 'a stage name is 1-32 lowercase letters, digits or "_", starting with a letter');
const PathSchema = z.string().min(1).max(256).describe('a dotted path: input.topics, stages.plan.result.items, item.title');

export const ConditionSchema = z
  .object({
    path: PathSchema,
    equals: z.unknown().optional(),
    not_equals: z.unknown().optional(),
    in: z.array(z.unknown()).max(100).optional(),
  })
  .strict()
  .describe('run the stage only if the value at path equals / does not equal / is in the given values; with none of them, if it is truthy');
export type Condition = z.infer<typeof ConditionSchema>;

export const RetrySchema = z
  .object({
    limit: z.number().int().min(0).max(10).describe('attempts after the first'),
    delay_seconds: z.number().min(0).max(DAY).default(10),
    backoff: z.enum(['constant', 'linear', 'exponential']).default('exponential'),
  })
  .strict();
export type Retry = z.infer<typeof RetrySchema>;

const common = {
  name: StageNameSchema,
  needs: z.array(StageNameSchema).max(MAX_STAGES).default([]).describe('stages that must complete first'),
  when: ConditionSchema.optional(),
};

export const ProcessStageSchema = z
  .object({
    ...common,
    type: z.literal('process'),
    task: z.string().min(1).max(64 * 1024).describe('the task template: {{input.x}}, {{stages.s.result}}, {{item}}, {{index}}'),
    image: z.string().min(1).max(64).optional(),
    model: z.union([z.string().min(1).max(256), ModelRefSchema.strict()]).optional(),
    priority: PrioritySchema.optional(),
    quotas: QuotasSchema.partial().optional(),
    max_context_tokens: ContextTokensSchema.optional(),
    tool_mode: z.enum(['native', 'text']).optional(),
    capabilities: z.array(GrantInputSchema).max(64).optional().describe("attenuated from the pipeline's capabilities"),
    script: ScriptSchema.optional().describe('scripted-provider turns; templates in its strings are rendered too'),
    for_each: PathSchema.optional().describe('a list (input.x or stages.s.result…): one process per item'),
    concurrency: z.number().int().min(1).max(MAX_CONCURRENCY).default(5).describe('with for_each: processes alive at once'),
    result_file: z.string().min(1).max(512).optional().describe("the stage's result is this file of the process's filesystem instead of its exit result"),
    retries: RetrySchema.default({ limit: 0, delay_seconds: 10, backoff: 'exponential' }),
    timeout_seconds: z.number().int().min(1).max(30 * DAY).default(DAY).describe('per attempt: the process is killed after this'),
  })
  .strict();

export const ApprovalStageSchema = z
  .object({
    ...common,
    type: z.literal('approval'),
    prompt: z.string().min(1).max(8 * 1024).describe('what the reviewer is asked (a template)'),
    timeout_seconds: z.number().int().min(1).max(30 * DAY).default(DAY).describe('the gate expires (and the pipeline fails) after this'),
  })
  .strict();

/** `type` may be left out: a stage without it runs a process. */
export const StageSchema = z.preprocess(
  (v) => (v !== null && typeof v === 'object' && !Array.isArray(v) && !('type' in v) ? { ...v, type: 'process' } : v),
  z.discriminatedUnion('type', [ProcessStageSchema, ApprovalStageSchema]),
);
export type ProcessStage = z.infer<typeof ProcessStageSchema>;
export type ApprovalStage = z.infer<typeof ApprovalStageSchema>;
export type Stage = ProcessStage | ApprovalStage;

export const PipelineSpecSchema = z
  .object({
    description: z.string().max(2000).optional(),
    capabilities: z.array(GrantInputSchema).max(64).optional().describe("the pipeline's grants: every stage's are attenuated from these (default: each image's own)"),
    quotas: QuotasSchema.partial().optional().describe('a ceiling for every process of the pipeline'),
    priority: PrioritySchema.optional().describe("the stages' default priority"),
    model: z.union([z.string().min(1).max(256), ModelRefSchema.strict()]).optional().describe("the stages' default model"),
    stages: z.array(StageSchema).min(1).max(MAX_STAGES),
  })
  .strict()
  .superRefine((spec, ctx) => {
    const r = checkDag(spec.stages);
    if (!r.ok) for (const issue of r.error) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
  });
export type PipelineSpec = z.infer<typeof PipelineSpecSchema>;

interface DagIssue {
  readonly path: (string | number)[];
  readonly message: string;
}

/** Stages in an order where every stage comes after the stages it needs. */
export function topologicalOrder(stages: readonly Stage[]): Result<Stage[]> {
  const r = checkDag(stages);
  if (!r.ok) return fail('EINVAL', r.error.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  return ok(r.value);
}

/** The stages a stage depends on, directly or not. */
function ancestors(order: readonly Stage[]): Map<string, Set<string>> {
  const up = new Map<string, Set<string>>();
  for (const s of order) {
    const set = new Set<string>();
    for (const n of s.needs) {
      set.add(n);
      for (const a of up.get(n) ?? []) set.add(a);
    }
    up.set(s.name, set);
  }
  return up;
}

function checkDag(stages: readonly Stage[]): { ok: true; value: Stage[] } | { ok: false; error: DagIssue[] } {
  const issues: DagIssue[] = [];
  const index = new Map<string, number>();
  stages.forEach((s, i) => {
    if (index.has(s.name)) issues.push({ path: ['stages', i, 'name'], message: `duplicate stage name "${s.name}"` });
    else index.set(s.name, i);
  });
  stages.forEach((s, i) =>
    s.needs.forEach((n, j) => {
      if (!index.has(n)) issues.push({ path: ['stages', i, 'needs', j], message: `"${n}" is not a stage of this pipeline` });
      else if (n === s.name) issues.push({ path: ['stages', i, 'needs', j], message: 'a stage cannot need itself' });
    }),
  );
  if (issues.length) return { ok: false, error: issues };
  // Kahn's algorithm: a stage is ready once every stage it needs has been placed.
  const pending = new Map(stages.map((s) => [s.name, new Set(s.needs).size]));
  const dependents = new Map<string, string[]>();
  for (const s of stages) for (const n of new Set(s.needs)) dependents.set(n, [...(dependents.get(n) ?? []), s.name]);
  const ready = stages.filter((s) => pending.get(s.name) === 0).map((s) => s.name);
  const order: Stage[] = [];
  while (ready.length) {
    const name = ready.shift() as string;
    order.push(stages[index.get(name) as number] as Stage);
    for (const d of dependents.get(name) ?? []) {
      const left = (pending.get(d) as number) - 1;
      pending.set(d, left);
      if (left === 0) ready.push(d);
    }
  }
  if (order.length < stages.length) {
    const stuck = stages.filter((s) => !order.includes(s)).map((s) => s.name);
    return { ok: false, error: [{ path: ['stages'], message: `the stages form a cycle: ${stuck.join(', ')}` }] };
  }
  const up = ancestors(order);
  stages.forEach((s, i) => {
    const visible = up.get(s.name) as Set<string>;
    const check = (path: Path, where: (string | number)[], text: string) => {
      if (path.root === 'stages' && !visible.has(path.stage)) {
        issues.push({ path: where, message: `${text} reads stage "${path.stage}", which this stage does not need (add it to needs)` });
      }
      if ((path.root === 'item' || path.root === 'index') && (s.type !== 'process' || !s.for_each)) {
        issues.push({ path: where, message: `${text} reads ${path.root}, which only a for_each stage has` });
      }
    };
    const refsOf = (text: string, where: (string | number)[]) => {
      const refs = templateRefs(text);
      if (!refs.ok) issues.push({ path: where, message: refs.error.message });
      else for (const p of refs.value) check(p, where, `{{${p.text}}}`);
    };
    if (s.type === 'process') {
      refsOf(s.task, ['stages', i, 'task']);
      if (s.script) refsOf(JSON.stringify(s.script), ['stages', i, 'script']);
      if (s.for_each) {
        const p = parsePath(s.for_each);
        if (!p.ok) issues.push({ path: ['stages', i, 'for_each'], message: p.error.message });
        else if (p.value.root !== 'input' && p.value.root !== 'stages') issues.push({ path: ['stages', i, 'for_each'], message: 'for_each reads a list from input.… or stages.<name>.result…' });
        else check(p.value, ['stages', i, 'for_each'], 'for_each');
      }
    } else refsOf(s.prompt, ['stages', i, 'prompt']);
    if (s.when) {
      const p = parsePath(s.when.path);
      if (!p.ok) issues.push({ path: ['stages', i, 'when', 'path'], message: p.error.message });
      else if (p.value.root === 'item' || p.value.root === 'index') issues.push({ path: ['stages', i, 'when', 'path'], message: 'when is decided once per stage: it cannot read item' });
      else check(p.value, ['stages', i, 'when', 'path'], 'when');
    }
  });
  return issues.length ? { ok: false, error: issues } : { ok: true, value: order };
}

/** Whether a condition holds for a value (JSON equality). */
export function conditionHolds(c: Condition, value: unknown): boolean {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (c.equals !== undefined) return same(value, c.equals);
  if (c.not_equals !== undefined) return !same(value, c.not_equals);
  if (c.in !== undefined) return c.in.some((v) => same(value, v));
  return value !== undefined && value !== null && value !== false && value !== 0 && value !== '' && !(Array.isArray(value) && value.length === 0);
}

/** The delay before retry `attempt` (2 = the first retry), in seconds. */
export function retryDelaySeconds(r: Retry, attempt: number): number {
  const n = Math.max(1, attempt - 1);
  const factor = r.backoff === 'constant' ? 1 : r.backoff === 'linear' ? n : 2 ** (n - 1);
  return Math.min(DAY, r.delay_seconds * factor);
}
