/**
 * Operator routes for long-term memory: search a namespace of your tenant, delete a memory.
 * Namespaces are named as stored: `proc/<pid>` (a process's private memory), `pages/<pid>` (its
 * swapped context pages), `tenant`, `image/<name>`, or any other shared name. The tenant always comes
 * from the token (the bootstrap admin may name another with `tenant=`). Deletions are audited in the
 * tenant's chain, as kind `memory`.
 */
import { z } from 'zod';
import { auditChain } from '../rpc/stubs.ts';
import { KernelError } from '../kernel/errors.ts';
import { DEFAULT_TOP_K, FilterSchema, MAX_TOP_K, StoredNamespaceSchema } from '../kernel/memory.ts';
import { TenantSchema } from '../kernel/pcb.ts';
import { memoryService } from '../memory/service.ts';
import { E, intParam } from './common.ts';
import { tenantFor } from './governance.ts';
import type { ApiRegistry } from './registry.ts';

const MatchSchema = z.object({ id: z.string(), score: z.number(), text: z.string(), metadata: z.record(z.string(), z.unknown()), created_at: z.number() });

/** A filter in a query string: JSON, validated like the syscall's. */
const FilterParam = z
  .string()
  .max(2048)
  .transform((s, ctx) => {
    try {
      return JSON.parse(s) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'filter must be JSON, e.g. {"topic":"billing"}' });
      return z.NEVER;
    }
  })
  .pipe(FilterSchema);

export function registerMemory(api: ApiRegistry): void {
  api.route(
    {
      method: 'get',
      path: '/v1/memory/search',
      operationId: 'searchMemory',
      summary: 'Search a long-term memory namespace of your tenant by meaning, best first',
      tag: 'memory',
      role: 'reader',
      query: z.object({
        q: z.string().min(1).max(2000).describe('the query text'),
        namespace: StoredNamespaceSchema.optional().default('tenant').describe('proc/<pid>, pages/<pid>, tenant (default), image/<name>, or another shared name'),
        top_k: intParam(DEFAULT_TOP_K, 1, MAX_TOP_K),
        filter: FilterParam.optional().describe('metadata conditions as JSON, e.g. {"topic":"billing"}'),
        tenant: TenantSchema.optional().describe("bootstrap admin only: another tenant's memory"),
      }),
      responses: {
        200: {
          description: 'matches',
          schema: z.object({ namespace: z.string(), results: z.array(MatchSchema), embedding: z.object({ model: z.string(), lexical: z.boolean() }), store: z.enum(['vectorize', 'embedded']) }),
        },
        400: E('bad query'),
        403: E('another tenant'),
      },
    },
    async ({ query, c, principal }) => {
      const tenant = tenantFor(principal, query.tenant);
      const found = await memoryService(c.env).search({ tenant, namespace: query.namespace }, { query: query.q, top_k: query.top_k, ...(query.filter ? { filter: query.filter } : {}) });
      return c.json({ namespace: query.namespace, ...found });
    },
  );

  api.route(
    {
      method: 'delete',
      path: '/v1/memory/:id',
      operationId: 'deleteMemory',
      summary: 'Delete a memory from a namespace of your tenant (audited)',
      tag: 'memory',
      role: 'operator',
      params: z.object({ id: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'a memory id') }),
      query: z.object({ namespace: StoredNamespaceSchema.describe('the namespace the memory is in (as stored: proc/<pid>, tenant …)') }),
      responses: { 200: { description: 'deleted', schema: z.object({ id: z.string(), namespace: z.string(), deleted: z.boolean() }) }, 404: E('no such memory') },
    },
    async ({ params, query, c, principal }) => {
      const scope = { tenant: principal.tenant, namespace: query.namespace };
      const gone = await memoryService(c.env).delete(scope, [params.id]);
      if (gone.length === 0) throw new KernelError('ENOENT', `no memory ${params.id} in namespace "${query.namespace}"`);
      const now = Date.now();
      await auditChain(c.env, scope.tenant).append(scope.tenant, [
        { id: `mem:${now}:${crypto.randomUUID()}`, tenant: scope.tenant, pid: '-', at: now, kind: 'memory', action: 'delete', outcome: 'ok', code: null, detail: { id: params.id, namespace: scope.namespace, by: `api:${principal.token_id}` } },
      ]);
      return c.json({ id: params.id, namespace: query.namespace, deleted: true });
    },
  );
}
