/**
 * JIT tools, the pure part: names, limits and the syscall argument schemas. The compiler, the
 * isolate harness and the broker live in src/tools.
 */
import { z } from 'zod';

/** Largest tool source accepted (characters). */
export const MAX_TOOL_SOURCE = 64 * 1024;
/** Tools one process may hold. */
export const MAX_TOOLS = 64;
/** Dynamic isolates one process (Durable Object) may have in flight; further calls queue. */
export const MAX_CONCURRENT_TOOL_CALLS = 10;
/** Per-call limits: platform CPU time and subrequests, a wall-clock timeout and a memory budget. */
export const TOOL_LIMITS = { cpuMs: 1000, subRequests: 50, wallMs: 30_000, memoryBytes: 64 * 1024 * 1024 } as const;
/** Budget-hook calls (loop iterations and function entries) per CPU millisecond of the limit. */
export const TICKS_PER_CPU_MS = 20_000;

export const ToolNameSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_]{0,63}$/, 'a tool name is lower-case letters, digits and _, starting with a letter, at most 64 characters');

export const ToolRegisterArgs = z
  .object({
    name: ToolNameSchema,
    description: z.string().min(1).max(2000),
    parameters: z.record(z.string(), z.unknown()).describe('JSON Schema of the arguments: {"type": "object", "properties": {…}, "required": […]}'),
    source: z
      .string()
      .min(1)
      .max(MAX_TOOL_SOURCE)
      .describe('TypeScript: `export default async function (args, sys) { … }`; sys.fs_read/fs_write/fs_list/net_fetch reach the kernel with your capabilities'),
  })
  .strict();

export const ToolCallArgs = z
  .object({
    name: ToolNameSchema,
    args: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();
