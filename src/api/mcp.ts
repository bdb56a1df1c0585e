/**
 * MCP server registration routes: a tenant registers the remote MCP servers its processes may use
 * (`mcp:<server>:<tool>` grants decide which process uses which tool). Header values are write-only:
 * no response, audit row or event ever carries them, only their names.
 */
import { z } from 'zod';
import { auditChain } from '../rpc/stubs.ts';
import { McpRegistry, McpServerBody, McpServerViewSchema } from '../mcp/registry.ts';
import { toErrorValue } from '../kernel/errors.ts';
import { MCP_SERVER_NAME } from '../kernel/capabilities.ts';
import { E } from './common.ts';
import { pageOf, pageParams, paged } from './paging.ts';
import type { Principal } from './auth.ts';
import type { ApiRegistry } from './registry.ts';

const NameParams = z.object({ name: z.string().regex(MCP_SERVER_NAME, 'not a server name') });

async function audit(env: Env, principal: Principal, action: string, detail: Record<string, unknown>): Promise<void> {
  const now = Date.now();
  await auditChain(env, principal.tenant).append(principal.tenant, [
    { id: `mcp:${now}:${crypto.randomUUID()}`, tenant: principal.tenant, pid: '-', at: now, kind: 'mcp', action, outcome: 'ok', code: null, detail: { ...detail, by: `api:${principal.token_id}` } },
  ]);
}

export function registerMcpRoutes(api: ApiRegistry): void {
  const registry = (env: Env) => new McpRegistry(env.DB, env.MCP_SECRET_KEY);

  api.route(
    {
      method: 'post',
      operationId: 'registerMcpServer',
      path: '/v1/mcp/servers',
      summary: 'Register (or replace) a remote MCP server for your tenant; its tool list is fetched at once',
      tag: 'mcp',
      role: 'operator',
      body: McpServerBody,
      responses: {
        201: { description: 'registered; refresh_error says why the tool list could not be fetched yet', schema: McpServerViewSchema.extend({ refresh_error: z.object({ code: z.string(), message: z.string() }).nullable() }) },
        400: E('invalid body, or headers without MCP_SECRET_KEY configured'),
      },
    },
    async ({ body, c, principal }) => {
      const servers = registry(c.env);
      await servers.register(principal.tenant, body, `api:${principal.token_id}`, Date.now());
      await audit(c.env, principal, 'register_server', { server: body.name, url: body.url, header_names: Object.keys(body.headers ?? {}) });
      let refreshError: { code: string; message: string } | null = null;
      try {
        await servers.refresh(principal.tenant, body.name, Date.now());
      } catch (e) {
        const v = toErrorValue(e);
        refreshError = { code: v.code, message: v.message };
      }
      return c.json({ ...(await servers.get(principal.tenant, body.name)), refresh_error: refreshError }, 201, { location: `/v1/mcp/servers/${body.name}` });
    },
  );

  api.route(
    {
      method: 'get',
      operationId: 'listMcpServers',
      path: '/v1/mcp/servers',
      summary: "Your tenant's MCP servers and their cached tools (header names only), by name, paged",
      tag: 'mcp',
      role: 'reader',
      query: z.object(pageParams(50, 200, z.string().regex(MCP_SERVER_NAME, 'use next_cursor from the previous page'))),
      responses: { 200: { description: 'servers', schema: paged('servers', McpServerViewSchema) }, 400: E('bad limit or cursor') },
    },
    async ({ c, principal, query }) => {
      const rows = await registry(c.env).list(principal.tenant, { after: query.cursor ?? '', limit: query.limit + 1 });
      const page = pageOf(rows, query.limit, (s) => s.name);
      return c.json({ servers: page.rows, next_cursor: page.next_cursor });
    },
  );

  api.route(
    { method: 'get', operationId: 'getMcpServer', path: '/v1/mcp/servers/:name', summary: 'One MCP server', tag: 'mcp', role: 'reader', params: NameParams, responses: { 200: { description: 'the server', schema: McpServerViewSchema }, 404: E('unknown server') } },
    async ({ params, c, principal }) => c.json(await registry(c.env).get(principal.tenant, params.name)),
  );

  api.route(
    {
      method: 'post',
      operationId: 'refreshMcpServer',
      path: '/v1/mcp/servers/:name/refresh',
      summary: "Fetch the server's tool list again now",
      tag: 'mcp',
      role: 'operator',
      params: NameParams,
      responses: { 200: { description: 'the server with its fresh tool list', schema: McpServerViewSchema }, 404: E('unknown server'), 502: E('the server could not be reached'), 504: E('the server timed out') },
    },
    async ({ params, c, principal }) => {
      const servers = registry(c.env);
      await servers.refresh(principal.tenant, params.name, Date.now());
      return c.json(await servers.get(principal.tenant, params.name));
    },
  );

  api.route(
    { method: 'delete', operationId: 'deleteMcpServer', path: '/v1/mcp/servers/:name', summary: 'Remove an MCP server (its sealed headers with it)', tag: 'mcp', role: 'operator', params: NameParams, responses: { 200: { description: 'removed' }, 404: E('unknown server') } },
    async ({ params, c, principal }) => {
      await registry(c.env).remove(principal.tenant, params.name);
      await audit(c.env, principal, 'remove_server', { server: params.name });
      return c.json({ name: params.name, removed: true });
    },
  );
}
