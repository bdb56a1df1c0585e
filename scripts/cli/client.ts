/**
 * The CLI's connection to a kernel: where it is and which token to show (flags, then AGENTOS_URL /
 * AGENTOS_TOKEN, then the file `agentos login` wrote, then the local `npm start` defaults), and a
 * client generated from the API's OpenAPI document (openapi-fetch over scripts/cli/api-types.ts).
 *
 * Every failure leaves as a CliError with an exit code (docs/cli.md): the API's error codes map to
 * codes a script can branch on, and the message is the kernel's own, which says what to do.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import createClient, { type Client } from 'openapi-fetch';
import type { paths } from './api-types.ts';

export const DEFAULT_URL = 'http://127.0.0.1:8787';
/** The token `npm start` gives the local kernel (scripts/dev.mjs); never valid in production. */
export const DEV_TOKEN = 'dev-admin-token';

/** Exit codes: documented in docs/cli.md. */
export const EXIT = {
  ok: 0,
  error: 1,
  usage: 2,
  unreachable: 3,
  auth: 4,
  denied: 5,
  notFound: 6,
  invalid: 7,
  conflict: 8,
  auditBroken: 9,
  retry: 10,
} as const;

const EXIT_BY_CODE: Readonly<Record<string, number>> = {
  EUNAUTH: EXIT.auth,
  ERATE: EXIT.auth,
  EPERM: EXIT.denied,
  ENOENT: EXIT.notFound,
  EINVAL: EXIT.invalid,
  E2BIG: EXIT.invalid,
  ESTATE: EXIT.conflict,
  EEXIST: EXIT.conflict,
  EAGAIN: EXIT.retry,
  ETIMEDOUT: EXIT.retry,
};

export class CliError extends Error {
  readonly exitCode: number;
  /** The kernel's error code (EUNAUTH, ENOENT …), when the kernel gave one. */
  readonly code: string | undefined;
  constructor(message: string, exitCode: number, code?: string) {
    super(message);
    this.exitCode = exitCode;
    this.code = code;
  }
}

export interface Target {
  readonly url: string;
  readonly token: string;
  /** Where the token came from, for messages: a bad token from the environment is fixed elsewhere than one from the file. */
  readonly source: 'flag' | 'env' | 'config' | 'default';
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.AGENTOS_CONFIG) return env.AGENTOS_CONFIG;
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'agentos', 'config.json');
}

function readConfig(file: string): { url?: string; token?: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      return { ...(typeof o.url === 'string' ? { url: o.url } : {}), ...(typeof o.token === 'string' ? { token: o.token } : {}) };
    }
  } catch {
    // fall through
  }
  throw new CliError(`${file} is not valid JSON; run agentos login again or delete it`, EXIT.usage);
}

/** Save a login: the file holds a secret, so it is created with mode 0600 (and made so if it existed). */
export function writeConfig(file: string, config: { url: string; token: string }): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
}

export function resolveTarget(flags: { url?: string | undefined; token?: string | undefined }, env: NodeJS.ProcessEnv = process.env): Target {
  const file = readConfig(configPath(env));
  const url = flags.url ?? env.AGENTOS_URL ?? file.url ?? DEFAULT_URL;
  if (flags.token) return { url, token: flags.token, source: 'flag' };
  if (env.AGENTOS_TOKEN) return { url, token: env.AGENTOS_TOKEN, source: 'env' };
  if (file.token) return { url, token: file.token, source: 'config' };
  return { url, token: DEV_TOKEN, source: 'default' };
}

export type Api = Client<paths>;

export function apiClient(target: Target): Api {
  return createClient<paths>({ baseUrl: target.url.replace(/\/+$/, ''), headers: { authorization: `Bearer ${target.token}` } });
}

type ErrorBody = { error?: { code?: string; message?: string } };

/** A failed request's CliError: the kernel's code and message, and what to do about a bad token. */
export function apiError(target: Target, status: number, body: unknown): CliError {
  const e = (body as ErrorBody | undefined)?.error;
  const code = e?.code ?? `HTTP ${status}`;
  let message = e?.message ?? `the kernel answered HTTP ${status}`;
  if (code === 'EUNAUTH') {
    const where = { flag: 'the --token flag', env: 'AGENTOS_TOKEN', config: configPath(), default: `the local development token (${DEV_TOKEN})` }[target.source];
    message += `. The token came from ${where}; set AGENTOS_TOKEN or run agentos login.`;
  }
  return new CliError(`${code}: ${message}`, EXIT_BY_CODE[code] ?? (status >= 500 ? EXIT.error : EXIT.invalid), code);
}

/** Unwrap an openapi-fetch answer: the data, or the kernel's error as a CliError. */
export async function call<T>(target: Target, request: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  let r: { data?: T; error?: unknown; response: Response };
  try {
    r = await request;
  } catch (e) {
    throw unreachable(target, e);
  }
  if (r.error !== undefined || !r.response.ok) throw apiError(target, r.response.status, r.error);
  return r.data as T;
}

export function unreachable(target: Target, e: unknown): CliError {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return new CliError(`cannot reach the kernel at ${target.url}: ${cause?.code ?? cause?.message ?? (e as Error).message}. Is it running (npm start)? Set AGENTOS_URL to point elsewhere.`, EXIT.unreachable);
}
