/**
 * Governance routes: human approvals, API tokens, and audit-chain verification. Everything is
 * scoped to the caller's tenant; only admins may name another tenant (for tokens and audit).
 */
import { z } from 'zod';
import { auditChain, processStub } from '../rpc/stubs.ts';
import { decideGate } from '../../workflows/control.ts';
import { KernelError } from '../kernel/errors.ts';
import { PID_PATTERN, TenantSchema } from '../kernel/pcb.ts';
import { E, unwrap } from './common.ts';
import { KeysetCursor, keyset, pageOf, pageParams, paged } from './paging.ts';
import { type Principal, ROLES, SYSTEM_TENANT, createToken, forgetToken } from './auth.ts';
import type { ApiRegistry } from './registry.ts';

/**
 * The tenant a call acts on: the caller's own, or one they name if they are the deployment's
 * bootstrap admin (AGENTOS_ADMIN_TOKEN). A tenant's own admins manage only their tenant.
 */
export function tenantFor(principal: Principal, requested: string | undefined): string {
  if (requested === undefined || requested === principal.tenant) return principal.tenant;
  if (principal.token_id !== 'bootstrap') throw new KernelError('EPERM', "only the deployment's bootstrap admin may act on another tenant", { tenant: requested });
  return requested;
}

export const APPROVAL_STATUSES = ['pending', 'approved', 'denied', 'expired'] as const;

const ApprovalSchema = z.object({
  id: z.string(),
  pid: z.string().nullable().describe("the process whose call waits on the decision; null for a pipeline's human gate (see pipeline and stage)"),
  step: z.number(),
  idx: z.number(),
  syscall: z.string(),
  args: z.unknown(),
  capability: z.string(),
  reason: z.string(),
  status: z.enum(APPROVAL_STATUSES),
  grant_kind: z.string().nullable(),
  note: z.string().nullable(),
  created_at: z.number(),
  expires_at: z.number(),
  decided_at: z.number().nullable(),
  decided_by: z.string().nullable(),
  pipeline: z.string().nullable().describe("a pipeline's human gate: the run's id (GET /v1/pipelines/:id), else null"),
  stage: z.string().nullable().describe("a pipeline's human gate: the stage that waits on the decision, else null"),
});
/** A row as D1 holds it: a gate's pid is '' and its stage is in its args. */
type ApprovalRow = Omit<z.infer<typeof ApprovalSchema>, 'pid' | 'stage'> & { pid: string; args_hash: string; tenant: string };

/** A decision on an approval: shared by the API and the MCP server's approval_decide tool. */
export const ApprovalDecisionBody = z
  .object({
    decision: z.enum(['approve', 'deny']),
    grant: z.enum(['once', 'always']).default('once').describe('always: a standing grant for the capability, so the same kind of call is not asked again'),
    note: z.string().max(2000).default(''),
  })
  .strict();

const APPROVAL_COLUMNS = 'id, tenant, pid, step, idx, syscall, args, args_hash, capability, reason, status, grant_kind, note, created_at, expires_at, decided_at, decided_by, pipeline';

async function approval(db: D1Database, tenant: string, id: string): Promise<ApprovalRow> {
  const row = await db.prepare(`SELECT ${APPROVAL_COLUMNS} FROM approvals WHERE id = ? AND tenant = ?`).bind(id, tenant).first<ApprovalRow & { args: string }>();
  if (!row) throw new KernelError('ENOENT', `no approval ${id.slice(0, 64)}`);
  return { ...row, args: JSON.parse(row.args) as unknown };
}

const PrincipalSchema = z.object({
  tenant: z.string(),
  role: z.enum(ROLES),
  token_id: z.string().describe('"bootstrap" for AGENTOS_ADMIN_TOKEN, else the id of an API token (never its secret)'),
});

const gateStage = (args: unknown): string | null => (typeof args === 'object' && args !== null && 'stage' in args && typeof args.stage === 'string' ? args.stage : null);

/** What the API shows of a row: a gate names its run and stage, and has no pid. */
const publicApproval = ({ args_hash: _h, tenant: _t, ...rest }: ApprovalRow): z.infer<typeof ApprovalSchema> =>
  rest.pipeline ? { ...rest, pid: null, stage: gateStage(rest.args) } : { ...rest, stage: null };

