/**
 * Talking to a remote MCP server with the official SDK's Client: Streamable HTTP first, the older
 * HTTP+SSE transport when the server answers the Streamable HTTP POST with a 4xx (the fallback the
 * specification describes). Every session is opened for one job (list the tools, or call one) and
 * closed after it, so no connection outlives the Durable Object request that needed it.
 *
 * Responses are size-capped while they stream (MAX_MCP_RESPONSE_BYTES, E2BIG past it), requests
 * time out (ETIMEDOUT), and every failure becomes a KernelError with a code. A server that sends
 * `notifications/tools/list_changed` while we are connected is remembered in `listChanged`, so the
 * caller can drop its cached tool list.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { type CallToolResult, ErrorCode, McpError, type Tool, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { CfWorkerJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/cfworker';
import { KernelError } from '../kernel/errors.ts';

/** Bytes one MCP response may carry (the same bound as net_fetch). */
export const MAX_MCP_RESPONSE_BYTES = 5 * 1024 * 1024;
/** Tools one server may contribute to a process's tool list. */
export const MAX_MCP_TOOLS = 128;
export const DEFAULT_MCP_TIMEOUT_MS = 30_000;

export interface McpEndpoint {
  readonly name: string;
  readonly url: string;
  /** Plain header values: only ever in memory, for the requests of this session. */
  readonly headers: Readonly<Record<string, string>>;
}

export interface McpSession {
  readonly client: Client;
  /** Whether the server announced a changed tool list during this session. */
  listChanged(): boolean;
  close(): Promise<void>;
}

/** A fetch whose response bodies stop with E2BIG past `limit` bytes. */
function cappedFetch(base: typeof fetch, limit: number, server: string): typeof fetch {
  return async (input, init) => {
    const res = await base(input, init);
    if (!res.body) return res;
    let seen = 0;
    const counted = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          seen += chunk.byteLength;
          if (seen > limit) controller.error(new KernelError('E2BIG', `MCP server "${server}" sent more than ${limit} bytes in one response`, { limit }));
          else controller.enqueue(chunk);
        },
      }),
    );
    return new Response(counted, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

/** Shortest header value treated as a secret to scrub (shorter ones would match ordinary text). */
const MIN_SECRET_CHARS = 6;

/**
 * Replace every header value of the endpoint in a text with "[redacted]": a server that echoes the
 * credentials it was sent (in an error body or a tool result) does not put them into the context.
 */
export function redact(text: string, endpoint: Pick<McpEndpoint, 'headers'>): string {
  let out = text;
  for (const value of Object.values(endpoint.headers)) {
    for (const secret of new Set([value, value.replace(/^(Bearer|Basic|Token)\s+/i, '')])) if (secret.length >= MIN_SECRET_CHARS) out = out.split(secret).join('[redacted]');
  }
  return out;
}

function scrubbed(e: KernelError, endpoint: McpEndpoint): KernelError {
  const message = redact(e.message, endpoint);
  return message === e.message ? e : new KernelError(e.code, message, e.details);
}

/** A failure of the SDK or the network as a KernelError the model and the API can act on. */
export function mcpFailure(server: string, e: unknown): KernelError {
  if (e instanceof KernelError) return e;
  if (e instanceof McpError) {
    if (e.code === ErrorCode.RequestTimeout) return new KernelError('ETIMEDOUT', `MCP server "${server}" did not answer in time`, { server });
    if (e.code === ErrorCode.InvalidParams) return new KernelError('EINVAL', `MCP server "${server}" refused the arguments: ${e.message}`, { server, mcp_code: e.code });
    return new KernelError('EIO', `MCP server "${server}" answered with an error: ${e.message}`, { server, mcp_code: e.code });
  }
  const cause = (e as { cause?: unknown } | null)?.cause;
  if (cause instanceof KernelError) return cause;
  if (e instanceof StreamableHTTPError) return new KernelError('EIO', `MCP server "${server}" answered HTTP ${e.code ?? '?'}`, { server, status: e.code });
  return new KernelError('EIO', `MCP server "${server}" could not be reached: ${e instanceof Error ? e.message : String(e)}`, { server });
}

async function start(endpoint: McpEndpoint, transport: StreamableHTTPClientTransport | SSEClientTransport): Promise<McpSession> {
  let changed = false;
  const client = new Client({ name: 'agentos', version: '0.1.0' }, { jsonSchemaValidator: new CfWorkerJsonSchemaValidator() });
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    changed = true;
  });
  await client.connect(transport, { timeout: DEFAULT_MCP_TIMEOUT_MS });
  return { client, listChanged: () => changed, close: () => client.close().catch(() => {}) };
}

/** Open a session with a server: Streamable HTTP, or HTTP+SSE if the server answers it with a 4xx. */
export async function openSession(endpoint: McpEndpoint, base: typeof fetch = fetch): Promise<McpSession> {
  const url = new URL(endpoint.url);
  const capped = cappedFetch(base, MAX_MCP_RESPONSE_BYTES, endpoint.name);
  const requestInit = { headers: { ...endpoint.headers } };
  try {
    return await start(endpoint, new StreamableHTTPClientTransport(url, { fetch: capped, requestInit }));
  } catch (e) {
    const status = e instanceof StreamableHTTPError ? e.code : undefined;
    // 401/403 are about the credentials, not the transport: say so rather than trying the other one.
    if (status === undefined || status < 400 || status >= 500 || status === 401 || status === 403) throw scrubbed(mcpFailure(endpoint.name, e), endpoint);
  }
  try {
    return await start(endpoint, new SSEClientTransport(url, { fetch: capped, requestInit }));
  } catch (e) {
    throw scrubbed(mcpFailure(endpoint.name, e), endpoint);
  }
}

/** The server's tools (all pages, at most MAX_MCP_TOOLS). */
export async function listTools(endpoint: McpEndpoint, base?: typeof fetch): Promise<Tool[]> {
  const session = await openSession(endpoint, base);
  try {
    const tools: Tool[] = [];
    let cursor: string | undefined;
    do {
      const page = await session.client.listTools(cursor ? { cursor } : {}, { timeout: DEFAULT_MCP_TIMEOUT_MS });
      tools.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor && tools.length < MAX_MCP_TOOLS);
    return tools.slice(0, MAX_MCP_TOOLS);
  } catch (e) {
    throw scrubbed(mcpFailure(endpoint.name, e), endpoint);
  } finally {
    await session.close();
  }
}

/** Call one tool. `listChanged` says whether the server announced new tools meanwhile. */
export async function callTool(endpoint: McpEndpoint, tool: string, args: Record<string, unknown>, timeoutMs: number, base?: typeof fetch): Promise<{ result: CallToolResult; listChanged: boolean }> {
  const session = await openSession(endpoint, base);
  try {
    const result = (await session.client.callTool({ name: tool, arguments: args }, undefined, { timeout: timeoutMs, maxTotalTimeout: timeoutMs })) as CallToolResult;
    return { result, listChanged: session.listChanged() };
  } catch (e) {
    throw scrubbed(mcpFailure(endpoint.name, e), endpoint);
  } finally {
    await session.close();
  }
}
