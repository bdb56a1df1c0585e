/**
 * Checkpoint routes: take, list, inspect, diff, delete, restore and fork (docs/checkpoints.md).
 * Every route goes through the process's own object, which checks the tenant: another tenant's
 * process, and so its checkpoints, do not exist for the caller (404).
 */
import { z } from 'zod';
import { processStub } from '../rpc/stubs.ts';
import { ManifestSchema, REASONS } from '../checkpoints/store.ts';
import { ForkRequestSchema } from '../checkpoints/rpc.ts';
import { AutoPolicySchema } from '../checkpoints/policy.ts';
import { TraceSchema } from '../checkpoints/trace.ts';
import { KernelError } from '../kernel/errors.ts';
import { PcbSchema } from '../kernel/pcb.ts';
import { randomPid } from '../kernel/spawn.ts';
import { checkModel } from '../llm/index.ts';
import { E, PidParams, pidOf, unwrap } from './common.ts';
import { SeqCursor, pageParams, paged } from './paging.ts';
import type { ApiRegistry } from './registry.ts';

const CKPT_PATTERN = /^ck\d{4,}-[0-9a-f]{8}$/;
const CkptParams = z.object({ pid: z.string(), id: z.string() });
const DiffParams = z.object({ pid: z.string(), id: z.string(), other: z.string() });

function ckptOf(raw: string): string {
  if (!CKPT_PATTERN.test(raw)) throw new KernelError('ENOENT', `no checkpoint "${raw.slice(0, 64)}"`, { checkpoint: raw.slice(0, 64) });
  return raw;
}

const SummarySchema = z.object({
  id: z.string(),
  name: z.string().describe('<pid>@<id>'),
  seq: z.number(),
  label: z.string().nullable(),
  reason: z.enum(REASONS),
  step: z.number(),
  state: z.string(),
  created_at: z.number(),
  raw_bytes: z.number().describe('uncompressed bytes of every piece (row chunk, blob) it references'),
  stored_bytes: z.number().describe('compressed bytes of every pack it reads (whole), plus its manifest'),
  new_bytes: z.number().describe('bytes this checkpoint added to storage (its pack of pieces no earlier checkpoint had, and its manifest)'),
  digest: z.string().describe('SHA-256 of the state it holds (equal digests: equal state)'),
});
const DiffSchema = z.object({
  from: z.string(),
  to: z.string(),
  steps: z.number(),
  same_state: z.boolean(),
  tables: z.array(z.object({ table: z.string(), chunks_added: z.number(), chunks_removed: z.number(), rows_before: z.number(), rows_after: z.number() })),
  changed_files: z.array(z.string()),
});

