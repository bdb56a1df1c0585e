/**
 * Pipeline routes: start a run from a spec or a named spec, read it (every stage, item, pid,
 * timing and error), list runs, cancel one, and store named specs per tenant. The engine is
 * workflows/ (a Cloudflare Workflow per run); these routes only validate, call it and shape answers.
 */
import { z } from 'zod';
import { KernelError } from '../kernel/errors.ts';
import { cancelPipeline, checkSpawnable, startPipeline, viewPipeline } from '../../workflows/control.ts';
import { type PipelineSpec, PipelineSpecSchema } from '../../workflows/spec.ts';
import { PIPELINE_STATUSES, listPipelines } from '../../workflows/store.ts';
import { audit } from '../../workflows/tasks.ts';
import { E, intParam } from './common.ts';
import type { ApiRegistry } from './registry.ts';

export const SpecNameSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'a spec name is 1-63 lowercase letters, digits, "_" or "-"');

const StartBody = z
  .object({
    spec: PipelineSpecSchema.optional().describe('the pipeline, inline'),
    name: SpecNameSchema.optional().describe('or the name of a stored spec (PUT /v1/pipeline-specs/:name)'),
    input: z.unknown().optional().describe('what {{input.…}} reads'),
  })
  .strict()
  .refine((b) => (b.spec === undefined) !== (b.name === undefined), { message: 'give exactly one of spec and name' });

const TaskViewSchema = z.object({
  item: z.number(),
  attempt: z.number(),
  pid: z.string(),
  status: z.enum(['running', 'complete', 'failed', 'cancelled']),
  exit_code: z.string().nullable(),
  result: z.unknown(),
  error: z.unknown(),
  started_at: z.number(),
  ended_at: z.number().nullable(),
});
const PipelineViewSchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  status: z.enum(PIPELINE_STATUSES),
  error: z.unknown(),
  input: z.unknown(),
  created_at: z.number(),
  updated_at: z.number(),
  ended_at: z.number().nullable(),
  created_by: z.string(),
  stages: z.array(
    z.object({
      name: z.string(),
      type: z.enum(['process', 'approval']),
      status: z.string(),
      items: z.number().nullable(),
      approval_id: z.string().nullable(),
      result: z.unknown(),
      error: z.unknown(),
      started_at: z.number().nullable(),
      ended_at: z.number().nullable(),
      tasks: z.array(TaskViewSchema),
    }),
  ),
  workflow: z.object({ status: z.string(), error: z.string().nullable() }).nullable(),
});
const PipelineRowSchema = PipelineViewSchema.pick({ id: true, name: true, status: true, error: true, created_at: true, updated_at: true, ended_at: true, created_by: true });
const IdParams = z.object({ id: z.string().max(64) });
const SpecRowSchema = z.object({ name: z.string(), version: z.number(), spec: z.unknown(), updated_at: z.number(), updated_by: z.string() });

async function storedSpec(db: D1Database, tenant: string, name: string): Promise<PipelineSpec> {
  const row = await db.prepare('SELECT spec FROM pipeline_specs WHERE tenant = ? AND name = ?').bind(tenant, name).first<{ spec: string }>();
  if (!row) throw new KernelError('ENOENT', `no pipeline spec named "${name}"; store one with PUT /v1/pipeline-specs/${name}`);
  return PipelineSpecSchema.parse(JSON.parse(row.spec));
}

/** Start a run of a stored spec (the webhook route's `pipeline` action uses this too). */
export async function startNamed(env: Env, tenant: string, name: string, input: unknown, by: string, from: { key?: string; untrusted?: boolean } = {}) {
  return startPipeline(env, { tenant, name, spec: await storedSpec(env.DB, tenant, name), input, by, ...from });
}

