/**
 * The kernel as an MCP server at `/mcp` (Streamable HTTP, stateless: one server and transport per
 * POST, as the SDK recommends for a runtime with no sticky sessions).
 *
 * Every tool is one HTTP API operation, dispatched in-process with the caller's own bearer token:
 * authentication, roles, tenants, validation and errors are exactly the API's, so a reader token
 * cannot spawn here either and another tenant's pid is ENOENT here too. Tool input schemas are the
 * API's own zod schemas (one schema, many uses). An API error becomes a tool result with
 * `isError: true` and the error envelope as structured content, never a JSON-RPC failure; malformed
 * JSON-RPC is answered by the SDK's transport with a JSON-RPC error and a 4xx.
 *
 * `process_wait` follows a process's live event stream and reports each event as a progress
 * notification, returning when the process exits or its timeout passes; a client delegates a job
 * with `process_spawn` and collects the result with `process_wait` (again, from `next_after`, if the
 * first wait timed out).
 */
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { type CallToolResult, McpError, type ReadResourceResult, type ServerNotification } from '@modelcontextprotocol/sdk/types.js';
import { CfWorkerJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/cfworker';
import type { Hono } from 'hono';
import { EventSourceParserStream } from 'eventsource-parser/stream';
import { z } from 'zod';
import { PidSchema, ProcessStateSchema } from '../kernel/pcb.ts';
import { SpawnRequestSchema } from '../kernel/spawn.ts';
import { authenticate } from '../api/auth.ts';
import { SignalBody } from '../api/common.ts';
import { APPROVAL_STATUSES, ApprovalDecisionBody } from '../api/governance.ts';
import { MessageBody } from '../api/ipc.ts';
import { MAX_BODY_BYTES } from '../api/registry.ts';

/** Calls one API operation in-process as the MCP caller. */
export type ApiCall = (method: 'GET' | 'POST', path: string, init?: { body?: unknown; accept?: string; signal?: AbortSignal }) => Promise<Response>;

export const MCP_SERVER_INFO = { name: 'agentos', version: '0.1.0' } as const;
/** How long one process_wait may follow a process before it returns what it has. */
export const MAX_WAIT_MS = 60_000;
const DONE_STATES = new Set(['zombie', 'terminated']);
/** JSON-RPC error for a resource that does not exist (the MCP specification's -32002). */
const RESOURCE_NOT_FOUND = -32002;

const pidInput = z.object({ pid: PidSchema.describe('the process id, as process_spawn or process_list returned it') });
const enc = encodeURIComponent;

async function jsonOf(res: Response): Promise<Record<string, unknown>> {
  const text = await res.text();
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : { value: v };
  } catch {
    return { error: { code: 'EFAULT', message: `the API answered ${res.status} with a body that is not JSON` } };
  }
}

/** An API answer as a tool result: the JSON as text and as structured content; errors flagged. */
async function toolResult(res: Response): Promise<CallToolResult> {
  const body = await jsonOf(res);
  if (res.ok) return { content: [{ type: 'text', text: JSON.stringify(body) }], structuredContent: body };
  const error = (body.error ?? {}) as { code?: string; message?: string };
  return { isError: true, content: [{ type: 'text', text: `${error.code ?? 'EFAULT'}: ${error.message ?? `HTTP ${res.status}`}` }], structuredContent: body };
}

async function resourceJson(uri: URL, res: Response): Promise<ReadResourceResult> {
  const body = await jsonOf(res);
  if (!res.ok) {
    const error = (body.error ?? {}) as { code?: string; message?: string };
    throw new McpError(res.status === 404 ? RESOURCE_NOT_FOUND : -32603, `${error.code ?? 'EFAULT'}: ${error.message ?? `HTTP ${res.status}`}`, { uri: uri.href, error });
  }
  return { contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify(body) }] };
}

type Notify = (n: ServerNotification) => Promise<void>;
type EventRow = { seq: number; type: string; data: unknown };

/** One line a person can read for a progress notification. */
function describeEvent(e: EventRow): string {
  const d = (e.data ?? {}) as Record<string, unknown>;
  if (e.type === 'state') return `state ${String(d.from ?? '?')} -> ${String(d.to ?? '?')}`;
  if (e.type === 'syscall') return `syscall ${String(d.name ?? '?')} ${d.ok === false ? 'failed' : 'ok'}`;
  return e.type;
}

/**
 * Follow a process's events from `after` until it exits, the timeout passes or the client cancels.
 * Each event is one progress notification when the client sent a progress token.
 */
