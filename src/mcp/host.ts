/**
 * The process side of MCP (one per AgentProcess object): which servers' tools this process sees,
 * the rewrite of `mcp__<server>__<tool>` calls into `mcp_call`, and the call itself.
 *
 * The servers a process may use are the ones its live allow/ask grants name (`mcp:docs:*`,
 * `mcp:*:search`): an image's capabilities or a spawn request's name them, and spawning attenuates
 * them like any grant. Their tools (minus those a deny grant covers) join the tool list in a stable
 * order, so provider prompt caches stay warm.
 *
 * Tool lists come from the tenant's cache in D1 (./registry.ts), read at most every CATALOG_TTL_MS
 * per object; a server's list older than MCP_TOOLS_TTL_MS, or announced as changed by the server
 * (notifications/tools/list_changed during a call), is fetched again before the next step.
 * Header values are opened only inside `call` and `prepare`, for the request; nothing here emits
 * them, and a result that echoes one has it replaced by "[redacted]".
 */
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { type Grant, decide, parseCapability } from '../kernel/capabilities.ts';
import { globMatch } from '../kernel/globs.ts';
import { KernelError, toErrorValue } from '../kernel/errors.ts';
import { MCP_RESULT_CHARS, MCP_TOOL_PREFIX, type McpCall, McpCallArgs, modelToolName, callKind } from '../kernel/mcp.ts';
import type { Pcb } from '../kernel/pcb.ts';
import type { RawCall, ToolSpec } from '../kernel/syscalls.ts';
import { validateArgs } from '../tools/schema.ts';
import { DEFAULT_MCP_TIMEOUT_MS, callTool, redact } from './client.ts';
import { type CachedTool, MCP_TOOLS_TTL_MS, type McpRegistry } from './registry.ts';

/** How long an object trusts its copy of the tenant's server catalog before reading D1 again. */
export const CATALOG_TTL_MS = 30_000;
const MAX_STRUCTURED_CHARS = 16 * 1024;

export interface McpHostDeps {
  readonly registry: McpRegistry;
  readonly fetch: typeof fetch;
  readonly now: () => number;
  /** Record a non-fatal event (a tool list that could not be fetched). */
  readonly emit: (type: string, data: Record<string, unknown>) => void;
}

type Entry = { readonly server: string; readonly tool: CachedTool };

/** What a tool call returns to the model. */
export interface McpCallValue {
  readonly server: string;
  readonly tool: string;
  readonly is_error: boolean;
  readonly text: string;
  readonly structured?: unknown;
  readonly truncated: boolean;
}

const live = (g: Grant, now: number) => g.effect !== 'deny' && (g.expires_at == null || g.expires_at > now) && (g.uses == null || g.uses > 0);

/** Server globs of the grants that could let a call through. */
function serverGlobs(grants: readonly Grant[], now: number): string[] {
  const out: string[] = [];
  for (const g of grants) {
    // The domain is the spec's first field: most grants are not mcp:, and parsing each at every step showed in profiles.
    if (!g.cap.startsWith('mcp:') || !live(g, now)) continue;
    const c = parseCapability(g.cap);
    if (c.ok && c.value.domain === 'mcp') out.push(c.value.server);
  }
  return out;
}

/** A tool result as text the model reads: text parts verbatim, other parts named. */
export function resultText(result: CallToolResult): { text: string; truncated: boolean } {
  const parts = result.content.map((p) => {
    switch (p.type) {
      case 'text':
        return p.text;
      case 'image':
      case 'audio':
        return `[${p.type} ${p.mimeType}, ${Math.floor((p.data.length * 3) / 4)} bytes]`;
      case 'resource':
        return 'text' in p.resource ? p.resource.text : `[resource ${p.resource.uri}]`;
      case 'resource_link':
        return `[resource link ${p.uri}${p.name ? ` (${p.name})` : ''}]`;
      default:
        return '';
    }
  });
  const text = parts.join('\n');
  return text.length > MCP_RESULT_CHARS ? { text: text.slice(0, MCP_RESULT_CHARS), truncated: true } : { text, truncated: false };
}

type Catalog = { tenant: string; at: number; servers: Map<string, { tools: CachedTool[] | null; fetched_at: number | null }> };

export class McpHost {
  readonly #deps: McpHostDeps;
  #catalog: Catalog | null = null;
  /** The tools this process sees, by the name the model calls them. */
  #visible = new Map<string, Entry>();

  constructor(deps: McpHostDeps) {
    this.#deps = deps;
  }

