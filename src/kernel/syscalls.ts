/**
 * The syscall ABI: each syscall is one zod schema with a description. That one schema validates
 * the arguments the model sends, produces the JSON Schema the model sees as a tool, and documents
 * the call. Handlers live on the runtime side (src/process/handlers.ts) and are typed from this table,
 * so a syscall cannot exist without both.
 *
 * `replay` says what the write-ahead journal may do with a call that was started but whose
 * completion was never recorded (the object died mid-call):
 *   - `atomic`: its effect and its journal record commit in one storage transaction, so it is
 *     either fully done or not started; it is simply run again.
 *   - `idempotent`: it reaches other objects, but with a key derived from the journal entry, so
 *     running it again has the same effect as running it once.
 *   - `unsafe`: it reaches the outside world with no idempotency key; it is never re-run, and the
 *     model gets EINTR ("may or may not have happened") instead.
 */
import { z } from 'zod';
import { type ErrorValue, type Result, fail, ok } from './errors.ts';
import { IPC_SYSCALLS } from './ipc-syscalls.ts';
import { PidSchema, PrioritySchema, SignalSchema } from './pcb.ts';
import { FilterSchema, MAX_TEXT_BYTES, MAX_TOP_K, MetadataSchema, NamespaceSchema } from './memory.ts';
import { type ReplayClass, type SyscallSpec, spec } from './syscall-spec.ts';
import { McpCallArgs } from './mcp.ts';
import { ToolCallArgs, ToolRegisterArgs } from './tools.ts';

export type { ReplayClass, SyscallSpec };


const MAX_SLEEP_SECONDS = 366 * 24 * 3600;
export const MAX_FILE_BYTES = 16 * 1024 * 1024;
export const MAX_FETCH_BYTES = 5 * 1024 * 1024;
export const MAX_FETCH_TIMEOUT_SECONDS = 60;

const name = z.string().min(1).max(128);
const path = z.string().min(1).max(1024).describe('a path in the process filesystem, e.g. "notes/todo.md"');