export function registerGovernance(api: ApiRegistry): void {
  api.route(
    {
      method: 'get',
      path: '/v1/approvals',
      operationId: 'listApprovals',
      summary: 'Approval requests (default: pending), oldest first',
      tag: 'approvals',
      role: 'reader',
      query: z.object({
        status: z.enum(['pending', 'approved', 'denied', 'expired', 'all']).optional().default('pending'),
        pid: z.string().regex(PID_PATTERN).optional().describe("only this process's requests"),
        ...pageParams(100, 500, KeysetCursor()),
      }),
      responses: { 200: { description: 'a page of approvals', schema: paged('approvals', ApprovalSchema) }, 400: E('bad query') },
    },
    async ({ query, c, principal }) => {
      const where = ['tenant = ?'];
      const params: (string | number)[] = [principal.tenant];
      if (query.status !== 'all') {
        where.push('status = ?');
        params.push(query.status);
      }
      if (query.pid) {
        where.push('pid = ?');
        params.push(query.pid);
      }
      if (query.cursor) {
        where.push('(created_at > ? OR (created_at = ? AND id > ?))');
        params.push(query.cursor.at, query.cursor.at, query.cursor.id);
      }
      const { results } = await c.env.DB.prepare(`SELECT ${APPROVAL_COLUMNS} FROM approvals WHERE ${where.join(' AND ')} ORDER BY created_at, id LIMIT ?`)
        .bind(...params, query.limit + 1)
        .all<ApprovalRow & { args: string }>();
      const page = pageOf(results, query.limit, (r) => keyset(r.created_at, r.id));
      return c.json({ approvals: page.rows.map((r) => publicApproval({ ...r, args: JSON.parse(r.args) as unknown })), next_cursor: page.next_cursor });
    },
  );

  api.route(
    { method: 'get', path: '/v1/approvals/:id', operationId: 'getApproval', summary: 'One approval request', tag: 'approvals', role: 'reader', params: z.object({ id: z.string().max(64) }), responses: { 200: { description: 'the approval', schema: ApprovalSchema }, 404: E('unknown id') } },
    async ({ params, c, principal }) => c.json(publicApproval(await approval(c.env.DB, principal.tenant, params.id))),
  );

  api.route(
    {
      method: 'post',
      path: '/v1/approvals/:id',
      operationId: 'decideApproval',
      summary: 'Decide an approval: the process wakes and the call runs (approve) or gets EPERM (deny)',
      tag: 'approvals',
      role: 'operator',
      params: z.object({ id: z.string().max(64) }),
      body: ApprovalDecisionBody,
      responses: { 200: { description: 'the decided approval', schema: ApprovalSchema }, 404: E('unknown id'), 409: E('already decided or expired') },
    },
    async ({ params, body, c, principal }) => {
      const row = await approval(c.env.DB, principal.tenant, params.id);
      if (row.status !== 'pending') throw new KernelError('ESTATE', `approval ${row.id} is already ${row.status}`, { status: row.status });
      if (row.expires_at <= Date.now()) throw new KernelError('ESTATE', `approval ${row.id} has expired`, { status: 'expired' });
      if (row.pipeline) {
        await decideGate(c.env, { id: row.id, tenant: principal.tenant, pipeline: row.pipeline, decision: body.decision, note: body.note, by: `api:${principal.token_id}` });
        return c.json(publicApproval(await approval(c.env.DB, principal.tenant, params.id)));
      }
      unwrap(
        await processStub(c.env, row.pid).decideApproval({
          id: row.id,
          tenant: principal.tenant,
          args_hash: row.args_hash,
          decision: body.decision,
          grant: body.grant,
          note: body.note,
          by: `api:${principal.token_id}`,
        }),
      );
      return c.json(publicApproval(await approval(c.env.DB, principal.tenant, params.id)));
    },
  );

  api.route(
    {
      method: 'get',
      path: '/v1/whoami',
      operationId: 'whoami',
      summary: 'Who the bearer token is: its tenant, role and token id (clients show or hide actions by role)',
      tag: 'tokens',
      role: 'reader',
      responses: { 200: { description: 'the calling principal', schema: PrincipalSchema }, 401: E('missing or invalid token') },
    },
    ({ c, principal }) => c.json(PrincipalSchema.parse(principal)),
  );

  const TokenSchema = z.object({ id: z.string(), tenant: z.string(), role: z.enum(ROLES), name: z.string(), created_at: z.number(), created_by: z.string(), revoked_at: z.number().nullable() });

  api.route(
    {
      method: 'post',
      path: '/v1/tokens',
      operationId: 'createToken',
      summary: 'Create an API token (the secret is shown once)',
      tag: 'tokens',
      role: 'admin',
      body: z.object({ tenant: TenantSchema.optional(), role: z.enum(ROLES), name: z.string().min(1).max(128) }).strict(),
      responses: { 201: { description: 'the token', schema: z.object({ id: z.string(), token: z.string(), tenant: z.string(), role: z.enum(ROLES) }) }, 400: E('invalid body or reserved tenant'), 403: E('another tenant') },
    },
    async ({ body, c, principal }) => {
      const tenant = tenantFor(principal, body.tenant);
      if (tenant === SYSTEM_TENANT) throw new KernelError('EINVAL', `"${SYSTEM_TENANT}" is reserved for the kernel's own audit chain`);
      const created = await createToken(c.env.DB, { tenant, role: body.role, name: body.name, created_by: principal.token_id, now: Date.now() });
      return c.json({ ...created, tenant, role: body.role }, 201);
    },
  );

  api.route(
    {
      method: 'get',
      path: '/v1/tokens',
      operationId: 'listTokens',
      summary: "A tenant's tokens (no secrets), oldest first",
      tag: 'tokens',
      role: 'admin',
      query: z.object({ tenant: TenantSchema.optional(), ...pageParams(100, 500, KeysetCursor()) }),
      responses: { 200: { description: 'a page of tokens', schema: paged('tokens', TokenSchema) }, 403: E('another tenant') },
    },
    async ({ query, c, principal }) => {
      const cursor = query.cursor ?? { at: -1, id: '' };
      const { results } = await c.env.DB.prepare(
        'SELECT id, tenant, role, name, created_at, created_by, revoked_at FROM tokens WHERE tenant = ? AND (created_at > ? OR (created_at = ? AND id > ?)) ORDER BY created_at, id LIMIT ?',
      )
        .bind(tenantFor(principal, query.tenant), cursor.at, cursor.at, cursor.id, query.limit + 1)
        .all<z.infer<typeof TokenSchema>>();
      const page = pageOf(results, query.limit, (t) => keyset(t.created_at, t.id));
      return c.json({ tokens: page.rows, next_cursor: page.next_cursor });
    },
  );

  api.route(
    {
      method: 'delete',
      path: '/v1/tokens/:id',
      operationId: 'revokeToken',
      summary: 'Revoke a token',
      tag: 'tokens',
      role: 'admin',
      params: z.object({ id: z.string().max(64) }),
      responses: { 200: { description: 'revoked', schema: z.object({ id: z.string(), revoked: z.boolean() }) }, 404: E('unknown token') },
    },
    async ({ params, c, principal }) => {
      const row = await c.env.DB.prepare('SELECT tenant FROM tokens WHERE id = ?').bind(params.id).first<{ tenant: string }>();
      if (!row || (row.tenant !== principal.tenant && principal.token_id !== 'bootstrap')) throw new KernelError('ENOENT', 'no such token');
      await c.env.DB.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').bind(Date.now(), params.id).run();
      // Other isolates stop trusting it within AUTH_CACHE_MS (./auth.ts).
      forgetToken(params.id);
      return c.json({ id: params.id, revoked: true });
    },
  );

  api.route(
    {
      method: 'get',
      path: '/v1/audit/verify',
      operationId: 'verifyAudit',
      summary: "Recompute the tenant's audit hash chains (its own and each process's) and report the first broken link",
      tag: 'audit',
      role: 'reader',
      query: z.object({ tenant: TenantSchema.optional() }),
      responses: {
        200: {
          description: 'verification report',
          schema: z.object({
            ok: z.boolean(),
            tenant: z.string(),
            rows: z.number().describe("rows checked: the tenant's chain and every process chain"),
            chains: z.number().describe('process chains checked'),
            head: z.object({ seq: z.number(), hash: z.string() }).nullable().describe("the tenant chain's head"),
            first_broken: z
              .object({
                chain_seq: z.number().nullable().describe("the broken row's place in the tenant's chain (null: in a process chain)"),
                pid: z.string().nullable().describe('the process whose chain is broken (null: the tenant chain)'),
                pid_seq: z.number().nullable().describe("the broken row's place in its process's chain"),
                id: z.string().nullable(),
                reason: z.string(),
              })
              .nullable(),
          }),
        },
        403: E('another tenant'),
      },
    },
    async ({ query, c, principal }) => {
      const tenant = tenantFor(principal, query.tenant);
      return c.json(await auditChain(c.env, tenant).verify(tenant));
    },
  );
}
