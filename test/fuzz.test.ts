/**
 * The fuzz battery: requests and syscall arguments generated from the same zod schemas that
 * validate them (test/support/fuzz.ts), plus malformed JSON, declared non-JSON content types, huge
 * numbers, NUL bytes and deep nesting. Every input the schema rejects must come back as a typed
 * 4xx (EINVAL or E2BIG for a body, EINVAL for a syscall), never a 5xx, and change nothing: the D1
 * tables and the target process's storage hash the same before and after.
 */
import { SELF, env, runInDurableObject } from 'cloudflare:test';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { apiRoutes } from '../src/api/app.ts';
import { ERROR_CODE_LIST } from '../src/kernel/errors.ts';
import { SYSCALLS, type SyscallName, validateCall } from '../src/kernel/syscalls.ts';
import { deepJson, invalidFor, jsonSchemaOf, malformedJson, oddValue, validFor } from './support/fuzz.ts';
import { ADMIN, api, type Ev, pcbOf, runUntil, spawn, stubOf } from './support/helpers.ts';

const scripted = { provider: 'scripted', model: 'scripted' };
/** Fixed seeds: a failure reproduces, and CI runs the same inputs every time. */
const SEED = 20261201;
const BATCH = 100;

const sha256 = async (value: unknown) => {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  return [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))].map((b) => b.toString(16).padStart(2, '0')).join('');
};

/** Every row of every D1 table (the process table, audit, tokens, hooks, …). */
async function d1Digest(): Promise<string> {
  const tables = await env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'd1_%' ORDER BY name").all<{ name: string }>();
  const dump: Record<string, unknown[]> = {};
  for (const { name } of tables.results) dump[name] = (await env.DB.prepare(`SELECT * FROM "${name}"`).all()).results;
  return sha256(dump);
}

/** Every row of every table in a process's own SQLite, and its alarm. */
async function storageDigest(pid: string): Promise<string> {
  return runInDurableObject(stubOf(pid), async (_instance, state) => {
    const sql = state.storage.sql;
    const names = sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' ORDER BY name").toArray().map((r) => r.name);
    const dump: Record<string, unknown> = { alarm: await state.storage.getAlarm() };
    for (const name of names) dump[name] = sql.exec(`SELECT * FROM "${name}"`).toArray();
    return sha256(dump);
  });
}

/** A process's whole event log, page by page (a page may hold fewer than its limit). */
async function allEvents(pid: string): Promise<Ev[]> {
  const out: Ev[] = [];
  for (let cursor: string | null = null; ; ) {
    const page: { body: { events: Ev[]; next_cursor: string | null } } = await api('GET', `/v1/processes/${pid}/events?limit=1000${cursor ? `&cursor=${cursor}` : ''}`);
    out.push(...page.body.events);
    cursor = page.body.next_cursor;
    if (!cursor) return out;
  }
}

type Sent = { label: string; status: number; code: string | undefined };

async function send(method: string, path: string, body: string, contentType: string | null): Promise<Sent> {
  const headers: Record<string, string> = { ...ADMIN };
  if (contentType !== null) headers['content-type'] = contentType;
  const res = await SELF.fetch(`http://agentos.test${path}`, { method: method.toUpperCase(), headers, body });
  const text = await res.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
  } catch {
    code = undefined;
  }
  return { label: `${method} ${path} ${contentType ?? '-'} ${body.slice(0, 120)}`, status: res.status, code };
}

async function inBatches<T, R>(items: readonly T[], run: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += BATCH) out.push(...(await Promise.all(items.slice(i, i + BATCH).map(run))));
  return out;
}

/** Does the schema reject what this JSON text parses to? (Text that does not parse is rejected.) */
function rejects(schema: z.ZodType, text: string): boolean {
  try {
    return !schema.safeParse(JSON.parse(text)).success;
  } catch {
    return true;
  }
}

function concretePath(path: string, pid: string): string {
  return path
    .replace(':pid', pid)
    .replace(/:image\b/, 'default')
    .replace(/:([A-Za-z_]+)/g, 'fuzz')
    .replace(/\/\*$/, '/fuzz.txt');
}