export const SYSCALLS = {
  exit: spec({
    name: 'exit',
    description: 'End this process. code 0 means success. result is returned to whoever waits on this process.',
    args: z.object({ code: z.number().int().min(0).max(255).default(0), result: z.unknown().optional() }).strict(),
    replay: 'atomic',
  }),
  sleep: spec({
    name: 'sleep',
    description: 'Sleep for a number of seconds; the process wakes by itself afterwards and continues.',
    args: z.object({ seconds: z.number().positive().max(MAX_SLEEP_SECONDS) }).strict(),
    replay: 'atomic',
  }),
  yield: spec({
    name: 'yield',
    description: 'Give up the rest of this time slice; the process runs again soon.',
    args: z.object({}).strict(),
    replay: 'atomic',
  }),
  spawn: spec({
    name: 'spawn',
    description: 'Start a child process that works on task. Returns its pid; use wait to collect its result.',
    args: z
      .object({
        name,
        task: z.string().min(1).max(64 * 1024),
        image: z.string().min(1).max(64).optional(),
        priority: PrioritySchema.optional(),
        capabilities: z
          .array(z.string().min(3).max(512))
          .max(64)
          .optional()
          .describe('capabilities for the child, each covered by one of yours; default: what you hold of what its image declares'),
      })
      .strict(),
    replay: 'idempotent',
  }),
  wait: spec({
    name: 'wait',
    description: 'Wait until a child (the given pid, or any child) exits and return its exit status.',
    args: z
      .object({
        pid: PidSchema.optional(),
        timeout_seconds: z.number().positive().max(MAX_SLEEP_SECONDS).optional(),
      })
      .strict(),
    replay: 'atomic',
  }),
  kill: spec({
    name: 'kill',
    description: 'Send a signal (SIGTERM, SIGKILL, SIGSTOP, SIGCONT) to one of your children; with cascade: true, to its whole process group (it and all its descendants).',
    args: z.object({ pid: PidSchema, signal: SignalSchema, cascade: z.boolean().optional() }).strict(),
    replay: 'idempotent',
  }),
  request_capability: spec({
    name: 'request_capability',
    description: 'Ask a human operator for a capability you lack (e.g. "net:api.github.com:GET"). You wait until they decide.',
    args: z.object({ capability: z.string().min(3).max(512), reason: z.string().min(1).max(2000) }).strict(),
    replay: 'atomic',
  }),
  page_in: spec({
    name: 'page_in',
    description: 'Bring paged-out parts of your context back: by a search query (words you remember), or by step number from a "paged out" notice. Their content comes back as a copy after this call\'s result.',
    args: z
      .object({
        query: z.string().min(1).max(2000).optional(),
        step: z.number().int().min(1).optional(),
        limit: z.number().int().min(1).max(10).optional().describe('steps to bring back at most (default 3)'),
      })
      .strict()
      .refine((a) => (a.query === undefined) !== (a.step === undefined), 'give exactly one of query or step'),
    replay: 'atomic',
  }),
  pin: spec({
    name: 'pin',
    description: 'Keep a step (its answer and results) in your context: it is never paged out until unpinned.',
    args: z.object({ step: z.number().int().min(1) }).strict(),
    replay: 'atomic',
  }),
  unpin: spec({
    name: 'unpin',
    description: 'Let a pinned step be paged out again when space is needed.',
    args: z.object({ step: z.number().int().min(1) }).strict(),
    replay: 'atomic',
  }),
  fs_read: spec({
    name: 'fs_read',
    description: 'Read a text file from this process filesystem.',
    args: z
      .object({
        path,
        offset: z.number().int().min(0).optional().describe('byte offset to start at'),
        length: z.number().int().min(1).max(MAX_FILE_BYTES).optional().describe('bytes to read at most'),
      })
      .strict(),
    replay: 'atomic',
  }),
  fs_write: spec({
    name: 'fs_write',
    description: 'Write (or with append: true, append to) a text file in this process filesystem.',
    args: z.object({ path, content: z.string(), append: z.boolean().optional() }).strict(),
    replay: 'atomic',
  }),
  fs_list: spec({
    name: 'fs_list',
    description: 'List the files and directories directly under a directory ("/" for the root).',
    args: z.object({ path: z.string().max(1024).default('/') }).strict(),
    replay: 'atomic',
  }),
  net_fetch: spec({
    name: 'net_fetch',
    description:
      'Fetch an http(s) URL. The body is returned as text, truncated for the context (the full body, up to 5 MB, can be saved to a file with save_to).',
    args: z
      .object({
        url: z
          .string()
          .url()
          .max(8192)
          .refine((u) => /^https?:\/\//i.test(u), 'only http and https URLs can be fetched'),
        method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']).default('GET'),
        headers: z.record(z.string().max(256), z.string().max(8192)).optional(),
        body: z.string().max(MAX_FETCH_BYTES).optional(),
        timeout_seconds: z.number().positive().max(MAX_FETCH_TIMEOUT_SECONDS).optional(),
        save_to: path.optional(),
      })
      .strict(),
    // GET, HEAD and OPTIONS are safe to issue twice; anything else might not be.
    replay: (a) => (a.method === 'GET' || a.method === 'HEAD' || a.method === 'OPTIONS' ? 'idempotent' : 'unsafe'),
  }),
  ...IPC_SYSCALLS,
  // Checkpoints (docs/checkpoints.md). A checkpoint is taken at a step boundary: the one after this step.
  checkpoint: spec({
    name: 'checkpoint',
    description: 'Save a checkpoint of yourself, taken when this step ends (your time slice ends with it). Name it with label to fork from it later.',
    args: z.object({ label: z.string().min(1).max(200).optional() }).strict(),
    replay: 'atomic',
  }),
  fork: spec({
    name: 'fork',
    description: 'Start a child process that is a copy of you at one of your checkpoints (by id or label; default: the newest), optionally with a different task. Returns its pid; use wait to collect its result.',
    args: z.object({ checkpoint: z.string().min(1).max(200).optional(), task: z.string().min(1).max(8 * 1024).optional().describe('a different task for the fork (at most 8 KiB)') }).strict(),
    replay: 'idempotent',
  }),
  // Long-term memory (src/kernel/memory.ts, src/memory). The id of a write is derived from the journal
  // entry, so a write run again after a crash overwrites itself: all three are idempotent.
  mem_write: spec({
    name: 'mem_write',
    description:
      'Store a piece of text in long-term memory, searchable by meaning later (also after this context is gone). Returns its id. One fact or result per memory; at most 8 KiB.',
    args: z
      .object({
        text: z.string().min(1).max(MAX_TEXT_BYTES),
        metadata: MetadataSchema.optional(),
        namespace: NamespaceSchema.optional(),
      })
      .strict(),
    replay: 'idempotent',
  }),
  mem_search: spec({
    name: 'mem_search',
    description: 'Search long-term memory by meaning. Returns the closest memories, best first, with a similarity score (1 = identical).',
    args: z
      .object({
        query: z.string().min(1).max(2000),
        top_k: z.number().int().min(1).max(MAX_TOP_K).optional().describe(`how many results at most (default 5, max ${MAX_TOP_K})`),
        filter: FilterSchema.optional(),
        namespace: NamespaceSchema.optional(),
      })
      .strict(),
    replay: 'idempotent',
  }),
  mem_delete: spec({
    name: 'mem_delete',
    description: 'Delete a memory by the id mem_write returned (in the namespace it was written to).',
    args: z
      .object({
        id: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'a memory id, as mem_write or mem_search returned it'),
        namespace: NamespaceSchema.optional(),
      })
      .strict(),
    replay: 'idempotent',
  }),
  tool_register: spec({
    name: 'tool_register',
    description:
      'Register a tool written in TypeScript. It is compiled and stored; from your next step it is in your tool list and can be called by name (or with tool_call). It runs sandboxed with your capabilities.',
    args: ToolRegisterArgs,
    // Compiling and storing commit with the journal entry.
    replay: 'atomic',
  }),
  tool_call: spec({
    name: 'tool_call',
    description: 'Call a registered tool by name with arguments matching its parameters schema.',
    args: ToolCallArgs,
    // A tool may write files and reach the network through the broker: never run twice.
    replay: 'unsafe',
  }),
  mcp_call: spec({
    name: 'mcp_call',
    description: 'Call a tool of a registered MCP server (needs mcp:<server>:<tool>). The tools you may use are also listed by name as mcp__<server>__<tool>; calling one of those is the same.',
    args: McpCallArgs,
    // The kernel sets kind from the tool's readOnlyHint/idempotentHint (src/kernel/mcp.ts).
    replay: (a) => (a.kind === 'write' ? 'unsafe' : 'idempotent'),
  }),
} as const;

