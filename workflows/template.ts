/**
 * Task templates and value paths. `{{input.topic}}`, `{{stages.research.result}}`, `{{item.title}}`,
 * `{{index}}`, `{{pipeline.id}}`: a path names a value; a string is inserted as it is, anything
 * else as JSON. A path that names nothing is an error (EINVAL), never an empty string: a typo in a
 * spec must not become a silently empty task.
 *
 * A stage's result may be a reference (`{"$ref": "file" | "exit", pid, …}`) when it is too large to
 * travel inline through Workflow step results (1 MiB each); reading through a reference fetches
 * the value from the process that holds it (`deref`). Scanning is one pass over the text.
 */
import { KernelError, type Result, fail, ok } from '../src/kernel/errors.ts';

export type Path =
  | { readonly text: string; readonly root: 'input'; readonly rest: readonly string[] }
  | { readonly text: string; readonly root: 'stages'; readonly stage: string; readonly rest: readonly string[] }
  | { readonly text: string; readonly root: 'item'; readonly rest: readonly string[] }
  | { readonly text: string; readonly root: 'index' }
  | { readonly text: string; readonly root: 'pipeline'; readonly field: 'id' };

/** A stage result kept outside the Workflow's state: a file of a process, or a process's exit result. */
export type ResultRef = { readonly $ref: 'file'; readonly pid: string; readonly path: string; readonly bytes: number } | { readonly $ref: 'exit'; readonly pid: string; readonly bytes: number };

export function isRef(v: unknown): v is ResultRef {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const r = v as Record<string, unknown>;
  return (r.$ref === 'file' || r.$ref === 'exit') && typeof r.pid === 'string';
}

const SEGMENT = /^[A-Za-z0-9_-]{1,64}$/;

export function parsePath(text: string): Result<Path> {
  const t = text.trim();
  const parts = t.split('.');
  if (parts.length > 32 || parts.some((p) => !SEGMENT.test(p))) return fail('EINVAL', `"${t.slice(0, 80)}" is not a path (dot-separated names or indexes)`);
  const [root, ...rest] = parts as [string, ...string[]];
  switch (root) {
    case 'input':
      return ok({ text: t, root, rest });
    case 'item':
      return ok({ text: t, root, rest });
    case 'index':
      return rest.length === 0 ? ok({ text: t, root }) : fail('EINVAL', '"index" has no fields');
    case 'pipeline':
      return rest.length === 1 && rest[0] === 'id' ? ok({ text: t, root, field: 'id' }) : fail('EINVAL', 'the only pipeline field is pipeline.id');
    case 'stages': {
      const [stage, field, ...more] = rest;
      if (!stage || field !== 'result') return fail('EINVAL', `"${t.slice(0, 80)}": a stage is read as stages.<name>.result…`);
      return ok({ text: t, root, stage, rest: more });
    }
    default:
      return fail('EINVAL', `"${t.slice(0, 80)}": a path starts with input, stages, item, index or pipeline`);
  }
}

const PLACEHOLDER = /\{\{([^{}]*)\}\}/g;
/** The scripted provider's own placeholders ({{task}}, {{last_result}}, {{result:N…}}): left for it to fill. */
const SCRIPTED = /^(task|last_result|result:\d+(\.[A-Za-z0-9_]+)*)$/;

/** Every path a template reads, in order. */
export function templateRefs(text: string): Result<Path[]> {
  const out: Path[] = [];
  for (const m of text.matchAll(PLACEHOLDER)) {
    if (SCRIPTED.test(m[1] as string)) continue;
    const p = parsePath(m[1] as string);
    if (!p.ok) return p;
    out.push(p.value);
  }
  return ok(out);
}

/** What a path can read: the pipeline's input, finished stages' results, the current item. */
export interface Scope {
  readonly pipeline: string;
  readonly input: unknown;
  readonly stages: ReadonlyMap<string, unknown>;
  readonly item?: { readonly value: unknown; readonly index: number };
}

export type Deref = (ref: ResultRef) => Promise<unknown>;

async function walk(value: unknown, rest: readonly string[], deref: Deref, text: string): Promise<unknown> {
  let v = value;
  for (const seg of rest) {
    if (isRef(v)) v = await deref(v);
    if (typeof v === 'string' && (v.startsWith('{') || v.startsWith('['))) {
      try {
        v = JSON.parse(v) as unknown;
      } catch {
        // a plain string has no fields
      }
    }
    if (Array.isArray(v) && /^\d+$/.test(seg)) v = v[Number(seg)];
    else if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.hasOwn(v, seg)) v = (v as Record<string, unknown>)[seg];
    else throw new KernelError('EINVAL', `{{${text}}} names nothing: no "${seg}" there`, { path: text });
  }
  return deepDeref(v, deref);
}

/** Replace references anywhere in a value by what they point at (a whole fan-in result, say). */
async function deepDeref(v: unknown, deref: Deref): Promise<unknown> {
  if (isRef(v)) return deref(v);
  if (Array.isArray(v)) return Promise.all(v.map((x) => deepDeref(x, deref)));
  return v;
}

/** The value a path names in a scope (EINVAL if it names nothing). */
export async function resolvePath(p: Path, scope: Scope, deref: Deref): Promise<unknown> {
  switch (p.root) {
    case 'input':
      return walk(scope.input, p.rest, deref, p.text);
    case 'index':
      if (!scope.item) throw new KernelError('EINVAL', '{{index}} outside a for_each stage');
      return scope.item.index;
    case 'pipeline':
      return scope.pipeline;
    case 'item':
      if (!scope.item) throw new KernelError('EINVAL', '{{item}} outside a for_each stage');
      return walk(scope.item.value, p.rest, deref, p.text);
    case 'stages':
      if (!scope.stages.has(p.stage)) throw new KernelError('EINVAL', `{{${p.text}}}: stage "${p.stage}" has no result (it was skipped or has not run)`);
      return walk(scope.stages.get(p.stage), p.rest, deref, p.text);
  }
}

const asText = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v) ?? 'null');

/** Render a template: each placeholder becomes the value it names. */
export async function render(text: string, scope: Scope, deref: Deref): Promise<string> {
  const refs = templateRefs(text);
  if (!refs.ok) throw KernelError.fromValue(refs.error);
  if (refs.value.length === 0) return text;
  const values = await Promise.all(refs.value.map((p) => resolvePath(p, scope, deref)));
  let i = 0;
  return text.replace(PLACEHOLDER, (whole, inner: string) => (SCRIPTED.test(inner) ? whole : asText(values[i++])));
}

/** Render every string inside a JSON value (a scripted stage's turns). */
export async function renderDeep(value: unknown, scope: Scope, deref: Deref): Promise<unknown> {
  if (typeof value === 'string') return render(value, scope, deref);
  if (Array.isArray(value)) return Promise.all(value.map((v) => renderDeep(v, scope, deref)));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = await renderDeep(v, scope, deref);
    return out;
  }
  return value;
}