async function follow(call: ApiCall, pid: string, after: number, timeoutMs: number, cancel: AbortSignal, progressToken: string | number | undefined, notify: Notify): Promise<{ last: number; error?: Response }> {
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), timeoutMs);
  const onCancel = () => stop.abort();
  cancel.addEventListener('abort', onCancel);
  let last = after;
  try {
    const res = await call('GET', `/v1/processes/${enc(pid)}/events?after=${after}`, { accept: 'text/event-stream', signal: stop.signal });
    if (!res.ok || !res.body) return { last, error: res };
    const reader = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream()).getReader();
    stop.signal.addEventListener('abort', () => void reader.cancel().catch(() => {}));
    let sent = 0;
    for (;;) {
      const next = await reader.read().catch(() => ({ done: true as const, value: undefined }));
      if (next.done) break;
      const event = JSON.parse(next.value.data) as EventRow;
      last = event.seq;
      if (progressToken !== undefined) await notify({ method: 'notifications/progress', params: { progressToken, progress: ++sent, message: describeEvent(event) } });
      if (event.type === 'state' && DONE_STATES.has(String((event.data as { to?: unknown }).to))) break;
    }
    void reader.cancel().catch(() => {});
    return { last };
  } finally {
    clearTimeout(timer);
    cancel.removeEventListener('abort', onCancel);
  }
}

/** Build the server's tools and resources over one caller. */
export function buildMcpServer(call: ApiCall): McpServer {
  const server = new McpServer(MCP_SERVER_INFO, {
    capabilities: { tools: {}, resources: {} },
    // Ajv compiles schemas with `new Function`, which Workers forbid; @cfworker/json-schema interprets them.
    jsonSchemaValidator: new CfWorkerJsonSchemaValidator(),
    instructions: 'AgentOS: durable LLM agent processes. Spawn one with process_spawn, follow it with process_wait (progress notifications), read its result from the exit status.',
  });

  server.registerTool(
    'process_spawn',
    { title: 'Spawn a process', description: 'Start a durable agent process on a task. Returns its PCB; follow it with process_wait.', inputSchema: SpawnRequestSchema, annotations: { destructiveHint: false, openWorldHint: true } },
    async (args) => toolResult(await call('POST', '/v1/processes', { body: args })),
  );

  server.registerTool(
    'process_list',
    {
      title: 'List processes (ps)',
      description: 'Processes of your tenant, newest first, paged by next_cursor.',
      inputSchema: z.object({ state: ProcessStateSchema.optional(), ppid: PidSchema.optional(), limit: z.number().int().min(1).max(500).optional(), cursor: z.string().max(64).optional() }),
      annotations: { readOnlyHint: true },
    },
    async (args) => {
      const q = new URLSearchParams(Object.entries(args).flatMap(([k, v]) => (v === undefined ? [] : [[k, String(v)]])));
      return toolResult(await call('GET', `/v1/processes?${q}`));
    },
  );

  server.registerTool(
    'process_get',
    { title: 'Read a process', description: "A process's control block: state, usage, wait reason and, once it has exited, its exit status and result.", inputSchema: pidInput, annotations: { readOnlyHint: true } },
    async ({ pid }) => toolResult(await call('GET', `/v1/processes/${enc(pid)}`)),
  );

  server.registerTool(
    'process_events',
    {
      title: "Read a process's events",
      description: 'The event log after a cursor (syscalls, state changes, LLM calls); next_after is the next cursor.',
      inputSchema: pidInput.extend({ after: z.number().int().min(0).optional(), limit: z.number().int().min(1).max(1000).optional() }),
      annotations: { readOnlyHint: true },
    },
    async ({ pid, after, limit }) => toolResult(await call('GET', `/v1/processes/${enc(pid)}/events?after=${after ?? 0}&limit=${limit ?? 100}`)),
  );

  server.registerTool(
    'process_wait',
    {
      title: 'Wait for a process',
      description: `Follow a process until it exits (at most timeout_ms, up to ${MAX_WAIT_MS}), one progress notification per event. Returns the PCB with done and next_after; if not done, call again from next_after.`,
      inputSchema: pidInput.extend({ after: z.number().int().min(0).default(0).describe('event cursor to follow from'), timeout_ms: z.number().int().min(0).max(MAX_WAIT_MS).default(30_000) }),
      annotations: { readOnlyHint: true },
    },
    async ({ pid, after, timeout_ms }, extra) => {
      const followed = await follow(call, pid, after, timeout_ms, extra.signal, extra._meta?.progressToken, extra.sendNotification);
      if (followed.error) return toolResult(followed.error);
      const res = await call('GET', `/v1/processes/${enc(pid)}`);
      if (!res.ok) return toolResult(res);
      const pcb = await jsonOf(res);
      const out = { done: DONE_STATES.has(String(pcb.state)), next_after: followed.last, pcb };
      return { content: [{ type: 'text', text: JSON.stringify(out) }], structuredContent: out };
    },
  );

  server.registerTool(
    'process_send',
    { title: 'Send a message', description: "Deliver a message to a process's mailbox.", inputSchema: pidInput.extend(MessageBody.shape), annotations: { destructiveHint: false } },
    async ({ pid, ...body }) => toolResult(await call('POST', `/v1/processes/${enc(pid)}/messages`, { body })),
  );

  server.registerTool(
    'process_signal',
    { title: 'Signal a process', description: 'SIGTERM, SIGKILL, SIGSTOP or SIGCONT; cascade signals its descendants too.', inputSchema: pidInput.extend(SignalBody.shape), annotations: { destructiveHint: true } },
    async ({ pid, ...body }) => toolResult(await call('POST', `/v1/processes/${enc(pid)}/signals`, { body })),
  );

  server.registerTool(
    'process_read_file',
    { title: 'Read a file', description: "Read a file (or list a directory) in a process's filesystem.", inputSchema: pidInput.extend({ path: z.string().min(1).max(4096).describe('absolute path, e.g. /out/report.md') }), annotations: { readOnlyHint: true } },
    async ({ pid, path }) => toolResult(await call('GET', `/v1/processes/${enc(pid)}/fs/${path.split('/').filter(Boolean).map(enc).join('/')}`)),
  );

  server.registerTool(
    'approvals_list',
    {
      title: 'List approvals',
      description: 'Approval requests of your tenant (default: pending): a syscall under an ask grant waits for one.',
      inputSchema: z.object({ status: z.enum(APPROVAL_STATUSES).optional(), limit: z.number().int().min(1).max(500).optional() }),
      annotations: { readOnlyHint: true },
    },
    async ({ status, limit }) => toolResult(await call('GET', `/v1/approvals?status=${status ?? 'pending'}&limit=${limit ?? 100}`)),
  );

  server.registerTool(
    'approval_decide',
    { title: 'Decide an approval', description: 'Approve (the call runs) or deny (the process gets EPERM) a pending request.', inputSchema: z.object({ id: z.string().min(1).max(64) }).extend(ApprovalDecisionBody.shape), annotations: { destructiveHint: true } },
    async ({ id, ...body }) => toolResult(await call('POST', `/v1/approvals/${enc(id)}`, { body })),
  );

  server.registerResource(
    'process',
    new ResourceTemplate('agentos://processes/{pid}', {
      list: async () => {
        const res = await call('GET', '/v1/processes?limit=100');
        const body = res.ok ? ((await jsonOf(res)) as { processes?: { pid: string; name: string; state: string }[] }) : {};
        return { resources: (body.processes ?? []).map((p) => ({ uri: `agentos://processes/${p.pid}`, name: p.name, description: `${p.pid} (${p.state})`, mimeType: 'application/json' })) };
      },
    }),
    { title: 'Process control block', description: "A process's PCB as JSON", mimeType: 'application/json' },
    async (uri, { pid }) => resourceJson(uri, await call('GET', `/v1/processes/${enc(String(pid))}`)),
  );

  server.registerResource(
    'process-file',
    new ResourceTemplate('agentos://processes/{pid}/fs/{+path}', { list: undefined }),
    { title: 'Process file', description: "A file (or directory listing) in a process's filesystem" },
    async (uri, { pid, path }) => resourceJson(uri, await call('GET', `/v1/processes/${enc(String(pid))}/fs/${String(path).split('/').filter(Boolean).map(enc).join('/')}`)),
  );

  return server;
}