export type SyscallName = keyof typeof SYSCALLS;
export type SyscallArgs<N extends SyscallName> = z.infer<(typeof SYSCALLS)[N]['args']>;
export const SYSCALL_NAMES = Object.keys(SYSCALLS) as SyscallName[];

export function isSyscallName(value: string): value is SyscallName {
  return Object.hasOwn(SYSCALLS, value);
}

/** A syscall as requested by the model, before validation. `id` ties a native tool call to its result. */
export interface RawCall {
  readonly id: string;
  readonly name: string;
  /** Parsed JSON arguments, or the raw string when the model sent JSON that does not parse. */
  readonly args: unknown;
}

/** A validated syscall, ready to dispatch. */
export interface ValidCall<N extends SyscallName = SyscallName> {
  readonly id: string;
  readonly name: N;
  readonly args: SyscallArgs<N>;
}

/** Validate a raw call against the table: ENOSYS for unknown names, EINVAL with zod's issues for bad args. */
export function validateCall(raw: RawCall): Result<ValidCall> {
  if (!isSyscallName(raw.name)) {
    return fail('ENOSYS', `no syscall named "${raw.name}"; available: ${SYSCALL_NAMES.join(', ')}`, {
      name: raw.name,
    });
  }
  if (typeof raw.args === 'string') {
    return fail('EINVAL', `arguments for ${raw.name} are not valid JSON`, { raw: raw.args.slice(0, 500) });
  }
  const parsed = SYSCALLS[raw.name].args.safeParse(raw.args ?? {});
  if (!parsed.success) {
    return fail('EINVAL', `invalid arguments for ${raw.name}: ${z.prettifyError(parsed.error)}`, {
      issues: parsed.error.issues.map((i) => ({ path: i.path.map(String), message: i.message, code: i.code })),
    });
  }
  return ok({ id: raw.id, name: raw.name, args: parsed.data } as ValidCall);
}

export function replayClass(call: ValidCall): ReplayClass {
  const r = SYSCALLS[call.name].replay as SyscallSpec['replay'];
  return typeof r === 'function' ? r(call.args) : r;
}

/** A tool definition in the provider-neutral form adapters translate to their wire format. */
export interface ToolSpec {
  readonly name: string;
  readonly description: string;
  readonly parameters: Record<string, unknown>;
}

let toolSpecCache: readonly ToolSpec[] | undefined;

/** The syscall table as tools, in a stable order (stable bytes keep provider prompt caches warm). */
export function syscallTools(): readonly ToolSpec[] {
  toolSpecCache ??= SYSCALL_NAMES.map((n) => {
    const s = SYSCALLS[n];
    const schema = z.toJSONSchema(s.args, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
    delete schema.$schema;
    return { name: s.name, description: s.description, parameters: schema };
  });
  return toolSpecCache;
}

/** What a dispatched syscall produced, as the model and the event log see it. */
export type SyscallResult = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: ErrorValue };
