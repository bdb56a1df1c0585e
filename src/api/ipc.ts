/**
 * IPC routes: deliver a message from outside, inspect a mailbox and the dead letters, and manage and
 * run webhook routes. Everything is scoped to the caller's tenant.
 *
 * POST /v1/hooks/:name is the one route an outside system calls without a bearer token: a route
 * with a secret authenticates the caller by an HMAC-SHA256 signature over the raw body
 * (`x-agentos-signature: sha256=<hex>`, compared in constant time); a bad or missing signature is
 * 401 and nothing is delivered. A route without a secret needs an operator token of its tenant.
 */
import { z } from 'zod';
import { processStub } from '../rpc/stubs.ts';
import { KernelError } from '../kernel/errors.ts';
import { CorrelationIdSchema, MAX_MESSAGE_BYTES, type WireMessage, checkSize } from '../kernel/ipc.ts';
import { IMAGE_NAMES } from '../kernel/images.ts';
import { PidSchema } from '../kernel/pcb.ts';
import { childPid, resolveSpawn } from '../kernel/spawn.ts';
import { checkModel } from '../llm/index.ts';
import { deadLetterOf, listDeadLetters, recordDeadLetters } from '../ipc/dead-letters.ts';
import { authenticate, roleAtLeast, safeEqual } from './auth.ts';
import { E, pidOf, unwrap } from './common.ts';
import { KeysetCursor, SeqCursor, pageOf, pageParams, paged } from './paging.ts';
import { type ApiRegistry, checkJsonDepth, readCapped } from './registry.ts';
import { SpecNameSchema, startNamed } from './pipelines.ts';

const HookNameSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'a hook name is 1-63 lowercase letters, digits, "_" or "-"');
export const SIGNATURE_HEADER = 'x-agentos-signature';
/** An idempotency key from the caller (GitHub's X-GitHub-Delivery plays this role): redelivery is harmless. */
export const DELIVERY_HEADER = 'x-agentos-delivery';

/** GET /v1/processes/:pid/mailbox: what the object's MailboxView holds, cursor as a string (src/rpc/contracts.ts). */
const MailboxSchema = paged(
  'messages',
  z.object({
    seq: z.number(),
    id: z.string(),
    from: z.string(),
    topic: z.string().nullable(),
    correlation_id: z.string().nullable(),
    reply_to: z.string().nullable(),
    body: z.unknown(),
    status: z.string().describe('queued, held or received'),
    sent_at: z.number(),
    arrived_at: z.number(),
    received_at: z.number().nullable(),
    late: z.boolean().optional(),
  }),
).extend({ pid: z.string(), queued: z.number(), held: z.number() });

/** An outside message: shared by the API and the MCP server's process_send tool. */
export const MessageBody = z
  .object({
    body: z.unknown(),
    correlation_id: CorrelationIdSchema.optional(),
    reply_to: PidSchema.optional(),
    id: z.string().regex(/^[A-Za-z0-9._:-]{1,100}$/).optional().describe('idempotency key: a second message with the same id is a duplicate'),
  })
  .strict();

const HookRouteSchema = z.discriminatedUnion('action', [
  z.object({ name: HookNameSchema, action: z.literal('deliver'), pid: PidSchema, secret: z.string().min(16).max(256).optional() }).strict(),
  z.object({ name: HookNameSchema, action: z.literal('spawn'), image: z.string().refine((i) => IMAGE_NAMES.includes(i), `one of: ${IMAGE_NAMES.join(', ')}`), secret: z.string().min(16).max(256).optional() }).strict(),
  z.object({ name: HookNameSchema, action: z.literal('pipeline'), pipeline: SpecNameSchema.describe('a stored spec (PUT /v1/pipeline-specs/:name): the payload is its input'), secret: z.string().min(16).max(256).optional() }).strict(),
]);

type HookRow = { name: string; tenant: string; action: 'deliver' | 'spawn' | 'pipeline'; pid: string | null; image: string | null; pipeline: string | null; secret: string | null; created_at: number; created_by: string };
const publicHook = (r: HookRow) => ({ name: r.name, action: r.action, pid: r.pid, image: r.image, pipeline: r.pipeline, signed: r.secret !== null, created_at: r.created_at, created_by: r.created_by });

