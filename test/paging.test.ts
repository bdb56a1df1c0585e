/**
 * Every list of the API pages the same way: `limit` and `cursor` in, `next_cursor` out, null exactly
 * when nothing follows. Past 100 rows (the old hard cap of GET /v1/approvals) every row is reachable,
 * once, in order, and filters hold across pages.
 */
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { api, runUntil, spawn } from './support/helpers.ts';

type Page<K extends string, T> = { [P in K]: T[] } & { next_cursor: string | null };

/** Follow next_cursor from the first page to the end; every page but the last is full. */
async function walk<K extends string, T>(path: string, key: K, limit: number): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 100; pages++) {
    const sep = path.includes('?') ? '&' : '?';
    const r: { status: number; body: Page<K, T> } = await api<Page<K, T>>('GET', `${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    out.push(...r.body[key]);
    cursor = r.body.next_cursor;
    if (cursor === null) return out;
    expect(r.body[key]).toHaveLength(limit);
  }
  throw new Error('more than 100 pages');
}

const pid = (i: number) => `p${String(i).padStart(20, '0')}`;

describe('paging past 100 rows', () => {
  it('approvals: oldest first, every one reachable, filtered by pid and status', async () => {
    const insert = env.DB.prepare(
      `INSERT INTO approvals (id, tenant, pid, step, idx, syscall, args, args_hash, capability, reason, status, created_at, expires_at) VALUES (?, 'default', ?, 1, 0, 'net_fetch', '{}', 'h', 'net:*', 'r', ?, ?, ?)`,
    );
    // 130 requests from two processes; several share a created_at, so the id breaks the tie.
    await env.DB.batch(Array.from({ length: 130 }, (_, i) => insert.bind(`ap-${String(i).padStart(3, '0')}`, pid(i % 2), i % 10 === 9 ? 'denied' : 'pending', 1_000 + Math.floor(i / 3), 9e15)));
    const pending = await walk<'approvals', { id: string; pid: string; status: string }>('/v1/approvals', 'approvals', 40);
    const ids = pending.map((a) => a.id);
    expect(ids).toHaveLength(117);
    expect(new Set(ids).size).toBe(117);
    expect(ids).toEqual([...ids].sort());
    expect(ids.at(-1)).toBe('ap-128'); // the newest pending one: unreachable before paging
    const one = await walk<'approvals', { pid: string; status: string }>(`/v1/approvals?pid=${pid(1)}&status=all`, 'approvals', 25);
    expect(one).toHaveLength(65);
    expect(one.every((a) => a.pid === pid(1))).toBe(true);
    const denied = await walk<'approvals', { status: string }>('/v1/approvals?status=denied', 'approvals', 5);
    expect(denied.map((a) => a.status)).toEqual(Array(13).fill('denied'));
    expect((await api('GET', '/v1/approvals?cursor=garbage')).status).toBe(400);
  });

  it('processes: newest first across 120 rows', async () => {
    const insert = env.DB.prepare(`INSERT INTO processes (pid, tenant, ppid, name, image, state, priority, created_at, updated_at, version) VALUES (?, 'default', NULL, 'n', 'default', 'sleeping', 50, ?, ?, 1)`);
    await env.DB.batch(Array.from({ length: 120 }, (_, i) => insert.bind(pid(1000 + i), 5_000 + Math.floor(i / 4), 5_000)));
    const rows = await walk<'processes', { pid: string; created_at: number }>('/v1/processes?state=sleeping', 'processes', 50);
    const ours = rows.filter((r) => r.created_at >= 5_000 && r.created_at < 6_000);
    expect(ours).toHaveLength(120);
    expect(ours.map((r) => r.pid)).toEqual(Array.from({ length: 120 }, (_, i) => pid(1119 - i)));
  });

  it('tokens and hooks: every one created is listed once', async () => {
    for (let i = 0; i < 105; i++) expect((await api('POST', '/v1/tokens', { role: 'reader', name: `t${i}` })).status).toBe(201);
    const tokens = await walk<'tokens', { id: string; name: string }>('/v1/tokens', 'tokens', 30);
    expect(new Set(tokens.map((t) => t.id)).size).toBe(tokens.length);
    expect(tokens.filter((t) => /^t\d+$/.test(t.name))).toHaveLength(105);
    for (let i = 0; i < 103; i++) expect((await api('POST', '/v1/hooks', { name: `h-${String(i).padStart(3, '0')}`, action: 'spawn', image: 'default' })).status).toBe(201);
    const hooks = await walk<'hooks', { name: string }>('/v1/hooks', 'hooks', 50);
    expect(hooks.map((h) => h.name)).toEqual(Array.from({ length: 103 }, (_, i) => `h-${String(i).padStart(3, '0')}`));
  });

  it('events and audit: a log pages by seq, and its cursor is the seq of the last row held', async () => {
    // Four steps of 30 writes: 120+ events and audit rows.
    const calls = (step: number) => Array.from({ length: 30 }, (_, i) => ({ name: 'fs_write', args: { path: `f${step}-${i}.txt`, content: 'x' } }));
    const p = await spawn({ name: 'many', task: 't', model: { provider: 'scripted', model: 'scripted' }, script: [...[1, 2, 3, 4].map((n) => ({ tool_calls: calls(n) })), { text: 'done' }] });
    await runUntil(p.pid, ['terminated']);
    const events = await walk<'events', { seq: number }>(`/v1/processes/${p.pid}/events`, 'events', 45);
    expect(events.length).toBeGreaterThan(100);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => events[0]!.seq + i));
    const tail = await api<Page<'events', { seq: number }>>('GET', `/v1/processes/${p.pid}/events?cursor=${events.at(-3)!.seq}`);
    expect(tail.body.events.map((e) => e.seq)).toEqual(events.slice(-2).map((e) => e.seq));
    expect(tail.body.next_cursor).toBeNull();
    const audit = await walk<'rows', { seq: number; pid: string }>(`/v1/audit?pid=${p.pid}`, 'rows', 40);
    expect(audit.length).toBeGreaterThan(100);
    expect(audit.map((r) => r.seq)).toEqual([...audit.map((r) => r.seq)].sort((a, b) => a - b));
    expect(new Set(audit.map((r) => r.seq)).size).toBe(audit.length);
  });
});
