/**
 * What every command gets: the kernel (target and generated client), whether to print JSON, and a
 * pager that follows `next_cursor` the way every list of the API pages (src/api/paging.ts).
 */
import type { Command } from 'commander';
import { type Api, CliError, EXIT, type Target, apiClient, resolveTarget } from './client.ts';

export interface Ctx {
  readonly target: Target;
  readonly api: Api;
  readonly json: boolean;
}

export function ctxOf(cmd: Command): Ctx {
  const o = cmd.optsWithGlobals<{ url?: string; token?: string; json?: boolean }>();
  const target = resolveTarget({ url: o.url, token: o.token });
  return { target, api: apiClient(target), json: o.json === true };
}

/** Follow next_cursor from `first` until the end or `max` rows. */
export async function collect<T>(page: (cursor: string | undefined) => Promise<{ rows: T[]; next_cursor: string | null }>, max: number): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | undefined;
  for (;;) {
    const p = await page(cursor);
    out.push(...p.rows);
    if (p.next_cursor === null || out.length >= max) return out.slice(0, max);
    cursor = p.next_cursor;
  }
}

/** A positive integer option. */
export function int(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new CliError(`${name} must be a non-negative integer, not "${v}"`, EXIT.usage);
    return n;
  };
}

const PID = /^p[0-9a-z]{20}$/;
/** Pids are checked before a request, so a typo is a usage error, not a 404 from the kernel. */
export function pid(v: string): string {
  if (!PID.test(v)) throw new CliError(`"${v}" is not a pid (p followed by 20 lowercase letters or digits)`, EXIT.usage);
  return v;
}

/** --model: "provider:model" as a model reference, else a model name of the default provider. */
export function modelOf(v: string): string | { provider: string; model: string } {
  const i = v.indexOf(':');
  return i > 0 ? { provider: v.slice(0, i), model: v.slice(i + 1) } : v;
}

/** --cap values: a grant string ("fs:/**:rw") or a grant as JSON ({"cap": …, "effect": "ask"}). */
export function grantsOf(values: readonly string[]): unknown[] {
  return values.map((g) => {
    if (!g.trim().startsWith('{')) return g;
    try {
      return JSON.parse(g) as unknown;
    } catch {
      throw new CliError(`--cap ${g}: not valid JSON; a grant is "fs:/**:rw" or {"cap": …, "effect": "ask"}`, EXIT.usage);
    }
  });
}
