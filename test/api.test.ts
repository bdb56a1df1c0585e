/**
 * The HTTP API's contract with clients: typed errors for every kind of bad input (never a 500),
 * ps over the process table, the audit log, and the OpenAPI document.
 */
import { SELF } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { ADMIN, api, eventsOf, runUntil, spawn } from './support/helpers.ts';

type ErrorBody = { error: { code: string; message: string; details?: { issues?: { path: string[] }[] } } };
const scripted = { provider: 'scripted', model: 'scripted' };

describe('bad input gets a clear, typed error', () => {
  it('malformed JSON is 400 EINVAL', async () => {
    const r = await api<ErrorBody>('POST', '/v1/processes', '{"name": "x", "task": ');
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('EINVAL');
    expect(r.body.error.message).toMatch(/not valid JSON/);
  });

  it('an empty body and a non-UTF-8 body are 400 EINVAL', async () => {
    expect((await api<ErrorBody>('POST', '/v1/processes', '')).status).toBe(400);
    const res = await SELF.fetch('http://agentos.test/v1/processes', { method: 'POST', headers: ADMIN, body: new Uint8Array([0xff, 0xfe, 0x7b]) });
    expect(res.status).toBe(400);
    expect(((await res.json()) as ErrorBody).error.message).toMatch(/UTF-8/);
  });

  it('a schema violation is 400 with the issues, naming each bad field', async () => {
    const r = await api<ErrorBody>('POST', '/v1/processes', { name: '', task: 'x', priority: 500, surprise: true });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('EINVAL');
    const paths = (r.body.error.details?.issues ?? []).map((i) => i.path.join('.'));
    expect(paths).toEqual(expect.arrayContaining(['name', 'priority']));
    expect(r.body.error.message).toMatch(/surprise/);
  });

  it('an oversized body is 413 E2BIG, with or without a content-length', async () => {
    const big = JSON.stringify({ name: 'x', task: 'y'.repeat(1_100_000) });
    const declared = await api<ErrorBody>('POST', '/v1/processes', big);
    expect(declared.status).toBe(413);
    expect(declared.body.error.code).toBe('E2BIG');
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(big));
        c.close();
      },
    });
    const res = await SELF.fetch('http://agentos.test/v1/processes', { method: 'POST', headers: ADMIN, body: stream, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(413);
  });

  it('unknown and malformed pids are 404 ENOENT on every process route', async () => {
    for (const pid of ['p00000000000000000000', 'not-a-pid', '..%2f..%2fetc']) {
      for (const [method, path, body] of [
        ['GET', `/v1/processes/${pid}`],
        ['GET', `/v1/processes/${pid}/events`],
        ['GET', `/v1/processes/${pid}/fs/a.txt`],
        ['POST', `/v1/processes/${pid}/signals`, { signal: 'SIGKILL' }],
        ['DELETE', `/v1/processes/${pid}`],
      ] as const) {
        const r = await api<ErrorBody>(method, path, body);
        expect(r.status, `${method} ${path}`).toBe(404);
        expect(r.body.error.code).toBe('ENOENT');
      }
    }
  });

  it('an unknown image or provider is 400 at spawn, not a crash later', async () => {
    const image = await api<ErrorBody>('POST', '/v1/processes', { name: 'x', task: 'y', image: 'nope' });
    expect(image.status).toBe(400);
    expect(image.body.error.message).toMatch(/unknown image "nope"/);
    const provider = await api<ErrorBody>('POST', '/v1/processes', { name: 'x', task: 'y', model: { provider: 'nope', model: 'm' } });
    expect(provider.status).toBe(400);
    expect(provider.body.error.message).toMatch(/provider "nope"/);
  });

  it('an illegal transition is 409 ESTATE and an unknown signal is 400', async () => {
    const { pid } = await spawn({ name: 'x', task: 'y', model: scripted, script: [{ tool_calls: [{ name: 'sleep', args: { seconds: 60 } }] }] });
    const cont = await api<ErrorBody>('POST', `/v1/processes/${pid}/signals`, { signal: 'SIGCONT' });
    expect(cont.status).toBe(409);
    expect(cont.body.error.code).toBe('ESTATE');
    expect((await api('POST', `/v1/processes/${pid}/signals`, { signal: 'SIGHUP' })).status).toBe(400);
    expect((await api('POST', `/v1/processes/${pid}/signals`, { signal: 'SIGKILL' })).status).toBe(200);
    const again = await api<ErrorBody>('POST', `/v1/processes/${pid}/signals`, { signal: 'SIGKILL' });
    expect(again.status).toBe(409);
  });

  it('bad query parameters are 400 and unknown routes are 404, both as JSON errors', async () => {
    expect((await api('GET', '/v1/processes?limit=-1')).status).toBe(400);
    expect((await api('GET', '/v1/processes?state=dancing')).status).toBe(400);
    expect((await api('GET', '/v1/audit?cursor=abc')).status).toBe(400);
    expect((await api('GET', '/v1/audit?limit=1.5')).status).toBe(400);
    const missing = await api<ErrorBody>('GET', '/v2/nothing');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('ENOENT');
  });
});

