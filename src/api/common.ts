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
  return Response.json({ error }, { status: httpStatus(error.code) });
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
