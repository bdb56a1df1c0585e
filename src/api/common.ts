/**
 * Shared pieces of the HTTP API: the error envelope (the one place an error becomes a response),
 * query-parameter helpers and the Result unwrapper.
 */
import { z } from 'zod';
import { ERROR_CODE_LIST, type ErrorValue, KernelError, type Result, httpStatus } from '../kernel/errors.ts';

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

export const intParam = (def: number, min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a non-negative integer')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
    .optional()
    .default(String(def) as never);

export const E = (description: string) => ({ description, schema: ErrorSchema });
