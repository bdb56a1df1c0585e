/**
 * MCP tools as syscalls, the pure part: the `mcp_call` arguments, and the names a model sees.
 *
 * A tool `search` of the registered server `docs` is offered to the model as `mcp__docs__search`
 * (characters a provider refuses in tool names become "_", and the name is cut to 64). A call by that
 * name is rewritten into `mcp_call {server, tool, args}` before it is journaled, with `kind` set by
 * the kernel from the tool's annotations, never by the model: a `read` or `idempotent` call
 * interrupted by a crash is sent again, a `write` is EINTR and never repeated.
 */
import { z } from 'zod';
import { MCP_SERVER_NAME, MCP_TOOL_NAME } from './capabilities.ts';

export const MCP_TOOL_PREFIX = 'mcp__';
export const MAX_MCP_TIMEOUT_SECONDS = 60;
/** Characters of a tool result the model sees; the rest is cut and reported as truncated. */
export const MCP_RESULT_CHARS = 64 * 1024;
const MAX_MODEL_TOOL_NAME = 64;

/**
 * What a tool says of itself, as the kernel acts on it: `read` (readOnlyHint) and `idempotent`
 * (idempotentHint) calls are sent again after a crash, `write` ones never; and while untrusted
 * content is in the context, every call but a `read` one needs a human's approval.
 */
export const MCP_CALL_KINDS = ['read', 'idempotent', 'write'] as const;
export type McpCallKind = (typeof MCP_CALL_KINDS)[number];

export const McpCallArgs = z
  .object({
    server: z.string().regex(MCP_SERVER_NAME, 'a registered MCP server name'),
    tool: z.string().regex(MCP_TOOL_NAME, "the tool's name on that server"),
    args: z.record(z.string(), z.unknown()).default({}).describe("arguments matching the tool's input schema"),
    timeout_seconds: z.number().positive().max(MAX_MCP_TIMEOUT_SECONDS).optional().describe(`default 30, at most ${MAX_MCP_TIMEOUT_SECONDS}`),
    kind: z.enum(MCP_CALL_KINDS).default('write').describe("set by the kernel from the tool's annotations; a value you send is replaced"),
  })
  .strict();
export type McpCall = z.infer<typeof McpCallArgs>;

/** The name a model calls a server's tool by: mcp__<server>__<tool>, safe for every provider. */
export function modelToolName(server: string, tool: string): string {
  return `${MCP_TOOL_PREFIX}${server}__${tool.replace(/[^A-Za-z0-9_-]/g, '_')}`.slice(0, MAX_MODEL_TOOL_NAME);
}

/** An MCP tool's annotations as the kind of call it is; a tool that says nothing is a write. */
export const callKind = (tool: { read_only: boolean; idempotent: boolean }): McpCallKind => (tool.read_only ? 'read' : tool.idempotent ? 'idempotent' : 'write');
