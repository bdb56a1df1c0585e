/**
 * The HTTP API (v1). Routes only validate, call a process's Durable Object or D1, and shape the
 * response; decisions live in the kernel. `errorResponse` is the one place an error becomes HTTP:
 * `{error: {code, message, details?}}` with the status from the code (src/kernel/errors.ts).
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { TENANT_HEADER } from '../rpc/contracts.ts';
import { processStub } from '../rpc/stubs.ts';
import { queryAudit } from '../audit/audit.ts';
import { KernelError, toErrorValue } from '../kernel/errors.ts';
import { IMAGES } from '../kernel/images.ts';
import { GrantInputSchema } from '../kernel/capabilities.ts';
import { ModelRefSchema, PID_PATTERN, PcbSchema, ProcessStateSchema, TenantSchema } from '../kernel/pcb.ts';
import { SpawnRequestSchema, randomPid, resolveSpawn } from '../kernel/spawn.ts';
import { checkModel } from '../llm/index.ts';
import { listProcesses } from '../process/table.ts';
import { processTableStream } from './process-feed.ts';
import { E, PidParams, SignalBody, errorResponse, pidOf, requestDeadlineMs, unwrap, withDeadline } from './common.ts';
import { KeysetCursor, SeqCursor, pageOf, pageParams, paged } from './paging.ts';
import { ApiRegistry } from './registry.ts';
import { registerGovernance, tenantFor } from './governance.ts';
import { registerScheduler } from './scheduler.ts';
import { registerIpc } from './ipc.ts';
import { registerMemory } from './memory.ts';
import { registerToolRoutes } from './tools.ts';
import { registerPipelines } from './pipelines.ts';
import { registerMcpRoutes } from './mcp.ts';
import { mountMcp } from '../mcp/server.ts';
import { registerCheckpointRoutes } from './checkpoints.ts';

export const VERSION = '0.1.0';



const EventSchema = z.object({ seq: z.number(), at: z.number(), type: z.string(), data: z.unknown() });
const ProcessRowSchema = z.object({
  pid: z.string(),
  ppid: z.string().nullable(),
  name: z.string(),
  image: z.string(),
  state: ProcessStateSchema,
  priority: z.number(),
  exit_code: z.string().nullable(),
  created_at: z.number(),
  updated_at: z.number(),
  version: z.number(),
  forked_from: z.string().nullable().describe('a fork\'s origin, <pid>@<checkpoint>'),
});
const PageSchema = z.object({ seq: z.number(), kind: z.string(), tokens: z.number(), importance: z.number(), pinned: z.boolean(), access_count: z.number(), last_access: z.number(), excerpt: z.string() });
const ContextSchema = z.object({
  budget: z.number().describe('the working set\'s token budget'),
  tokens: z.number().describe('tokens in the working set now'),
  steps: z.array(
    z.object({ step: z.number(), resident: z.boolean(), recalled: z.boolean(), protected: z.boolean(), tokens: z.number(), batch: z.number(), relevance: z.number(), score: z.number(), pages: z.array(PageSchema) }),
  ),
  swapped_runs: z.unknown(),
});
const FileViewSchema = z.union([
  z.object({ type: z.literal('file'), path: z.string(), content: z.string(), size: z.number() }),
  z.object({ type: z.literal('dir'), path: z.string(), entries: z.array(z.object({ name: z.string(), type: z.enum(['file', 'dir']), size: z.number().optional() })) }),
]);
const AuditRowSchema = z.object({
  seq: z.number(),
  id: z.string(),
  pid: z.string(),
  at: z.number(),
  kind: z.string(),
  action: z.string(),
  outcome: z.string(),
  code: z.string().nullable(),
  detail: z.unknown(),
});


export function createApp(): Hono<{ Bindings: Env }> {
  return build().app;
}

/** Every route of the API with its zod schemas: what the OpenAPI document and the fuzz battery read. */
export function apiRoutes(): ApiRegistry['routes'] {
  return build().api.routes;
}