function expectTyped(results: readonly Sent[], allowed: readonly string[]) {
  const bad = results.filter((r) => r.status < 400 || r.status >= 500 || !r.code || !allowed.includes(r.code));
  expect(bad.slice(0, 5), `${bad.length} of ${results.length} not a typed 4xx`).toEqual([]);
}

describe('fuzzing the API from its schemas', () => {
  const routes = apiRoutes().filter((r) => r.body !== undefined);

  it('covers every route that takes a body', () => {
    expect(routes.length).toBeGreaterThanOrEqual(10);
  });

  it('answers 10,000 schema-violating bodies with a typed 4xx and changes nothing', async () => {
    const target = await spawn({ name: 'target', task: 't', model: scripted, script: [{ tool_calls: [{ name: 'sleep', args: { seconds: 3600 } }] }] });
    await runUntil(target.pid, ['sleeping']);
    const before = { d1: await d1Digest(), storage: await storageDigest(target.pid), pcb: await pcbOf(target.pid) };

    const perRoute = Math.ceil(10_000 / routes.length);
    const requests: { method: string; path: string; body: string; type: string | null }[] = [];
    routes.forEach((route, i) => {
      const schema = route.body as z.ZodType;
      const js = jsonSchemaOf(schema);
      const path = concretePath(route.path, target.pid);
      const bodies = fc.sample(invalidFor(js), { numRuns: perRoute * 2, seed: SEED + i }).map((v) => JSON.stringify(v) ?? 'null');
      const kept = bodies.filter((b) => rejects(schema, b)).slice(0, perRoute);
      for (const body of kept) requests.push({ method: route.method, path, body, type: 'application/json' });
    });
    expect(requests.length).toBeGreaterThanOrEqual(10_000);
    const results = await inBatches(requests, (r) => send(r.method, r.path, r.body, r.type));
    expectTyped(results, ['EINVAL', 'E2BIG']);

    expect(await d1Digest()).toBe(before.d1);
    expect(await storageDigest(target.pid)).toBe(before.storage);
    expect(await pcbOf(target.pid)).toEqual(before.pcb);
  }, 600_000);

  it('answers malformed JSON, non-JSON content types, huge numbers, NUL bytes and deep nesting with a typed 4xx', async () => {
    const target = await spawn({ name: 'target', task: 't', model: scripted, script: [{ tool_calls: [{ name: 'sleep', args: { seconds: 3600 } }] }] });
    await runUntil(target.pid, ['sleeping']);
    const before = { d1: await d1Digest(), storage: await storageDigest(target.pid) };
    const requests: { method: string; path: string; body: string; type: string | null }[] = [];
    routes.forEach((route, i) => {
      const schema = route.body as z.ZodType;
      const path = concretePath(route.path, target.pid);
      const add = (body: string, type: string | null = 'application/json') => requests.push({ method: route.method, path, body, type });
      for (const text of fc.sample(malformedJson, { numRuns: 30, seed: SEED + 100 + i })) add(text);
      // A well-formed body declared as something else is refused, whatever it says.
      const valid = fc.sample(validFor(jsonSchemaOf(schema)), { numRuns: 5, seed: SEED + 200 + i }).map((v) => JSON.stringify(v));
      for (const [j, type] of ['application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'image/png', 'application/xml', 'text/html'].entries()) add(valid[j % valid.length] ?? '{}', type);
      for (const text of ['1e999', '{"a":1e999}', '[123456789012345678901234567890]', `{"${'\u0000'}":0}`, '{"a":"\u0000"}', '"\u0000"', deepJson(100_000), deepJson(100_000, '{"a":', '}').replace(/\{"a":\}/, '{}'), `{"x":${deepJson(50_000)}}`]) {
        if (rejects(schema, text)) add(text);
      }
      for (const value of fc.sample(oddValue, { numRuns: 20, seed: SEED + 300 + i })) {
        const text = JSON.stringify(value) ?? 'null';
        if (rejects(schema, text)) add(text);
      }
    });
    const results = await inBatches(requests, (r) => send(r.method, r.path, r.body, r.type));
    expectTyped(results, ['EINVAL', 'E2BIG']);
    expect(await d1Digest()).toBe(before.d1);
    expect(await storageDigest(target.pid)).toBe(before.storage);
  }, 600_000);

  it('accepts or refuses, but never fails on, deep nesting and huge numbers where a schema takes any JSON', async () => {
    const target = await spawn({ name: 'target', task: 't', model: scripted, script: [{ tool_calls: [{ name: 'recv', args: {} }] }] });
    for (const inner of [deepJson(100_000), deepJson(10_000, '{"a":', '}').replace(/\{"a":\}/, '{}'), '1e999', '-0', '"\u0000"']) {
      const r = await send('post', `/v1/processes/${target.pid}/messages`, `{"body":${inner}}`, 'application/json');
      expect(r.status, r.label).toBeLessThan(500);
      if (r.status >= 400) expect(ERROR_CODE_LIST).toContain(r.code);
    }
    expect((await api('GET', '/healthz')).status).toBe(200);
  });
});

describe('fuzzing syscalls from their schemas', () => {
  const names = Object.keys(SYSCALLS) as SyscallName[];
  /** ≥ 10,000 argument sets the schemas reject, spread over every syscall. */
  const invalidCalls = (() => {
    const per = Math.ceil(10_240 / names.length);
    const out: { name: SyscallName; args: unknown }[] = [];
    names.forEach((name, i) => {
      const schema = SYSCALLS[name].args as z.ZodType;
      const values = fc.sample(invalidFor(jsonSchemaOf(schema)), { numRuns: per * 2, seed: SEED + 1000 + i });
      // As validateCall reads them: absent arguments are {}, and a string is JSON that did not parse.
      for (const args of values.filter((v) => typeof v === 'string' || !schema.safeParse(v ?? {}).success).slice(0, per)) out.push({ name, args });
    });
    return out;
  })();

  it('validation answers every rejected argument set with EINVAL', () => {
    expect(invalidCalls.length).toBeGreaterThanOrEqual(10_000);
    for (const c of invalidCalls) {
      const r = validateCall({ id: 'x', name: c.name, args: c.args });
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.code).toBe('EINVAL');
    }
  });

  it('processes dispatch them as typed refusals (EINVAL), keep running, and change nothing they own', async () => {
    const PROCESSES = 16;
    const PER_TURN = 32;
    const share = Math.ceil(invalidCalls.length / PROCESSES);
    const runs = await Promise.all(
      Array.from({ length: PROCESSES }, async (_, p) => {
        const calls = invalidCalls.slice(p * share, (p + 1) * share);
        const turns = [];
        for (let i = 0; i < calls.length; i += PER_TURN) turns.push({ tool_calls: calls.slice(i, i + PER_TURN) });
        turns.push({ tool_calls: [{ name: 'exit', args: { code: 0 } }] });
        const spawned = await spawn({ name: `fuzz-${p}`, task: 't', model: scripted, quotas: { max_steps: turns.length + 5 }, script: turns });
        const done = await runUntil(spawned.pid, ['terminated'], turns.length + 10);
        return { pid: spawned.pid, calls: calls.length, done, grants: spawned.capabilities };
      }),
    );
    for (const { pid, calls, done, grants } of runs) {
      expect(done.exit).toMatchObject({ code: 0 });
      const results = (await allEvents(pid)).filter((e) => e.type === 'syscall').map((e) => e.data as { name: string; ok: boolean; error?: { code: string } });
      const rejected = results.slice(0, -1); // the last is the script's own exit
      expect(rejected).toHaveLength(calls);
      // Every one EINVAL: arguments are validated before any grant is looked at, so bad input is
      // never answered EPERM (an mcp_call with a malformed `kind` once was), and nothing ran.
      expect(rejected.filter((r) => r.ok || r.error?.code !== 'EINVAL').slice(0, 3)).toEqual([]);
      // Nothing it owns changed: no files, no children, no tools, no messages, the same grants.
      expect((await api<{ entries: unknown[] }>('GET', `/v1/processes/${pid}/fs/`)).body.entries).toEqual([]);
      expect((await api<{ processes: unknown[] }>('GET', `/v1/processes?ppid=${pid}`)).body.processes).toEqual([]);
      expect((await api<{ tools: unknown[] }>('GET', `/v1/processes/${pid}/tools`)).body.tools).toEqual([]);
      expect(done.capabilities).toEqual(grants);
    }
  }, 600_000);
});