export function registerCheckpointRoutes(api: ApiRegistry): void {
  const tag = 'checkpoints';
  api.route(
    {
      method: 'get',
      path: '/v1/processes/:pid/trace',
      operationId: 'getProcessTrace',
      summary: "The process's run as a trace file (LLM requests and responses by step, syscall results, timing); spawn with replay: <trace> to re-run it",
      tag,
      role: 'reader',
      params: PidParams,
      responses: { 200: { description: 'the trace', schema: TraceSchema }, 404: E('unknown pid') },
    },
    async ({ params, c, principal }) => c.json(unwrap(await processStub(c.env, pidOf(params.pid)).checkpoints(principal.tenant, { op: 'trace' }))),
  );

  api.route(
    {
      method: 'post',
      path: '/v1/processes/:pid/checkpoints',
      operationId: 'createCheckpoint',
      summary: 'Take a checkpoint at the current step boundary',
      tag,
      role: 'operator',
      params: PidParams,
      body: z.object({ label: z.string().min(1).max(200).optional() }).strict(),
      responses: { 201: { description: 'the checkpoint', schema: SummarySchema }, 404: E('unknown pid'), 503: E('a step or syscall is under way (EAGAIN): retry') },
    },
    async ({ params, body, c, principal }) => c.json(unwrap(await processStub(c.env, pidOf(params.pid)).checkpoints(principal.tenant, { op: 'create', label: body.label ?? null })), 201),
  );

  api.route(
    {
      method: 'get',
      path: '/v1/processes/:pid/checkpoints',
      operationId: 'listCheckpoints',
      summary: "A process's checkpoints, oldest first, paged (the cursor is a checkpoint's seq), and its automatic-checkpoint policy",
      tag,
      role: 'reader',
      params: PidParams,
      query: z.object(pageParams(100, 500, SeqCursor)),
      responses: { 200: { description: 'a page of checkpoints', schema: paged('checkpoints', SummarySchema).extend({ policy: AutoPolicySchema }) }, 400: E('bad query'), 404: E('unknown pid') },
    },
    async ({ params, query, c, principal }) => c.json(unwrap(await processStub(c.env, pidOf(params.pid)).checkpoints(principal.tenant, { op: 'list', limit: query.limit, after: query.cursor ?? null }))),
  );

  api.route(
    {
      method: 'get',
      path: '/v1/processes/:pid/checkpoints/:id',
      operationId: 'getCheckpoint',
      summary: "Inspect a checkpoint: its manifest (tables, chunks, sizes, step, time)",
      tag,
      role: 'reader',
      params: CkptParams,
      responses: { 200: { description: 'the manifest', schema: ManifestSchema }, 404: E('unknown pid or checkpoint') },
    },
    async ({ params, c, principal }) => c.json(unwrap(await processStub(c.env, pidOf(params.pid)).checkpoints(principal.tenant, { op: 'get', id: ckptOf(params.id) }))),
  );

  api.route(
    {
      method: 'get',
      path: '/v1/processes/:pid/checkpoints/:id/diff/:other',
      operationId: 'diffCheckpoints',
      summary: 'What changed between two checkpoints: tables (by chunk and row count) and files',
      tag,
      role: 'reader',
      params: DiffParams,
      responses: { 200: { description: 'the difference', schema: DiffSchema }, 404: E('unknown pid or checkpoint') },
    },
    async ({ params, c, principal }) => c.json(unwrap(await processStub(c.env, pidOf(params.pid)).checkpoints(principal.tenant, { op: 'diff', from: ckptOf(params.id), to: ckptOf(params.other) }))),
  );

  api.route(
    {
      method: 'delete',
      path: '/v1/processes/:pid/checkpoints/:id',
      operationId: 'deleteCheckpoint',
      summary: 'Delete a checkpoint; chunks no other checkpoint uses are freed',
      tag,
      role: 'operator',
      params: CkptParams,
      responses: { 200: { description: 'deleted', schema: z.object({ deleted: z.string(), chunks_freed: z.number() }) }, 404: E('unknown pid or checkpoint') },
    },
    async ({ params, c, principal }) => c.json(unwrap(await processStub(c.env, pidOf(params.pid)).checkpoints(principal.tenant, { op: 'delete', id: ckptOf(params.id) }))),
  );

  api.route(
    {
      method: 'post',
      path: '/v1/processes/:pid/checkpoints/:id/restore',
      operationId: 'restoreCheckpoint',
      summary: 'Roll the process back to a checkpoint (forward-only: a new version; events and audit record it)',
      tag,
      role: 'operator',
      params: CkptParams,
      responses: { 200: { description: 'the restored PCB', schema: PcbSchema }, 404: E('unknown pid or checkpoint'), 409: E('the process has exited'), 503: E('a step or syscall is under way (EAGAIN): retry') },
    },
    async ({ params, c, principal }) => c.json(unwrap(await processStub(c.env, pidOf(params.pid)).checkpoints(principal.tenant, { op: 'restore', id: ckptOf(params.id), by: `api:${principal.token_id}` }))),
  );

  api.route(
    {
      method: 'post',
      path: '/v1/processes/:pid/checkpoints/:id/fork',
      operationId: 'forkCheckpoint',
      summary: 'Start a new process from a checkpoint (new pid, lineage forked_from, capabilities only narrowed)',
      tag,
      role: 'operator',
      params: CkptParams,
      body: ForkRequestSchema,
      responses: { 201: { description: 'the new process', schema: PcbSchema }, 403: E('a requested capability is not covered'), 404: E('unknown pid or checkpoint') },
    },
    async ({ params, body, c, principal }) => {
      if (body.model && typeof body.model !== 'string') unwrap(checkModel(body.model, c.env));
      const pid = randomPid();
      const pcb = unwrap(
        await processStub(c.env, pidOf(params.pid)).checkpoints(principal.tenant, { op: 'fork', id: ckptOf(params.id), by: `api:${principal.token_id}`, request: body, pid, ppid: null, spawn_key: `fork/${pid}` }),
      );
      return c.json(pcb, 201);
    },
  );
}