  /** Before a step: load (and where stale, refresh) the tool lists of the servers the grants name. */
  async prepare(pcb: Pcb): Promise<void> {
    const now = this.#deps.now();
    const globs = serverGlobs(pcb.capabilities, now);
    this.#visible = new Map();
    if (globs.length === 0) return;
    const catalog = await this.#load(pcb.tenant, now);
    for (const [server, entry] of catalog.servers) {
      if (!globs.some((g) => globMatch(g, server, '/'))) continue;
      if (entry.tools === null || entry.fetched_at === null || now - entry.fetched_at > MCP_TOOLS_TTL_MS) {
        try {
          entry.tools = await this.#deps.registry.refresh(pcb.tenant, server, now, this.#deps.fetch);
          entry.fetched_at = now;
        } catch (e) {
          // Keep a stale list rather than none; try again at the next step.
          this.#deps.emit('mcp_tools_error', { server, error: toErrorValue(e) });
        }
      }
      for (const tool of entry.tools ?? []) {
        if (decide(pcb.capabilities, { domain: 'mcp', server, tool: tool.name }, now).decision === 'deny') continue;
        const name = modelToolName(server, tool.name);
        if (!this.#visible.has(name)) this.#visible.set(name, { server, tool });
      }
    }
  }

  /** The visible tools as the model's tool list, in a stable order. */
  specs(): ToolSpec[] {
    return [...this.#visible.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, { server, tool }]) => ({ name, description: `[MCP server ${server}] ${tool.description}`.trim(), parameters: tool.input_schema }));
  }

  /** The tenant's servers and cached tools, read from D1 at most every CATALOG_TTL_MS. */
  async #load(tenant: string, now: number): Promise<Catalog> {
    if (!this.#catalog || this.#catalog.tenant !== tenant || now - this.#catalog.at > CATALOG_TTL_MS) {
      const rows = await this.#deps.registry.catalog(tenant);
      this.#catalog = { tenant, at: now, servers: new Map(rows.map((r) => [r.name, { tools: r.tools, fetched_at: r.fetched_at }])) };
    }
    return this.#catalog;
  }

  #find(server: string, tool: string): CachedTool | undefined {
    return this.#catalog?.servers.get(server)?.tools?.find((t) => t.name === tool);
  }

  /**
   * Turn a call by a listed name into `mcp_call`, and set `kind` on every `mcp_call` from the
   * cached annotations, whatever the model sent. Other calls pass unchanged.
   */
  rewrite(call: RawCall): RawCall {
    if (call.name.startsWith(MCP_TOOL_PREFIX)) {
      const args = call.args === undefined || call.args === null ? {} : call.args;
      const entry = this.#visible.get(call.name);
      if (entry) return { id: call.id, name: 'mcp_call', args: { server: entry.server, tool: entry.tool.name, args, kind: callKind(entry.tool) } };
      // Not in this process's list (no grant, or no such tool): still an mcp_call, so the dispatcher
      // answers EPERM naming mcp:<server>:<tool>, or the handler ENOENT. Server names hold no "__".
      const rest = call.name.slice(MCP_TOOL_PREFIX.length);
      const cut = rest.indexOf('__');
      if (cut <= 0) return call;
      return { id: call.id, name: 'mcp_call', args: { server: rest.slice(0, cut), tool: rest.slice(cut + 2), args, kind: 'write' } };
    }
    if (call.name !== 'mcp_call') return call;
    // Malformed arguments stay as they are, so validation answers EINVAL: replacing a malformed
    // `kind` would make them valid, and the grant check would then answer EPERM for bad input.
    const parsed = McpCallArgs.safeParse(call.args);
    if (!parsed.success) return call;
    const tool = this.#find(parsed.data.server, parsed.data.tool);
    return { ...call, args: { ...(call.args as Record<string, unknown>), kind: tool ? callKind(tool) : 'write' } };
  }

  /** Call a tool. The dispatcher has checked the grant and journaled the call. */
  async call(tenant: string, a: McpCall): Promise<McpCallValue> {
    // After a restart (a call resumed from the journal) the catalog is read again.
    await this.#load(tenant, this.#deps.now());
    const tool = this.#find(a.server, a.tool);
    if (!tool) throw new KernelError('ENOENT', `MCP server "${a.server}" has no tool "${a.tool}" (or is not registered); the tools you may call are listed as mcp__<server>__<tool>`, { server: a.server, tool: a.tool });
    try {
      validateArgs(modelToolName(a.server, a.tool), tool.input_schema, a.args);
    } catch (e) {
      // Invalid arguments are the model's to fix; a schema our validator cannot read is the server's to check.
      if (e instanceof KernelError) throw e;
    }
    const endpoint = await this.#deps.registry.endpointOf(tenant, a.server);
    const { result, listChanged } = await callTool(endpoint, a.tool, a.args, a.timeout_seconds === undefined ? DEFAULT_MCP_TIMEOUT_MS : Math.round(a.timeout_seconds * 1000), this.#deps.fetch);
    if (listChanged) {
      await this.#deps.registry.invalidate(tenant, a.server);
      this.#catalog = null;
    }
    const { text, truncated } = resultText(result);
    const structuredJson = result.structuredContent === undefined ? undefined : redact(JSON.stringify(result.structuredContent), endpoint);
    const structured = structuredJson !== undefined && structuredJson.length <= MAX_STRUCTURED_CHARS ? { structured: JSON.parse(structuredJson) as unknown } : {};
    return { server: a.server, tool: a.tool, is_error: result.isError === true, text: redact(text, endpoint), ...structured, truncated };
  }
}
