/**
 * The per-tenant table of registered MCP servers (D1 `mcp_servers`): registration, the public view,
 * and the cached tool list. Header values are sealed (./secrets.ts) before they are written and
 * opened only by `endpointOf`, whose result goes straight into a request: the public view carries
 * header names, never values.
 *
 * A cached tool keeps what a model needs (name, description, input JSON Schema) and the annotations
 * that decide its replay class; oversized schemas are dropped at refresh, so one server cannot blow
 * up every prompt that lists its tools.
 */
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { MCP_SERVER_NAME, MCP_TOOL_NAME } from '../kernel/capabilities.ts';
import { KernelError } from '../kernel/errors.ts';
import { type McpEndpoint, listTools } from './client.ts';
import { openHeaders, sealHeaders } from './secrets.ts';

export const MCP_TOOL_DESCRIPTION_CHARS = 1024;
export const MCP_TOOL_SCHEMA_CHARS = 16 * 1024;
/** After this long a cached tool list is fetched again before use. */
export const MCP_TOOLS_TTL_MS = 10 * 60_000;

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/;
/** Headers the transport sets itself: a registration may not override them. */
const RESERVED_HEADERS = new Set(['host', 'content-type', 'content-length', 'accept', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id']);

export const McpServerBody = z
  .object({
    name: z
      .string()
      .regex(MCP_SERVER_NAME, 'a server name is 1-32 lower-case letters, digits, "_" or "-" (it becomes part of tool names: mcp__<name>__<tool>)')
      .refine((n) => !n.includes('__'), 'a server name may not contain "__" (it separates server and tool in mcp__<server>__<tool>)'),
    url: z
      .string()
      .max(2048)
      .url()
      // zod runs this refinement even when .url() failed: an unparseable URL must be an issue, not a throw (a 500).
      .refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), 'the URL must be http(s)'),
    headers: z
      .record(z.string().regex(HEADER_NAME, 'not a valid header name').refine((h) => !RESERVED_HEADERS.has(h.toLowerCase()), 'the transport sets this header itself'), z.string().max(8192))
      .refine((h) => Object.keys(h).length <= 16, 'at most 16 headers')
      .optional()
      .describe('sent with every request to the server (e.g. Authorization); stored encrypted, never shown again'),
  })
  .strict();
export type McpServerInput = z.infer<typeof McpServerBody>;

export const CachedToolSchema = z.object({
  name: z.string(),
  description: z.string(),
  input_schema: z.record(z.string(), z.unknown()),
  read_only: z.boolean(),
  idempotent: z.boolean(),
});
export type CachedTool = z.infer<typeof CachedToolSchema>;

export const McpServerViewSchema = z.object({
  name: z.string(),
  url: z.string(),
  header_names: z.array(z.string()),
  tools: z.array(z.object({ name: z.string(), description: z.string(), read_only: z.boolean(), idempotent: z.boolean() })).nullable(),
  tools_fetched_at: z.number().nullable(),
  created_at: z.number(),
  created_by: z.string(),
});
export type McpServerView = z.infer<typeof McpServerViewSchema>;

type Row = { tenant: string; name: string; url: string; header_names: string; headers_enc: string | null; tools: string | null; tools_fetched_at: number | null; created_at: number; created_by: string };

const COLUMNS = 'tenant, name, url, header_names, headers_enc, tools, tools_fetched_at, created_at, created_by';

export function toolsOf(row: { tools: string | null }): CachedTool[] | null {
  if (row.tools === null) return null;
  const parsed = z.array(CachedToolSchema).safeParse(JSON.parse(row.tools));
  return parsed.success ? parsed.data : null;
}

function view(row: Row): McpServerView {
  return {
    name: row.name,
    url: row.url,
    header_names: JSON.parse(row.header_names) as string[],
    tools: toolsOf(row)?.map(({ input_schema: _s, ...t }) => t) ?? null,
    tools_fetched_at: row.tools_fetched_at,
    created_at: row.created_at,
    created_by: row.created_by,
  };
}

/** What the kernel keeps of a server's tool: bounded, with the hints that decide its replay class. */
export function cacheable(tools: readonly Tool[]): CachedTool[] {
  const out: CachedTool[] = [];
  for (const t of tools) {
    if (!MCP_TOOL_NAME.test(t.name)) continue;
    const schema = t.inputSchema as Record<string, unknown>;
    if (JSON.stringify(schema).length > MCP_TOOL_SCHEMA_CHARS) continue;
    out.push({
      name: t.name,
      description: (t.description ?? t.title ?? '').slice(0, MCP_TOOL_DESCRIPTION_CHARS),
      input_schema: schema,
      read_only: t.annotations?.readOnlyHint === true,
      idempotent: t.annotations?.idempotentHint === true,
    });
  }
  return out;
}

