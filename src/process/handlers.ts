/**
 * Syscall handlers: one per entry of the ABI table (src/kernel/syscalls.ts), checked by the type
 * system. A handler never changes the process's lifecycle state itself; it returns a directive
 * (a result, or sleep / block / exit / yield) and the step engine applies it, so every state change
 * goes through the pure transition function in one place.
 *
 * Handlers run after the dispatcher has validated arguments and written the journal entry.
 * `atomic` handlers do their storage writes synchronously and the engine commits them in the same
 * transaction as the journal's `done` mark; the others are written to be safe to run again.
 */
import { parseCapability } from '../kernel/capabilities.ts';
import { KernelError } from '../kernel/errors.ts';
import { normalizePath } from '../kernel/paths.ts';
import { MAX_FETCH_BYTES, type SyscallArgs, type SyscallName } from '../kernel/syscalls.ts';
import { MCP_HANDLERS } from '../mcp/handlers.ts';
import { TOOL_HANDLERS } from '../tools/handlers.ts';
import { IPC_HANDLERS } from './ipc-handlers.ts';
import { MEMORY_HANDLERS } from './memory-handlers.ts';
import type { Directive, Handlers } from './syscall-context.ts';


/** Bytes of a fetched body the model sees in its context; the rest is only in save_to. */
export const FETCH_CONTEXT_CHARS = 64 * 1024;
/** Characters fs_read returns at most in one call; read on with offset. */
export const READ_CHUNK_CHARS = 256 * 1024;

function path(input: string): string {
  const r = normalizePath(input);
  if (!r.ok) throw KernelError.fromValue(r.error);
  return r.value;
}

const result = (value: unknown, commit?: () => void): Directive => (commit ? { kind: 'result', value, commit } : { kind: 'result', value });

/** Read at most `limit` bytes of a body; anything beyond is discarded and reported as truncated. */
async function readCapped(body: ReadableStream<Uint8Array> | null, limit: number): Promise<{ bytes: Uint8Array; truncated: boolean }> {
  if (!body) return { bytes: new Uint8Array(0), truncated: false };
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (size + value.byteLength > limit) {
      parts.push(value.subarray(0, limit - size));
      size = limit;
      truncated = true;
      await reader.cancel();
      break;
    }
    parts.push(value);
    size += value.byteLength;
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.byteLength;
  }
  return { bytes, truncated };
}

