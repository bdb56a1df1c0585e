/**
 * Kernel errors: one class, a closed set of codes.
 *
 * Every failure an agent or an API client can see carries a stable code and a message a person can
 * act on. Code branches on `code` and structured `details`, never on message text. The mapping from
 * code to HTTP status lives here and nowhere else; the API's error handler is the single place a
 * KernelError becomes a response. Errors also travel as plain values (`ErrorValue`) across Durable
 * Object RPC, where custom Error properties do not survive, and into syscall results the model reads.
 */

export const ERROR_CODES = {
  EINVAL: { status: 400, summary: 'invalid argument' },
  E2BIG: { status: 413, summary: 'argument or payload too large' },
  EUNAUTH: { status: 401, summary: 'authentication required' },
  EPERM: { status: 403, summary: 'operation not permitted' },
  ENOENT: { status: 404, summary: 'no such process, file or resource' },
  ENOSYS: { status: 400, summary: 'no such syscall' },
  ESTATE: { status: 409, summary: 'illegal state transition' },
  EEXIST: { status: 409, summary: 'already exists' },
  ECHILD: { status: 409, summary: 'no child to wait for' },
  EQUOTA: { status: 429, summary: 'quota exceeded' },
  ERATE: { status: 429, summary: 'too many requests; slow down' },
  EAGAIN: { status: 503, summary: 'resource temporarily unavailable; retry' },
  ETIMEDOUT: { status: 504, summary: 'timed out' },
  EINTR: { status: 500, summary: 'interrupted; the effect may or may not have happened' },
  EIO: { status: 502, summary: 'I/O error talking to another system' },
  EFAULT: { status: 500, summary: 'internal fault' },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export const ERROR_CODE_LIST = Object.keys(ERROR_CODES) as ErrorCode[];

/** The plain-data form of an error: what crosses RPC, lands in events and reaches the model. */
export interface ErrorValue {
  readonly code: ErrorCode;
  readonly message: string;
  readonly details?: unknown;
}

export class KernelError extends Error {
  override readonly name = 'KernelError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  toValue(): ErrorValue {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }

  static fromValue(value: ErrorValue): KernelError {
    return new KernelError(value.code, value.message, value.details);
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

export function httpStatus(code: ErrorCode): number {
  return ERROR_CODES[code].status;
}

/**
 * Turn anything thrown into an ErrorValue. Unknown exceptions become EFAULT: they are bugs or
 * platform failures, and the message says so rather than pretending to know the cause.
 */
export function toErrorValue(thrown: unknown): ErrorValue {
  if (thrown instanceof KernelError) return thrown.toValue();
  const message = thrown instanceof Error ? thrown.message : String(thrown);
  // The platform refuses a call to a Durable Object with too much queued work ("overloaded"):
  // that is load, not a bug, and the caller may come back.
  if (thrown instanceof Error && (thrown as Error & { overloaded?: unknown }).overloaded === true) return { code: 'EAGAIN', message: `overloaded: ${message}`, details: { retry_after_seconds: 1 } };
  return { code: 'EFAULT', message: `internal fault: ${message}` };
}

/** Result type for RPC boundaries and kernel decisions: errors are values. */
export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: ErrorValue };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const fail = (code: ErrorCode, message: string, details?: unknown): Result<never> => ({
  ok: false,
  error: details === undefined ? { code, message } : { code, message, details },
});

/** Unwrap a Result, throwing the KernelError it carries. */
export function unwrap<T>(result: Result<T>): T {
  if (result.ok) return result.value;
  throw KernelError.fromValue(result.error);
}