export class McpRegistry {
  readonly #db: D1Database;
  readonly #secret: string | undefined;

  constructor(db: D1Database, secret: string | undefined) {
    this.#db = db;
    this.#secret = secret;
  }

  async #row(tenant: string, name: string): Promise<Row> {
    const row = await this.#db.prepare(`SELECT ${COLUMNS} FROM mcp_servers WHERE tenant = ? AND name = ?`).bind(tenant, name).first<Row>();
    if (!row) throw new KernelError('ENOENT', `no MCP server named "${name}" is registered`, { server: name });
    return row;
  }

  /** Register (or replace) a server. Its tool list is fetched by the caller through `refresh`. */
  async register(tenant: string, input: McpServerInput, by: string, now: number): Promise<void> {
    const headers = input.headers ?? {};
    const names = Object.keys(headers);
    const sealed = names.length ? await sealHeaders(this.#secret, tenant, input.name, headers) : null;
    await this.#db
      .prepare(
        `INSERT INTO mcp_servers (${COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL, NULL, ?, ?)
         ON CONFLICT (tenant, name) DO UPDATE SET url = excluded.url, header_names = excluded.header_names, headers_enc = excluded.headers_enc, tools = NULL, tools_fetched_at = NULL, created_at = excluded.created_at, created_by = excluded.created_by`,
      )
      .bind(tenant, input.name, input.url, JSON.stringify(names), sealed, now, by)
      .run();
  }

  async get(tenant: string, name: string): Promise<McpServerView> {
    return view(await this.#row(tenant, name));
  }

  /** The tenant's servers by name, `limit` of them after `after` (a keyset page). */
  async list(tenant: string, page: { after: string; limit: number }): Promise<McpServerView[]> {
    const { results } = await this.#db.prepare(`SELECT ${COLUMNS} FROM mcp_servers WHERE tenant = ? AND name > ? ORDER BY name LIMIT ?`).bind(tenant, page.after, page.limit).all<Row>();
    return results.map(view);
  }

  async remove(tenant: string, name: string): Promise<void> {
    const r = await this.#db.prepare('DELETE FROM mcp_servers WHERE tenant = ? AND name = ?').bind(tenant, name).run();
    if (!r.meta.changes) throw new KernelError('ENOENT', `no MCP server named "${name}" is registered`, { server: name });
  }

  /** Where to send requests, with the header values opened: for the request only, never stored or shown. */
  async endpointOf(tenant: string, name: string): Promise<McpEndpoint> {
    const row = await this.#row(tenant, name);
    return { name, url: row.url, headers: row.headers_enc ? await openHeaders(this.#secret, tenant, name, row.headers_enc) : {} };
  }

  /** The servers of a tenant with their cached tools (no header values). */
  async catalog(tenant: string): Promise<{ name: string; tools: CachedTool[] | null; fetched_at: number | null }[]> {
    const { results } = await this.#db.prepare('SELECT name, tools, tools_fetched_at FROM mcp_servers WHERE tenant = ? ORDER BY name').bind(tenant).all<Pick<Row, 'name' | 'tools' | 'tools_fetched_at'>>();
    return results.map((r) => ({ name: r.name, tools: toolsOf(r), fetched_at: r.tools_fetched_at }));
  }

  /** Fetch a server's tool list from the server and cache it. */
  async refresh(tenant: string, name: string, now: number, base?: typeof fetch): Promise<CachedTool[]> {
    const tools = cacheable(await listTools(await this.endpointOf(tenant, name), base));
    await this.#db.prepare('UPDATE mcp_servers SET tools = ?, tools_fetched_at = ? WHERE tenant = ? AND name = ?').bind(JSON.stringify(tools), now, tenant, name).run();
    return tools;
  }

  /** Forget a cached tool list (the server said it changed): the next use fetches it again. */
  async invalidate(tenant: string, name: string): Promise<void> {
    await this.#db.prepare('UPDATE mcp_servers SET tools_fetched_at = NULL WHERE tenant = ? AND name = ?').bind(tenant, name).run();
  }
}