export const HANDLERS: Handlers = {
  ...TOOL_HANDLERS,
  ...MCP_HANDLERS,
  exit: (args) => ({ kind: 'exit', status: { code: args.code, reason: 'exited', ...(args.result === undefined ? {} : { result: args.result }) } }),

  sleep: (args, ctx) => ({ kind: 'sleep', until: ctx.now + Math.round(args.seconds * 1000) }),

  yield: () => ({ kind: 'yield' }),

  spawn: async (args, ctx) => result(await ctx.spawnChild(args, ctx.callKey)),

  wait: (args, ctx) => {
    const children = ctx.store.children.all().filter((c) => c.status !== 'reaped');
    if (args.pid !== undefined) {
      const child = ctx.store.children.get(args.pid);
      if (!child) throw new KernelError('ECHILD', `process ${args.pid} is not a child of this process`, { pid: args.pid });
      if (child.status === 'reaped') throw new KernelError('ECHILD', `child ${args.pid} was already waited for`, { pid: args.pid });
    } else if (children.length === 0) {
      throw new KernelError('ECHILD', 'this process has no children to wait for');
    }
    const exited = children.find((c) => c.status === 'exited' && (args.pid === undefined || c.pid === args.pid));
    if (exited) {
      // The engine reaps it (marks it and tells the child) in the journal's transaction.
      return { kind: 'result', value: { pid: exited.pid, exit: JSON.parse(exited.exit ?? 'null') as unknown } };
    }
    const deadline = args.timeout_seconds === undefined ? null : ctx.now + Math.round(args.timeout_seconds * 1000);
    return { kind: 'block', wait: { reason: 'child', pid: args.pid ?? null, deadline }, deadline };
  },

  kill: async (args, ctx) => {
    const child = ctx.store.children.get(args.pid);
    if (!child) throw new KernelError('EPERM', `process ${args.pid} is not a child of this process; only children can be signalled`, { pid: args.pid });
    return result(await ctx.signalChild(args.pid, args.signal, args.cascade ?? false));
  },

  request_capability: (args) => {
    const cap = parseCapability(args.capability);
    if (!cap.ok) throw KernelError.fromValue(cap.error);
    return { kind: 'ask', needed: args.capability, reason: args.reason };
  },

  page_in: async (args, ctx) => {
    let steps: number[];
    if (args.step !== undefined) {
      const state = ctx.stepState(args.step);
      if (state === 'unknown') throw new KernelError('ENOENT', `there is no step ${args.step} in this process's context`, { step: args.step });
      // Already in the prompt (in place, or as an earlier recall): nothing to fault in.
      if (state !== 'swapped') return result({ recalled_steps: [], already_in_context: [args.step] });
      steps = [args.step];
    } else {
      steps = await ctx.findSwapped(args.query ?? '', args.limit ?? 3);
      if (steps.length === 0) throw new KernelError('ENOENT', `no paged-out step matches "${(args.query ?? '').slice(0, 80)}"`);
    }
    // The steps' content comes back after this step's results, so the prompt before it stays as it was.
    return result({ recalled_steps: steps }, () => void ctx.recall(steps));
  },

  pin: (args, ctx) => {
    if (!ctx.knownSteps().has(args.step)) throw new KernelError('ENOENT', `there is no step ${args.step} in this process's context`, { step: args.step });
    return result({ pinned_step: args.step }, () => {
      ctx.store.pages.setPinned(args.step, true);
      ctx.store.pages.setResident([args.step], true, ctx.now);
    });
  },

  unpin: (args, ctx) => {
    if (!ctx.knownSteps().has(args.step)) throw new KernelError('ENOENT', `there is no step ${args.step} in this process's context`, { step: args.step });
    return result({ unpinned_step: args.step }, () => void ctx.store.pages.setPinned(args.step, false));
  },

  fs_read: (args, ctx) => {
    const p = path(args.path);
    const content = ctx.fs.read(p);
    const offset = args.offset ?? 0;
    const length = Math.min(args.length ?? READ_CHUNK_CHARS, READ_CHUNK_CHARS);
    const slice = content.slice(offset, offset + length);
    const end = offset + slice.length;
    return result({ path: p, content: slice, size: content.length, ...(end < content.length ? { truncated: true, next_offset: end } : {}) });
  },

  fs_write: (args, ctx) => {
    const p = path(args.path);
    // The write itself runs in the journal's transaction; if it throws (E2BIG, EQUOTA …) nothing is written.
    return result({ path: p, bytes_written: new TextEncoder().encode(args.content).byteLength }, () => {
      ctx.fs.write(p, args.content, args.append ?? false, ctx.now);
    });
  },

  fs_list: (args, ctx) => {
    const p = path(args.path);
    return result({ path: p, entries: ctx.fs.list(p) });
  },

  net_fetch: async (args, ctx) => {
    let url = new URL(args.url);
    let redirectNote: string | null = null;
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new KernelError('EINVAL', `only http and https URLs can be fetched, not ${url.protocol}`, { url: args.url });
    }
    const savePath = args.save_to === undefined ? undefined : path(args.save_to);
    const timeoutMs = Math.round((args.timeout_seconds ?? 30) * 1000);
    let response: Response;
    try {
      const init: RequestInit = { method: args.method, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) };
      if (args.headers) init.headers = args.headers;
      if (args.body !== undefined && args.method !== 'GET' && args.method !== 'HEAD') init.body = args.body;
      response = await ctx.fetch(new Request(url, init));
      // Redirects are followed by hand: each hop is a new request that must be allowed on its own.
      for (let hop = 0; hop < 5 && response.status >= 300 && response.status < 400 && response.headers.has('location'); hop++) {
        const next = new URL(response.headers.get('location') ?? '', url);
        const why = ctx.mayFetch(next.href, 'GET');
        if (why !== null) {
          redirectNote = `redirect to ${next.href} not followed: ${why}`;
          break;
        }
        url = next;
        response = await ctx.fetch(new Request(url, { method: 'GET', redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) }));
      }
    } catch (e) {
      const name = (e as Error).name;
      if (name === 'TimeoutError' || name === 'AbortError') throw new KernelError('ETIMEDOUT', `no response from ${url.host} within ${timeoutMs} ms`, { url: args.url });
      throw new KernelError('EIO', `fetching ${url.host} failed: ${(e as Error).message}`, { url: args.url });
    }
    const { bytes, truncated } = await readCapped(response.body, MAX_FETCH_BYTES);
    const text = new TextDecoder().decode(bytes);
    const headers: Record<string, string> = {};
    for (const [k, v] of response.headers) headers[k] = v;
    const visible = text.length > FETCH_CONTEXT_CHARS ? text.slice(0, FETCH_CONTEXT_CHARS) : text;
    const value = {
      status: response.status,
      headers,
      body: visible,
      bytes: bytes.byteLength,
      truncated: truncated || visible.length < text.length,
      ...(truncated ? { note: `body exceeded ${MAX_FETCH_BYTES} bytes and was cut` } : {}),
      ...(savePath ? { saved_to: savePath } : {}),
      ...(redirectNote ? { redirect: redirectNote } : {}),
      ...(url.href !== new URL(args.url).href ? { final_url: url.href } : {}),
    };
    return result(value, savePath ? () => void ctx.fs.write(savePath, text, false, ctx.now) : undefined);
  },

  ...IPC_HANDLERS,
  checkpoint: (args, ctx) => {
    const calls = ctx.checkpoints;
    if (!calls) throw new KernelError('ENOSYS', 'checkpoints are not configured in this deployment (no CHECKPOINTS bucket)');
    calls.request(args.label ?? null);
    // The step ends here, so the checkpoint is taken at its boundary (and holds this result).
    return { kind: 'yield', value: { scheduled: true, label: args.label ?? null, taken: 'when this step ends' } };
  },
  fork: async (args, ctx) => {
    const calls = ctx.checkpoints;
    if (!calls) throw new KernelError('ENOSYS', 'checkpoints are not configured in this deployment (no CHECKPOINTS bucket)');
    // fork is high-risk: from a tainted context it needs approval first (src/kernel/policy.ts).
    return result(await calls.fork(args.checkpoint ?? null, args.task ?? null, ctx.callKey));
  },
  ...MEMORY_HANDLERS,
};