async function hmacHex(secret: string, body: Uint8Array): Promise<string> {
  const key = await crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const mac = await crypto.subtle.sign('HMAC', key, body);
  return [...new Uint8Array(mac)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Deliver one outside message into a mailbox now. An undeliverable one is dead-lettered and reported. */
async function deliverOutside(env: Env, message: WireMessage): Promise<{ id: string; status: 'applied' | 'duplicate' | 'held' }> {
  checkSize(message);
  const [outcome] = await processStub(env, message.to).deliverMessages([message]);
  if (!outcome) throw new KernelError('EFAULT', 'the recipient gave no answer for the message');
  if (outcome.status === 'dead') {
    await recordDeadLetters(env.DB, [deadLetterOf(message, outcome.code ?? 'ENOENT', outcome.reason ?? 'undeliverable')], Date.now());
    throw new KernelError(outcome.code ?? 'ENOENT', outcome.code === 'ESTATE' ? `process ${message.to} has exited; the message was dead-lettered` : `no process with pid "${message.to}"; the message was dead-lettered`, { id: message.id, dead_letter: true });
  }
  if (outcome.status === 'retry') throw new KernelError('EAGAIN', 'the recipient cannot take the message right now; retry shortly');
  return { id: message.id, status: outcome.status };
}

const outsideMessage = (tenant: string, from: string, to: string, id: string, body: unknown, extra: { correlation_id?: string | undefined; reply_to?: string | undefined } = {}): WireMessage => ({
  id,
  tenant,
  from,
  to,
  channel: null,
  seq: null,
  topic: null,
  correlation_id: extra.correlation_id ?? null,
  reply_to: extra.reply_to ?? null,
  body,
  sent_at: Date.now(),
});

export function registerIpc(api: ApiRegistry): void {
  api.route(
    {
      method: 'post',
      path: '/v1/processes/:pid/messages',
      operationId: 'sendMessage',
      summary: "Deliver a message to a process's mailbox from outside",
      tag: 'ipc',
      role: 'operator',
      params: z.object({ pid: z.string() }),
      body: MessageBody,
      responses: { 202: { description: 'in the mailbox (status applied, or duplicate for a repeated id)', schema: z.object({ id: z.string(), status: z.enum(['applied', 'duplicate', 'held']) }) }, 404: E('unknown pid (dead-lettered)'), 409: E('the process has exited (dead-lettered)'), 413: E('over 128 KB') },
    },
    async ({ params, body, c, principal }) => {
      const id = `api:${principal.tenant}:${body.id ?? crypto.randomUUID()}`;
      const m = outsideMessage(principal.tenant, `api:${principal.token_id}`, pidOf(params.pid), id, body.body ?? null, body);
      return c.json(await deliverOutside(c.env, m), 202);
    },
  );

  api.route(
    {
      method: 'get',
      path: '/v1/processes/:pid/mailbox',
      operationId: 'getMailbox',
      summary: 'The mailbox: messages newest first (queued, received or all), and counts; the cursor is a seq',
      tag: 'ipc',
      role: 'reader',
      params: z.object({ pid: z.string() }),
      query: z.object({ status: z.enum(['queued', 'received', 'all']).default('all'), ...pageParams(50, 500, SeqCursor) }),
      responses: { 200: { description: 'the mailbox', schema: MailboxSchema }, 404: E('unknown pid') },
    },
    async ({ params, query, c, principal }) => {
      const { next_before, ...view } = unwrap(await processStub(c.env, pidOf(params.pid)).mailbox(principal.tenant, query.status, query.limit, query.cursor ?? null));
      return c.json({ ...view, next_cursor: next_before === null ? null : String(next_before) });
    },
  );

  api.route(
    {
      method: 'get',
      path: '/v1/dead-letters',
      operationId: 'listDeadLetters',
      summary: 'Messages that could not be delivered, newest first',
      tag: 'ipc',
      role: 'reader',
      query: z.object(pageParams(50, 500, KeysetCursor(/^\S{1,490}$/))),
      responses: { 200: { description: 'dead letters' }, 400: E('bad query') },
    },
    async ({ query, c, principal }) => c.json(await listDeadLetters(c.env.DB, principal.tenant, query.limit, query.cursor)),
  );

  api.route(
    {
      method: 'post',
      path: '/v1/hooks',
      operationId: 'putHook',
      summary: 'Create or replace a webhook route: deliver to a mailbox, spawn from an image, or start a pipeline',
      tag: 'ipc',
      role: 'operator',
      body: HookRouteSchema,
      responses: { 201: { description: 'the route (the secret is never shown again)' }, 400: E('invalid route'), 409: E('the name belongs to another tenant') },
    },
    async ({ body, c, principal }) => {
      const existing = await c.env.DB.prepare('SELECT tenant FROM webhooks WHERE name = ?').bind(body.name).first<{ tenant: string }>();
      if (existing && existing.tenant !== principal.tenant) throw new KernelError('EEXIST', `the hook name "${body.name}" is taken; choose another`);
      const row: HookRow = {
        name: body.name,
        tenant: principal.tenant,
        action: body.action,
        pid: body.action === 'deliver' ? body.pid : null,
        image: body.action === 'spawn' ? body.image : null,
        pipeline: body.action === 'pipeline' ? body.pipeline : null,
        secret: body.secret ?? null,
        created_at: Date.now(),
        created_by: principal.token_id,
      };
      await c.env.DB.prepare('INSERT OR REPLACE INTO webhooks (name, tenant, action, pid, image, pipeline, secret, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .bind(row.name, row.tenant, row.action, row.pid, row.image, row.pipeline, row.secret, row.created_at, row.created_by)
        .run();
      return c.json(publicHook(row), 201);
    },
  );

  api.route(
    {
      method: 'get',
      path: '/v1/hooks',
      operationId: 'listHooks',
      summary: 'Webhook routes of your tenant, by name; the cursor is the last name of the previous page',
      tag: 'ipc',
      role: 'reader',
      query: z.object(pageParams(100, 500, HookNameSchema)),
      responses: { 200: { description: 'routes' } },
    },
    async ({ query, c, principal }) => {
      const { results } = await c.env.DB.prepare('SELECT * FROM webhooks WHERE tenant = ? AND name > ? ORDER BY name LIMIT ?')
        .bind(principal.tenant, query.cursor ?? '', query.limit + 1)
        .all<HookRow>();
      const page = pageOf(results, query.limit, (h) => h.name);
      return c.json({ hooks: page.rows.map(publicHook), next_cursor: page.next_cursor });
    },
  );

  api.route(
    { method: 'delete', path: '/v1/hooks/:name', operationId: 'deleteHook', summary: 'Delete a webhook route', tag: 'ipc', role: 'operator', params: z.object({ name: z.string() }), responses: { 200: { description: 'deleted' }, 404: E('no such route') } },
    async ({ params, c, principal }) => {
      const r = await c.env.DB.prepare('DELETE FROM webhooks WHERE name = ? AND tenant = ?').bind(params.name, principal.tenant).run();
      if (!r.meta.changes) throw new KernelError('ENOENT', `no hook named "${params.name.slice(0, 64)}"`);
      return c.json({ deleted: params.name });
    },
  );

  api.route(
    {
      method: 'post',
      path: '/v1/hooks/:name',
      operationId: 'runHook',
      summary: `Run a webhook route. Signed routes: ${SIGNATURE_HEADER}: sha256=<hex HMAC of the raw body>; others: a bearer token. Optional ${DELIVERY_HEADER}: an idempotency key.`,
      tag: 'ipc',
      role: 'public',
      params: z.object({ name: z.string() }),
      responses: { 202: { description: 'delivered or spawned' }, 401: E('bad or missing signature'), 404: E('no such route'), 413: E('payload over 128 KB') },
    },
    async ({ params, c }) => {
      const hook = HookNameSchema.safeParse(params.name).success ? await c.env.DB.prepare('SELECT * FROM webhooks WHERE name = ?').bind(params.name).first<HookRow>() : null;
      if (!hook) throw new KernelError('ENOENT', `no hook named "${params.name.slice(0, 64)}"`);
      const raw = await readCapped(c.req.raw, MAX_MESSAGE_BYTES - 4096, `the payload exceeds ${MAX_MESSAGE_BYTES - 4096} bytes (one message); send a reference to larger data instead`);
      if (hook.secret !== null) {
        const presented = (c.req.header(SIGNATURE_HEADER) ?? '').trim().toLowerCase();
        const expected = `sha256=${await hmacHex(hook.secret, raw)}`;
        if (!(await safeEqual(presented, expected))) throw new KernelError('EUNAUTH', presented ? 'the webhook signature does not match' : `this hook needs a ${SIGNATURE_HEADER} header: sha256=<hex HMAC-SHA256 of the body>`);
      } else {
        const principal = await authenticate(c.req.raw, c.env, Date.now());
        if (principal.tenant !== hook.tenant) throw new KernelError('ENOENT', `no hook named "${params.name.slice(0, 64)}"`);
        if (!roleAtLeast(principal.role, 'operator')) throw new KernelError('EPERM', 'running a hook needs the operator role');
      }
      const text = new TextDecoder().decode(raw);
      let payload: unknown = text;
      try {
        payload = JSON.parse(text);
      } catch {
        // not JSON: delivered as text
      }
      if (payload !== text) checkJsonDepth(text);
      const delivery = c.req.header(DELIVERY_HEADER)?.slice(0, 100) ?? crypto.randomUUID();
      if (hook.action === 'deliver') {
        const m = outsideMessage(hook.tenant, `hook:${hook.name}`, hook.pid ?? '', `hook:${hook.name}:${delivery}`, payload);
        return c.json({ hook: hook.name, ...(await deliverOutside(c.env, m)) }, 202);
      }
      // pipeline: the payload is the run's input, untrusted; the same delivery starts one run.
      if (hook.action === 'pipeline') {
        const run = await startNamed(c.env, hook.tenant, hook.pipeline ?? '', payload, `hook:${hook.name}`, { key: `hook/${hook.name}/${delivery}`, untrusted: true });
        return c.json({ hook: hook.name, pipeline: run.id, status: run.status }, 202);
      }
      // spawn: the payload is the new process's task, marked untrusted; the same delivery spawns once.
      const pid = await childPid(`hook/${hook.name}`, delivery);
      const spec = unwrap(
        resolveSpawn(
          { name: `hook:${hook.name}`, task: text || '(empty webhook payload)', image: hook.image ?? 'default' },
          { pid, tenant: hook.tenant, ppid: null, spawn_key: `hook/${hook.name}/${delivery}`, default_model: { provider: c.env.LLM_PROVIDER, model: c.env.LLM_MODEL }, untrusted: true },
        ),
      );
      unwrap(checkModel(spec.model, c.env));
      const pcb = unwrap(await processStub(c.env, pid).spawn(spec));
      return c.json({ hook: hook.name, spawned: pcb.pid, state: pcb.state }, 202);
    },
  );
}