describe('ps, audit and discovery', () => {
  it('lists processes newest first, filters by state and parent, and pages with a cursor', async () => {
    const sleeper = { model: scripted, script: [{ tool_calls: [{ name: 'sleep', args: { seconds: 600 } }] }] };
    const a = await spawn({ name: 'a', task: 't', ...sleeper });
    const b = await spawn({ name: 'b', task: 't', ...sleeper });
    const c = await spawn({ name: 'c', task: 't', ...sleeper });
    await runUntil(b.pid, ['sleeping']);
    const all = await api<{ processes: { pid: string }[]; next_cursor: string | null }>('GET', '/v1/processes?limit=2');
    expect(all.body.processes.map((p) => p.pid)).toEqual([c.pid, b.pid]);
    const rest = await api<{ processes: { pid: string }[]; next_cursor: string | null }>('GET', `/v1/processes?limit=2&cursor=${all.body.next_cursor}`);
    // Storage is per test file, so older processes from other tests follow ours.
    expect(rest.body.processes[0]?.pid).toBe(a.pid);
    const ours = new Set([a.pid, b.pid, c.pid]);
    const sleeping = await api<{ processes: { pid: string; state: string }[] }>('GET', '/v1/processes?state=sleeping&limit=500');
    expect(sleeping.body.processes.filter((p) => ours.has(p.pid)).map((p) => p.pid)).toEqual([b.pid]);
    expect(sleeping.body.processes.every((p) => p.state === 'sleeping')).toBe(true);
  });

  it('lists a process as soon as its spawn answers, before its first step; its spawn record reaches the audit log with that step', async () => {
    const { pid } = await spawn({ name: 'fresh', task: 't', model: scripted, script: [{ tool_calls: [{ name: 'sleep', args: { seconds: 600 } }] }] });
    // No alarm has been driven: the row was written in the spawn's own D1 round trip.
    const listed = await api<{ processes: { pid: string; state: string; name: string }[] }>('GET', '/v1/processes?limit=500');
    expect(listed.body.processes.find((p) => p.pid === pid)).toMatchObject({ name: 'fresh' });
    await runUntil(pid, ['sleeping']);
    const after = await api<{ processes: { pid: string; state: string }[] }>('GET', '/v1/processes?state=sleeping&limit=500');
    expect(after.body.processes.map((p) => p.pid)).toContain(pid);
    const audit = await api<{ rows: { action: string }[] }>('GET', `/v1/audit?pid=${pid}`);
    expect(audit.body.rows.map((r) => r.action)).toEqual(['spawn', 'llm_call']);
    expect((await eventsOf(pid)).map((e) => e.type)).not.toContain('outbox_retry');
  });

  it('records lifecycle events and syscalls in the audit log, paged by seq', async () => {
    const { pid } = await spawn({ name: 'x', task: 'y', model: scripted, script: [{ tool_calls: [{ name: 'fs_write', args: { path: '../x', content: 'no' } }] }, { tool_calls: [{ name: 'exit', args: { code: 3 } }] }] });
    await runUntil(pid, ['terminated']);
    const r = await api<{ rows: { seq: number; kind: string; action: string; outcome: string; code: string | null }[]; next_cursor: string | null }>('GET', `/v1/audit?pid=${pid}`);
    expect(r.body.rows.map((x) => [x.kind, x.action, x.outcome, x.code])).toEqual([
      ['lifecycle', 'spawn', 'ok', null],
      ['llm', 'llm_call', 'ok', null],
      ['syscall', 'fs_write', 'error', 'EPERM'],
      ['llm', 'llm_call', 'ok', null],
      ['syscall', 'exit', 'ok', null],
      ['lifecycle', 'exit', 'error', '3'],
      // Exited: the process's chain is anchored in the tenant's chain (docs/security.md).
      ['audit', 'anchor', 'ok', null],
    ]);
    const page = await api<{ rows: { seq: number }[] }>('GET', `/v1/audit?pid=${pid}&cursor=${r.body.rows[1]!.seq}&limit=1`);
    expect(page.body.rows.map((x) => x.seq)).toEqual([r.body.rows[2]!.seq]);
  });

  it('serves an OpenAPI document generated from the same schemas, and a health check', async () => {
    const doc = await api<{ openapi: string; paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties: Record<string, unknown> } }> } }>> }>('GET', '/openapi.json');
    expect(doc.body.openapi).toBe('3.0.3');
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/v1/processes', '/v1/processes/{pid}', '/v1/processes/{pid}/signals', '/v1/processes/{pid}/events', '/v1/audit', '/healthz']));
    const spawnBody = doc.body.paths['/v1/processes']?.post?.requestBody?.content['application/json']?.schema;
    expect(Object.keys(spawnBody?.properties ?? {})).toEqual(expect.arrayContaining(['name', 'task', 'image', 'priority', 'model', 'quotas']));
    expect((await api<{ ok: boolean }>('GET', '/healthz')).body.ok).toBe(true);
  });
});