function build(): { app: Hono<{ Bindings: Env }>; api: ApiRegistry } {
  const app = new Hono<{ Bindings: Env }>();
  const api = new ApiRegistry(app);

  app.onError((err) => errorResponse(toErrorValue(err)));
  app.notFound((c) => errorResponse({ code: 'ENOENT', message: `no route for ${c.req.method} ${new URL(c.req.url).pathname}` }));

  api.route({ method: 'get', path: '/healthz', operationId: 'getHealth', summary: 'Liveness and D1 reachability', tag: 'system', role: 'public', responses: { 200: { description: 'healthy' }, 503: E('D1 unreachable') } }, async ({ c }) => {
    try {
      await c.env.DB.prepare('SELECT 1').first();
      return c.json({ ok: true, version: VERSION });
    } catch (e) {
      return errorResponse({ code: 'EAGAIN', message: `D1 is not reachable: ${(e as Error).message}` });
    }
  });

  api.route(
    {
      method: 'post',
      path: '/v1/processes',
      operationId: 'spawnProcess',
      summary: 'Spawn a process',
      tag: 'processes',
      role: 'operator',
      body: SpawnRequestSchema,
      responses: { 201: { description: 'the new process', schema: PcbSchema }, 400: E('invalid body, image or model'), 413: E('body too large'), 503: E('overloaded: no answer within REQUEST_DEADLINE_SECONDS (Retry-After); details.pid names the process, which may still appear') },
    },
    async ({ body, c, principal }) => {
      const pid = randomPid();
      const spec = unwrap(resolveSpawn(body, { pid, tenant: principal.tenant, ppid: null, spawn_key: `api/${pid}`, default_model: { provider: c.env.LLM_PROVIDER, model: c.env.LLM_MODEL } }));
      // A replaying process never calls its model: it answers from the trace.
      if (!spec.replay) unwrap(checkModel(spec.model, c.env));
      // Bounded: an overloaded object (or D1 behind it) is a 503 with Retry-After, not a request
      // that never answers. The spawn may still complete: GET the pid to know.
      const pcb = unwrap(await withDeadline(processStub(c.env, pid).spawn(spec), requestDeadlineMs(c.env), `process ${pid}`, { pid }));
      return c.json(pcb, 201, { location: `/v1/processes/${pid}` });
    },
  );

  api.route(
    {
      method: 'get',
      path: '/v1/processes',
      operationId: 'listProcesses',
      summary: 'List processes (ps), newest first; with Accept: text/event-stream, that page live (snapshot, then changed/removed rows)',
      tag: 'processes',
      role: 'reader',
      query: z.object({
        state: ProcessStateSchema.optional(),
        ppid: z.string().optional().describe('only children of this pid'),
        ...pageParams(50, 500, KeysetCursor(PID_PATTERN)),
      }),
      responses: { 200: { description: 'a page of the process table', schema: paged('processes', ProcessRowSchema) }, 400: E('bad query') },
    },
    async ({ query, c, principal }) => {
      const q = { ...query, tenant: principal.tenant };
      if ((c.req.header('accept') ?? '').includes('text/event-stream')) return processTableStream(c.env.DB, q, c.req.raw.signal);
      return c.json(await listProcesses(c.env.DB, q));
    },
  );

  api.route(
    { method: 'get', path: '/v1/processes/:pid', operationId: 'getProcess', summary: 'Read a process control block', tag: 'processes', role: 'reader', params: PidParams, responses: { 200: { description: 'the PCB', schema: PcbSchema }, 404: E('unknown pid') } },
    async ({ params, c, principal }) => c.json(unwrap(await processStub(c.env, pidOf(params.pid)).info(principal.tenant))),
  );

  api.route(
    {
      method: 'post',
      path: '/v1/processes/:pid/signals',
      operationId: 'signalProcess',
      summary: 'Send a signal (SIGTERM, SIGKILL, SIGSTOP, SIGCONT)',
      tag: 'processes',
      role: 'operator',
      params: PidParams,
      body: SignalBody,
      responses: { 200: { description: 'the PCB after the signal', schema: PcbSchema }, 404: E('unknown pid'), 409: E('illegal in the current state') },
    },
    async ({ params, body, c, principal }) => c.json(unwrap(await processStub(c.env, pidOf(params.pid)).signal(body.signal, `api:${principal.token_id}`, principal.tenant, body.cascade ?? false))),
  );

  api.route(
    {
      method: 'delete',
      path: '/v1/processes/:pid',
      operationId: 'removeProcess',
      summary: 'Kill (if alive) and remove a process, releasing its storage',
      tag: 'processes',
      role: 'operator',
      params: PidParams,
      responses: { 200: { description: 'removed', schema: z.object({ pid: z.string(), exit: z.unknown() }) }, 404: E('unknown pid'), 503: E('deliveries pending; retry') },
    },
    async ({ params, c, principal }) => c.json(unwrap(await processStub(c.env, pidOf(params.pid)).remove(`api:${principal.token_id}`, principal.tenant))),
  );

  api.route(
    {
      method: 'get',
      path: '/v1/processes/:pid/events',
      operationId: 'listEvents',
      summary: 'The process event log, oldest first; with Accept: text/event-stream, a live stream (Last-Event-ID resumes it)',
      tag: 'processes',
      role: 'reader',
      params: PidParams,
      query: z.object(pageParams(100, 1000, SeqCursor)),
      responses: {
        200: { description: 'events after the cursor (a seq)', schema: paged('events', EventSchema) },
        404: E('unknown pid'),
      },
    },
    async ({ params, query, c, principal }) => {
      const stub = processStub(c.env, pidOf(params.pid));
      if ((c.req.header('accept') ?? '').includes('text/event-stream')) {
        const url = new URL(c.req.url);
        url.searchParams.set('after', String(query.cursor ?? 0));
        const forwarded = new Request(url, c.req.raw);
        forwarded.headers.set(TENANT_HEADER, principal.tenant);
        return stub.fetch(forwarded);
      }
      const { events } = unwrap(await stub.events(query.cursor ?? 0, query.limit + 1, principal.tenant));
      const page = pageOf(events, query.limit, (e) => String(e.seq));
      return c.json({ events: page.rows, next_cursor: page.next_cursor });
    },
  );

  api.route(
    {
      method: 'get',
      path: '/v1/processes/:pid/context',
      operationId: 'getContext',
      summary: 'The working set under its token budget, and the page table (resident or swapped, tokens, pins)',
      tag: 'processes',
      role: 'reader',
      params: PidParams,
      responses: { 200: { description: 'the context', schema: ContextSchema }, 404: E('unknown pid') },
    },
    async ({ params, c, principal }) => c.json(unwrap(await processStub(c.env, pidOf(params.pid)).context(principal.tenant))),
  );

  api.route(
    {
      method: 'get',
      path: '/v1/processes/:pid/fs/*',
      operationId: 'readPath',
      summary: 'Read a file (or list a directory) in the process filesystem',
      tag: 'processes',
      role: 'reader',
      params: PidParams,
      responses: { 200: { description: 'a file or a directory listing (a file as text/plain with Accept: text/plain)', schema: FileViewSchema }, 400: E('invalid path'), 403: E('path escapes the root'), 404: E('unknown pid or path') },
    },
    async ({ params, c, principal }) => {
      const prefix = `/v1/processes/${params.pid}/fs`;
      let raw: string;
      try {
        raw = decodeURIComponent(new URL(c.req.url).pathname.slice(prefix.length)) || '/';
      } catch {
        throw new KernelError('EINVAL', 'the path is not valid percent-encoding');
      }
      const view = unwrap(await processStub(c.env, pidOf(params.pid)).readPath(raw, principal.tenant));
      if (view.type === 'file' && (c.req.header('accept') ?? '').startsWith('text/plain')) return c.text(view.content);
      return c.json(view);
    },
  );

  api.route(
    {
      method: 'get',
      path: '/v1/audit',
      operationId: 'listAudit',
      summary: 'Audit log of your tenant (the bootstrap admin: ?tenant=), oldest first; the cursor is a seq',
      tag: 'audit',
      role: 'reader',
      query: z.object({ pid: z.string().regex(PID_PATTERN).optional(), tenant: TenantSchema.optional(), ...pageParams(100, 1000, SeqCursor) }),
      responses: { 200: { description: 'audit rows', schema: paged('rows', AuditRowSchema) }, 400: E('bad query'), 403: E('another tenant') },
    },
    async ({ query, c, principal }) => {
      const tenant = tenantFor(principal, query.tenant);
      const rows = await queryAudit(c.env.DB, { tenant, ...(query.pid ? { pid: query.pid } : {}), after: query.cursor ?? 0, limit: query.limit + 1 });
      const page = pageOf(rows, query.limit, (r) => String(r.seq));
      return c.json({ rows: page.rows, next_cursor: page.next_cursor });
    },
  );

  api.route(
    {
      method: 'get',
      path: '/v1/images',
      operationId: 'listImages',
      summary: 'Built-in images',
      tag: 'system',
      role: 'reader',
      responses: { 200: { description: 'images', schema: z.object({ images: z.array(z.object({ name: z.string(), description: z.string(), tool_mode: z.enum(['native', 'text']), model: ModelRefSchema.nullable(), capabilities: z.array(GrantInputSchema) })) }) } },
    },
    (c) => c.c.json({ images: Object.values(IMAGES).map((i) => ({ name: i.name, description: i.description, tool_mode: i.tool_mode, model: i.model ?? null, capabilities: i.capabilities })) }),
  );

  registerGovernance(api);
  registerScheduler(api);
  registerIpc(api);
  registerMemory(api);
  registerToolRoutes(api);
  registerPipelines(api);
  registerMcpRoutes(api);

  // The console's files are served by the assets binding before the Worker runs (wrangler.toml
  // run_worker_first excludes /console/*); the bare /console reaches the Worker, and the assets
  // answer it with their redirect to /console/.
  app.get('/console', (c) => c.env.ASSETS.fetch(c.req.raw));
  registerCheckpointRoutes(api);

  const doc = api.openapi({ title: 'AgentOS on Workers', version: VERSION, description: 'Agent processes as Durable Objects, driven by typed syscalls.' });
  app.get('/openapi.json', (c) => c.json(doc));
  mountMcp(app);

  return { app, api };
}
