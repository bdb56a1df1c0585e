/**
 * Shared pieces of the HTTP API: the error envelope (the one place an error becomes a response),
 * query-parameter helpers and the Result unwrapper.
 */
import { z } from 'zod';
import { SignalSchema } from '../kernel/pcb.ts';
import { ERROR_CODE_LIST, type ErrorValue, KernelError, type Result, httpStatus } from '../kernel/errors.ts';
import { PID_PATTERN } from '../kernel/pcb.ts';

export const ErrorSchema = z.object({
  error: z.object({ code: z.enum(ERROR_CODE_LIST as [string, ...string[]]), message: z.string(), details: z.unknown().optional() }),
});

export function errorResponse(error: ErrorValue): Response {
  const retryAfter = retryAfterSeconds(error);
  return Response.json({ error }, { status: httpStatus(error.code), ...(retryAfter === null ? {} : { headers: { 'retry-after': String(retryAfter) } }) });
}

/** When a refusal that asks the client to come back (EAGAIN, ERATE) says when: `Retry-After` (whole seconds). */
function retryAfterSeconds(error: ErrorValue): number | null {
  if (error.code !== 'EAGAIN' && error.code !== 'ERATE') return null;
  const d = error.details as { retry_after_seconds?: unknown; retry_after_ms?: unknown } | undefined;
  const seconds = typeof d?.retry_after_seconds === 'number' ? d.retry_after_seconds : typeof d?.retry_after_ms === 'number' ? d.retry_after_ms / 1000 : null;
  return seconds === null || !Number.isFinite(seconds) ? null : Math.max(1, Math.ceil(seconds));
}

/** How long a request waits for an object's answer before it answers 503 itself (REQUEST_DEADLINE_SECONDS). */
export const DEFAULT_REQUEST_DEADLINE_SECONDS = 30;

export function requestDeadlineMs(env: Pick<Env, 'REQUEST_DEADLINE_SECONDS'>): number {
  const s = Number(env.REQUEST_DEADLINE_SECONDS);
  return (Number.isFinite(s) && s > 0 ? s : DEFAULT_REQUEST_DEADLINE_SECONDS) * 1000;
}

/**
 * Wait for `work` at most `ms`. Past it, EAGAIN (503, Retry-After): the object or D1 behind it is
 * overloaded or stuck, and the client hears so in bounded time instead of waiting forever. The work
 * itself is not cancelled (an RPC cannot be); `details` say what the client can check afterwards.
 */
export async function withDeadline<T>(work: Promise<T>, ms: number, what: string, details: Record<string, unknown>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new KernelError('EAGAIN', `${what} did not answer within ${ms / 1000} s: the kernel is overloaded; retry later`, { ...details, deadline_ms: ms, retry_after_seconds: 5 })), ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

export function unwrap<T>(r: Result<T>): T {
  if (r.ok) return r.value;
  throw KernelError.fromValue(r.error);
}

/**
 * An integer query parameter: coerced from the query string by zod, documented as an integer (with
 * its bounds and default) so generated clients type it as a number.
 */
export const intParam = (def: number, min: number, max: number) => z.coerce.number().int().min(min).max(max).default(def);

export const E = (description: string) => ({ description, schema: ErrorSchema });

/** The body of a signal: the API's signal route and the MCP server's process_signal tool. */
export const SignalBody = z.object({ signal: SignalSchema, cascade: z.boolean().optional().describe('signal the whole process group: the process and all its descendants') }).strict();
/** A pid path parameter. Malformed pids are unknown pids: 404, like any other pid that does not exist. */
export const PidParams = z.object({ pid: z.string() });
export function pidOf(raw: string): string {
  if (!PID_PATTERN.test(raw)) throw new KernelError('ENOENT', `no process with pid "${raw.slice(0, 64)}"`, { pid: raw.slice(0, 64) });
  return raw;
}
