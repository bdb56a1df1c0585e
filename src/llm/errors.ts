/**
 * Provider failures, classified by what the kernel should do about them:
 *
 *  - `retryable`  (429, 408, 409, 5xx, connection errors, timeouts): park the process and try again
 *                 later, at the provider's `retry-after` if it gave one, else with exponential backoff.
 *  - `context`    (the prompt is longer than the model's window): shrink the context once, retry.
 *  - `fatal`      (401/403 bad key, 400 invalid request, 404 unknown model): retrying cannot help; the
 *                 process ends with a code that says why.
 *
 * Retries are the kernel's job, not the SDK's: the SDKs are built with `maxRetries: 0`, so a wait
 * for a rate limit is a durable alarm (it survives eviction, and tests drive it) rather than a timer
 * inside a request that an eviction would lose.
 */
import type { ErrorCode } from '../kernel/errors.ts';

export type LlmErrorKind = 'retryable' | 'context' | 'fatal';

export class LlmError extends Error {
  override readonly name = 'LlmError';
  constructor(
    readonly kind: LlmErrorKind,
    readonly code: ErrorCode,
    message: string,
    readonly status: number | null = null,
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
  }
}

/** Parse `retry-after-ms` or `retry-after` (seconds or an HTTP date) into milliseconds. */
export function retryAfterMs(headers: Headers | undefined, now: number): number | null {
  if (!headers) return null;
  const ms = Number(headers.get('retry-after-ms'));
  if (headers.get('retry-after-ms') !== null && Number.isFinite(ms) && ms >= 0) return ms;
  const raw = headers.get('retry-after');
  if (raw === null) return null;
  const seconds = Number(raw);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(raw);
  return Number.isFinite(date) ? Math.max(0, date - now) : null;
}

const CONTEXT_PATTERNS = [/context[_ ]length/i, /prompt is too long/i, /maximum context/i, /too many tokens/i, /context window/i];

/** Classify an HTTP failure from any provider. */
export function classifyHttp(provider: string, status: number | undefined, message: string, headers: Headers | undefined, now: number): LlmError {
  const text = `${provider}: ${message}`;
  if (status === undefined) return new LlmError('retryable', 'EIO', `${text} (connection failed)`);
  if ((status === 400 || status === 413 || status === 422) && CONTEXT_PATTERNS.some((p) => p.test(message))) {
    return new LlmError('context', 'E2BIG', text, status);
  }
  if (status === 429 || status === 408 || status === 409 || status >= 500) {
    return new LlmError('retryable', status === 429 ? 'EAGAIN' : 'EIO', text, status, retryAfterMs(headers, now));
  }
  if (status === 401 || status === 403) return new LlmError('fatal', 'EPERM', `${text} (check the API key)`, status);
  return new LlmError('fatal', 'EINVAL', text, status);
}