export function registerPipelines(api: ApiRegistry): void {
  api.route(
    {
      method: 'post',
      path: '/v1/pipelines',
      operationId: 'startPipeline',
      summary: 'Start a pipeline: a DAG of stages run as processes on a Cloudflare Workflow',
      tag: 'pipelines',
      role: 'operator',
      body: StartBody,
      responses: { 201: { description: 'the run, queued', schema: z.object({ id: z.string(), status: z.enum(PIPELINE_STATUSES) }) }, 400: E('invalid spec (zod issues in details.issues)'), 404: E('no spec of that name') },
    },
    async ({ body, c, principal }) => {
      const by = `api:${principal.token_id}`;
      const run = body.spec ? await startPipeline(c.env, { tenant: principal.tenant, name: null, spec: body.spec, input: body.input ?? null, by }) : await startNamed(c.env, principal.tenant, body.name as string, body.input ?? null, by);
      return c.json({ id: run.id, status: run.status }, 201, { location: `/v1/pipelines/${run.id}` });
    },
  );

  api.route(
    {
      method: 'get',
      path: '/v1/pipelines',
      operationId: 'listPipelines',
      summary: 'List pipeline runs, newest first',
      tag: 'pipelines',
      role: 'reader',
      query: z.object({
        status: z.enum(PIPELINE_STATUSES).optional(),
        limit: intParam(50, 1, 500),
        cursor: z.string().regex(/^\d+\.pl[0-9a-z]{20}$/, 'use next_cursor from a previous page').optional(),
      }),
      responses: { 200: { description: 'a page of runs', schema: z.object({ pipelines: z.array(PipelineRowSchema), next_cursor: z.string().nullable() }) }, 400: E('bad query') },
    },
    async ({ query, c, principal }) => {
      const page = await listPipelines(c.env.DB, { tenant: principal.tenant, ...query });
      return c.json({ pipelines: page.rows.map((r) => ({ ...r, error: r.error === null ? null : (JSON.parse(r.error) as unknown) })), next_cursor: page.next_cursor });
    },
  );

  api.route(
    { method: 'get', path: '/v1/pipelines/:id', operationId: 'getPipeline', summary: 'A pipeline run: every stage and item, pids, timings, results, errors', tag: 'pipelines', role: 'reader', params: IdParams, responses: { 200: { description: 'the run', schema: PipelineViewSchema }, 404: E('unknown id') } },
    async ({ params, c, principal }) => c.json(await viewPipeline(c.env, principal.tenant, params.id)),
  );

  api.route(
    {
      method: 'post',
      path: '/v1/pipelines/:id/cancel',
      operationId: 'cancelPipeline',
      summary: 'Cancel a run: no new process starts, and every live process of it gets SIGTERM (cascade)',
      tag: 'pipelines',
      role: 'operator',
      params: IdParams,
      responses: { 200: { description: 'the run after the cancel', schema: PipelineViewSchema }, 404: E('unknown id'), 409: E('the run has already ended') },
    },
    async ({ params, c, principal }) => {
      await cancelPipeline(c.env, principal.tenant, params.id, `api:${principal.token_id}`);
      return c.json(await viewPipeline(c.env, principal.tenant, params.id));
    },
  );

  api.route(
    {
      method: 'put',
      path: '/v1/pipeline-specs/:name',
      operationId: 'putPipelineSpec',
      summary: 'Store a named pipeline spec for your tenant (a new version each time)',
      tag: 'pipelines',
      role: 'operator',
      params: z.object({ name: SpecNameSchema }),
      body: PipelineSpecSchema,
      responses: { 200: { description: 'the stored spec', schema: SpecRowSchema }, 400: E('invalid spec (zod issues in details.issues)') },
    },
    async ({ params, body, c, principal }) => {
      checkSpawnable(c.env, principal.tenant, body);
      const now = Date.now();
      const by = `api:${principal.token_id}`;
      const row = await c.env.DB.prepare(
        `INSERT INTO pipeline_specs (tenant, name, spec, version, updated_at, updated_by) VALUES (?, ?, ?, 1, ?, ?)
         ON CONFLICT (tenant, name) DO UPDATE SET spec = excluded.spec, version = version + 1, updated_at = excluded.updated_at, updated_by = excluded.updated_by
         RETURNING version`,
      )
        .bind(principal.tenant, params.name, JSON.stringify(body), now, by)
        .first<{ version: number }>();
      const version = row?.version ?? 1;
      await audit(c.env, principal.tenant, `spec:${principal.tenant}/${params.name}`, 'spec_put', 'ok', null, { name: params.name, version, by }, `v${version}`);
      return c.json({ name: params.name, version, spec: body, updated_at: now, updated_by: by });
    },
  );

  api.route(
    {
      method: 'get',
      path: '/v1/pipeline-specs',
      operationId: 'listPipelineSpecs',
      summary: "Your tenant's named pipeline specs, by name",
      tag: 'pipelines',
      role: 'reader',
      query: z.object({ limit: intParam(50, 1, 500), cursor: SpecNameSchema.optional().describe('next_cursor from a previous page') }),
      responses: { 200: { description: 'a page of specs', schema: z.object({ specs: z.array(SpecRowSchema), next_cursor: z.string().nullable() }) }, 400: E('bad query') },
    },
    async ({ query, c, principal }) => {
      const { results } = await c.env.DB.prepare('SELECT name, version, spec, updated_at, updated_by FROM pipeline_specs WHERE tenant = ? AND name > ? ORDER BY name LIMIT ?')
        .bind(principal.tenant, query.cursor ?? '', query.limit + 1)
        .all<{ name: string; version: number; spec: string; updated_at: number; updated_by: string }>();
      const page = results.slice(0, query.limit);
      return c.json({ specs: page.map((r) => ({ ...r, spec: JSON.parse(r.spec) as unknown })), next_cursor: results.length > query.limit ? (page.at(-1)?.name ?? null) : null });
    },
  );
}