/** Dispatch API operations in-process as the caller: same token, same client address for rate limits. */
function callerOf(app: Hono<{ Bindings: Env }>, request: Request, env: Env, ctx: Parameters<Hono['fetch']>[2]): ApiCall {
  return (method, path, init = {}) => {
    const headers = new Headers({ authorization: request.headers.get('authorization') ?? '', accept: init.accept ?? 'application/json' });
    const ip = request.headers.get('cf-connecting-ip');
    if (ip) headers.set('cf-connecting-ip', ip);
    if (init.body !== undefined) headers.set('content-type', 'application/json');
    const inner = new Request(new URL(path, request.url), { method, headers, ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}), ...(init.signal ? { signal: init.signal } : {}) });
    return Promise.resolve(app.fetch(inner, env, ctx));
  };
}

/**
 * Mount `/mcp` on the API. The bearer token is checked first (401/429 exactly as the API answers);
 * POST carries JSON-RPC; GET (a standalone stream) and DELETE (end a session) are 405: the server is
 * stateless, so there is neither a server-initiated stream nor a session to end.
 */
export function mountMcp(app: Hono<{ Bindings: Env }>): void {
  app.all('/mcp', async (c) => {
    await authenticate(c.req.raw, c.env, Date.now());
    if (c.req.method !== 'POST') {
      return Response.json({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed: this MCP server is stateless; POST JSON-RPC to /mcp' }, id: null }, { status: 405, headers: { allow: 'POST' } });
    }
    const server = buildMcpServer(callerOf(app, c.req.raw, c.env, c.executionCtx));
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, maxRequestBodySize: MAX_BODY_BYTES });
    await server.connect(transport);
    return transport.handleRequest(c.req.raw);
  });
}
