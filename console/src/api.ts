/**
 * The console's only way to the kernel: the public HTTP API with the bearer token in a header (never
 * in a URL). Errors arrive as the API's envelope `{error: {code, message, details?}}` and become an
 * ApiError with the same code, so pages branch on codes, not on message text.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

type Method = 'GET' | 'POST' | 'DELETE';

/** Call the API as `token`; resolves to the parsed JSON body of a 2xx answer. */
export async function call<T>(token: string, method: Method, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? null : JSON.stringify(body), signal: signal ?? null });
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiError(res.status, 'EINVAL', `the server answered ${res.status} with a body that is not JSON`);
  }
  if (!res.ok) {
    const err = (parsed as { error?: { code?: string; message?: string; details?: unknown } } | null)?.error;
    throw new ApiError(res.status, err?.code ?? `HTTP${res.status}`, err?.message ?? `HTTP ${res.status}`, err?.details);
  }
  return parsed as T;
}

/** Query string from the defined entries of `params`. */
export function qs(params: Record<string, string | number | undefined | null>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
}

/** A message a person can read for any thrown value. */
export const describe = (e: unknown): string => (e instanceof ApiError ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e));
