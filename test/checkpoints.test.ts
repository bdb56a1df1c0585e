/**
 * Checkpoints, restore and fork, end to end in the Workers runtime with local R2: what a user
 * relies on (round trip, independence, limits) and the safety invariants of docs/checkpoints.md.
 */
import { abortAllDurableObjects, env, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { COPIED_TABLES, TABLE_POLICY, isInternalTable } from '../src/checkpoints/tables.ts';
import type { Pcb } from '../src/kernel/pcb.ts';
import { api, eventsOf, fileOf, pcbOf, runTree, runUntil, spawn, stubOf, tick } from './support/helpers.ts';

const scripted = { provider: 'scripted', model: 'scripted' };
const call = (name: string, args: Record<string, unknown> = {}) => ({ name, args });
const turn = (...calls: ReturnType<typeof call>[]) => ({ tool_calls: calls });
const nap = call('sleep', { seconds: 60 });

type Summary = { id: string; name: string; step: number; raw_bytes: number; stored_bytes: number; new_bytes: number; digest: string; reason: string };
type Manifest = { id: string; step: number; digest: string; tables: { name: string; policy: string; rows: number; chunks: string[] }[]; sizes: { raw_bytes: number; stored_bytes: number; new_bytes: number } };
type Approval = { id: string; pid: string; status: string; capability: string };

async function checkpoint(pid: string, label?: string, headers: Record<string, string> = {}): Promise<Summary> {
  const r = await api<Summary>('POST', `/v1/processes/${pid}/checkpoints`, label ? { label } : {}, headers);
  if (r.status !== 201) throw new Error(`checkpoint: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

const digestOf = async (pid: string): Promise<string> => {
  const r = (await stubOf(pid).checkpoints('default', { op: 'digest' })) as { ok: true; value: { digest: string } };
  return r.value.digest;
};
const restore = (pid: string, id: string) => api<Pcb>('POST', `/v1/processes/${pid}/checkpoints/${id}/restore`);
const fork = (pid: string, id: string, body: Record<string, unknown> = {}) => api<Pcb>('POST', `/v1/processes/${pid}/checkpoints/${id}/fork`, body);
const results = async (pid: string) => (await eventsOf(pid)).filter((e) => e.type === 'syscall').map((e) => e.data as { name: string; ok: boolean; error?: { code: string; message: string } });
const approvals = async (pid: string) => (await env.DB.prepare('SELECT id, pid, status, capability FROM approvals WHERE pid = ? ORDER BY created_at').bind(pid).all<Approval>()).results;
async function ok<T>(r: Promise<{ status: number; body: T }>, status = 200): Promise<T> {
  const got = await r;
  expect(got.status, JSON.stringify(got.body)).toBe(status);
  return got.body;
}

describe('taking checkpoints', () => {
  it('lists, inspects, diffs and deletes them; unchanged content is stored once', async () => {
    // Text that does not compress away, so sizes say something.
    let seed = 7;
    const big = Array.from({ length: 300_000 }, () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31), 'abcdefghijklmnopqrstuvwxyz0123456789'[seed % 36])).join('');
    const { pid } = await spawn({
      name: 'c',
      task: 't',
      model: scripted,
      script: [turn(call('fs_write', { path: 'big.txt', content: big }), call('fs_write', { path: 'a.txt', content: 'one' }), nap), turn(call('fs_write', { path: 'a.txt', content: 'two' }), nap)],
    });
    expect((await runUntil(pid, ['sleeping'])).state).toBe('sleeping');
    const first = await checkpoint(pid, 'before');
    expect(first).toMatchObject({ name: `${pid}@${first.id}`, step: 1, reason: 'api' });
    // Compressed: what is stored is less than the raw state.
    expect(first.stored_bytes).toBeLessThan(first.raw_bytes);
    await tick(pid);
    expect((await pcbOf(pid)).usage.steps).toBe(2);
    const second = await checkpoint(pid, 'after');
    // Only what changed was stored again: the big file's blob is shared.
    expect(second.new_bytes).toBeLessThan(first.new_bytes / 5);
    const list = await api<{ checkpoints: Summary[] }>('GET', `/v1/processes/${pid}/checkpoints`);
    expect(list.body.checkpoints.map((c) => c.id)).toEqual([first.id, second.id]);
    const manifest = await api<Manifest>('GET', `/v1/processes/${pid}/checkpoints/${first.id}`);
    expect(manifest.status).toBe(200);
    expect(manifest.body.tables.map((t) => t.name)).toEqual(expect.arrayContaining(['pcb', 'pages', 'journal', 'files', 'file_chunks', 'children', 'outbox']));
    expect(manifest.body.tables.map((t) => t.name)).not.toContain('events');
    const diff = await api<{ steps: number; same_state: boolean; changed_files: string[]; tables: { table: string }[] }>('GET', `/v1/processes/${pid}/checkpoints/${first.id}/diff/${second.id}`);
    expect(diff.body).toMatchObject({ steps: 1, same_state: false, changed_files: ['/a.txt'] });
    expect(diff.body.tables.map((t) => t.table)).toEqual(expect.arrayContaining(['pages', 'journal', 'files']));
    const del = await api<{ chunks_freed: number }>('DELETE', `/v1/processes/${pid}/checkpoints/${first.id}`);
    expect(del.status).toBe(200);
    expect(del.body.chunks_freed).toBeGreaterThan(0);
    expect((await api('GET', `/v1/processes/${pid}/checkpoints/${first.id}`)).status).toBe(404);
    // The second checkpoint still has everything it needs (the shared blob was not freed): it restores.
    await ok(restore(pid, second.id));
    expect(await fileOf(pid, 'big.txt')).toBe(big);
    const objects = await env.CHECKPOINTS.list({ prefix: `ckpt/default/${pid}/` });
    expect(objects.objects.length).toBeGreaterThan(0);
    expect(objects.objects.some((o) => o.key.endsWith(`/m/${first.id}`))).toBe(false);
    expect((await api('GET', `/v1/processes/${pid}/checkpoints/nope`)).status).toBe(404);
    // The last checkpoint gone, no pack is referenced: none is left in R2.
    expect((await api('DELETE', `/v1/processes/${pid}/checkpoints/${second.id}`)).status).toBe(200);
    expect((await env.CHECKPOINTS.list({ prefix: `ckpt/default/${pid}/` })).objects).toEqual([]);
  });

  it('pages the list like every list: limit, cursor, next_cursor, oldest first, to the last one', async () => {
    const { pid } = await spawn({ name: 'many', task: 't', model: scripted, script: [turn(nap)] });
    await runUntil(pid, ['sleeping']);
    const taken: string[] = [];
    for (let i = 0; i < 5; i++) taken.push((await checkpoint(pid, `c${i}`)).id);
    type Page = { checkpoints: Summary[]; next_cursor: string | null; policy: { keep: number } };
    const seen: string[] = [];
    const cursors: (string | null)[] = [];
    let cursor: string | null = null;
    do {
      const page: Page = await ok(api<Page>('GET', `/v1/processes/${pid}/checkpoints?limit=2${cursor ? `&cursor=${cursor}` : ''}`));
      expect(page.checkpoints.length).toBeLessThanOrEqual(2);
      expect(page.policy.keep).toBeGreaterThan(0);
      seen.push(...page.checkpoints.map((c) => c.id));
      cursor = page.next_cursor;
      cursors.push(cursor);
    } while (cursor !== null);
    // Three pages (2, 2, 1), every checkpoint once and in order, and the last page says so.
    expect(seen).toEqual(taken);
    expect(cursors).toHaveLength(3);
    // Exactly a page's worth left: no empty page after it.
    const four = await ok(api<Page>('GET', `/v1/processes/${pid}/checkpoints?limit=4&cursor=${cursors[0]}`));
    expect(four.checkpoints.map((c) => c.id)).toEqual(taken.slice(2));
    expect(four.next_cursor).toBeNull();
    expect((await api('GET', `/v1/processes/${pid}/checkpoints?cursor=ck0001`)).status).toBe(400);
    expect((await api('GET', `/v1/processes/${pid}/checkpoints?limit=501`)).status).toBe(400);
  });

  it('classifies every table of a process: each is copied, kept live or skipped on purpose', async () => {
    const { pid } = await spawn({
      name: 'tables',
      task: 't',
      model: scripted,
      script: [turn(call('fs_write', { path: 'f.txt', content: 'x' }), call('send', { to: 'pid/nobody0000000000000000', body: 'hi' }), call('spawn', { name: 'kid', task: 'x', image: 'idle' }), nap)],
    });
    await runUntil(pid, ['sleeping']);
    await api('POST', `/v1/processes/${pid}/messages`, { body: 'hello' });
    const c = await checkpoint(pid);
    const tables = await runInDurableObject(stubOf(pid), (_i, state) => state.storage.sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'").toArray().map((r) => r.name));
    // Every table in storage is in the process-state description (src/process/schema.ts), with a policy.
    const unclassified = tables.filter((t) => !isInternalTable(t) && !(t in TABLE_POLICY));
    expect(unclassified).toEqual([]);
    expect(tables).toEqual(expect.arrayContaining(['pcb', 'pages', 'journal', 'mailbox', 'ipc_out', 'children', 'ckpt_index']));
    // The checkpoint copies exactly the described, not-skipped tables that exist: driven by the description.
    const copied = (await api<Manifest>('GET', `/v1/processes/${pid}/checkpoints/${c.id}`)).body.tables.map((t) => t.name);
    expect(copied).toEqual(COPIED_TABLES.map((t) => t.name).filter((n) => tables.includes(n)));
    expect(copied).not.toContain('events');
  });

  it('a damaged or missing pack is an I/O error on restore, and nothing is written', async () => {
    const { pid } = await spawn({ name: 'rot', task: 't', model: scripted, script: [turn(call('fs_write', { path: 'a.txt', content: 'one' }), nap), turn(call('fs_write', { path: 'a.txt', content: 'two' }), nap)] });
    await runUntil(pid, ['sleeping']);
    const c = await checkpoint(pid);
    await tick(pid);
    const before = await digestOf(pid);
    const [pack] = (await env.CHECKPOINTS.list({ prefix: `ckpt/default/${pid}/p/` })).objects;
    expect(pack).toBeDefined();
    const good = await (await env.CHECKPOINTS.get(pack!.key))!.arrayBuffer();
    // Valid raw deflate of other bytes: it decompresses, but not to what the pack's name says.
    const other = await new Response(new Blob([new TextEncoder().encode('agentos-pack/2 3\nabc')]).stream().pipeThrough(new CompressionStream('deflate-raw'))).arrayBuffer();
    await env.CHECKPOINTS.put(pack!.key, other);
    const r = await api<{ error: { code: string; message: string } }>('POST', `/v1/processes/${pid}/checkpoints/${c.id}/restore`);
    expect(r.body.error).toMatchObject({ code: 'EIO', message: expect.stringMatching(/corrupt/) });
    await env.CHECKPOINTS.delete(pack!.key);
    expect((await restore(pid, c.id)).body).toMatchObject({ error: { code: 'EIO', message: expect.stringMatching(/missing pack/) } });
    expect(await digestOf(pid)).toBe(before);
    await env.CHECKPOINTS.put(pack!.key, good);
    await ok(restore(pid, c.id));
    expect(await fileOf(pid, 'a.txt')).toBe('one');
  });

  it("removing a process deletes its checkpoints from R2; a fork made from one keeps its copy", async () => {
    const { pid } = await spawn({ name: 'gone', task: 't', model: scripted, script: [turn(call('fs_write', { path: 'a.txt', content: 'kept' }), nap)] });
    await runUntil(pid, ['sleeping']);
    const c = await checkpoint(pid);
    await checkpoint(pid, 'second');
    const f = await ok(fork(pid, c.id), 201);
    const prefix = `ckpt/default/${pid}/`;
    expect((await env.CHECKPOINTS.list({ prefix })).objects.length).toBeGreaterThanOrEqual(3);
    // What an interrupted checkpoint could leave: a pack no manifest names.
    await env.CHECKPOINTS.put(`${prefix}p/${'0'.repeat(64)}`, new Uint8Array([1]));
    expect((await api('DELETE', `/v1/processes/${pid}`)).status).toBe(200);
    expect((await env.CHECKPOINTS.list({ prefix })).objects).toEqual([]);
    expect(await fileOf(f.pid, 'a.txt')).toBe('kept');
  });

  it('refuses in the middle of a syscall with EAGAIN', async () => {
    const { pid } = await spawn({ name: 'busy', task: 't', model: scripted, script: [turn(nap)] });
    await runUntil(pid, ['sleeping']);
    await runInDurableObject(stubOf(pid), (_i, state) => state.storage.sql.exec("UPDATE journal SET status = 'started'"));
    const r = await api<{ error: { code: string } }>('POST', `/v1/processes/${pid}/checkpoints`, {});
    expect(r.status).toBe(503);
    expect(r.body.error.code).toBe('EAGAIN');
  });

  it('an eviction during a checkpoint leaves a complete checkpoint or none', async () => {
    let seed = 11;
    const noise = (n: number) => Array.from({ length: n }, () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31), 'abcdefghijklmnopqrstuvwxyz'[seed % 26])).join('');
    const { pid } = await spawn({ name: 'evict', task: 't', model: scripted, script: [turn(nap)] });
    await runUntil(pid, ['sleeping']);
    const files = Array.from({ length: 8 }, () => noise(200_000));
    await runInDurableObject(stubOf(pid), (_i, state) => {
      files.forEach((content, i) => {
        state.storage.sql.exec('INSERT INTO files (path, size, chunks, updated_at) VALUES (?, ?, 1, 0)', `/f${i}.txt`, content.length);
        state.storage.sql.exec('INSERT INTO file_chunks (path, idx, data) VALUES (?, 0, ?)', `/f${i}.txt`, content);
      });
    });
    const taking = api('POST', `/v1/processes/${pid}/checkpoints`, { label: 'interrupted' }).catch(() => null);
    // Wait (without sleeping) until the upload is under way: its pack is in R2, its manifest maybe not.
    for (let i = 0; i < 500 && (await env.CHECKPOINTS.list({ prefix: `ckpt/default/${pid}/p/` })).objects.length === 0; i++);
    await abortAllDurableObjects();
    void taking;
    const list = (await api<{ checkpoints: Summary[] }>('GET', `/v1/processes/${pid}/checkpoints`)).body.checkpoints;
    expect(list.length).toBeLessThanOrEqual(1);
    for (const c of list) await ok(restore(pid, c.id));
    // Either way the next checkpoint succeeds and restores.
    const next = await checkpoint(pid);
    await ok(restore(pid, next.id));
    expect(await fileOf(pid, 'f3.txt')).toHaveLength(200_000);
  });

  it('takes automatic checkpoints every K steps and on SIGSTOP, keeping the newest ones', async () => {
    const { pid } = await spawn({
      name: 'auto',
      task: 't',
      model: scripted,
      checkpoints: { every_steps: 2, on_sigstop: true, keep: 2 },
      script: [turn(nap), turn(nap), turn(nap), turn(nap), turn(nap), turn(nap), turn(nap)],
    });
    for (let i = 0; i < 6; i++) await tick(pid);
    const list = (await api<{ checkpoints: Summary[]; policy: { every_steps: number } }>('GET', `/v1/processes/${pid}/checkpoints`)).body;
    expect(list.policy.every_steps).toBe(2);
    expect(list.checkpoints.map((c) => c.reason)).toEqual(['auto', 'auto']);
    expect(list.checkpoints.map((c) => c.step)).toEqual([4, 6]);
    await api('POST', `/v1/processes/${pid}/signals`, { signal: 'SIGSTOP' });
    const after = (await api<{ checkpoints: Summary[] }>('GET', `/v1/processes/${pid}/checkpoints`)).body.checkpoints;
    expect(after.map((c) => c.reason)).toEqual(['auto', 'sigstop']);
  });
});

describe('restore', () => {
  it('round trip: the state digest after restore equals the digest at checkpoint time; forward-only', async () => {
    const { pid } = await spawn({
      name: 'r',
      task: 't',
      model: scripted,
      script: [turn(call('fs_write', { path: 'a.txt', content: 'one' }), nap), turn(call('fs_write', { path: 'a.txt', content: 'two' }), call('fs_write', { path: 'b.txt', content: 'new' }), nap), turn(call('exit', { code: 0 }))],
    });
    await runUntil(pid, ['sleeping']);
    const c = await checkpoint(pid);
    expect(await digestOf(pid)).toBe(c.digest);
    await tick(pid);
    const moved = await pcbOf(pid);
    expect(moved.usage.steps).toBe(2);
    expect(await digestOf(pid)).not.toBe(c.digest);
    const r = { body: await ok(restore(pid, c.id)) };
    expect(await digestOf(pid)).toBe(c.digest);
    expect(await fileOf(pid, 'a.txt')).toBe('one');
    expect((await api('GET', `/v1/processes/${pid}/fs/b.txt`)).status).toBe(404);
    // Forward-only: a newer version, the usage it spent stays spent, events and audit say so.
    expect(r.body.version).toBeGreaterThan(moved.version);
    expect(r.body.usage.steps).toBe(2);
    const restored = (await eventsOf(pid)).find((e) => e.type === 'restored');
    expect(restored?.data).toMatchObject({ checkpoint: c.id, step: 1 });
    const audit = await api<{ rows: { action: string }[] }>('GET', `/v1/audit?pid=${pid}&limit=500`);
    expect(audit.body.rows.map((x) => x.action)).toEqual(expect.arrayContaining(['checkpoint', 'restore', 'fs_write']));
    expect(audit.body.rows.filter((x) => x.action === 'fs_write')).toHaveLength(3);
    expect((await api<{ ok: boolean }>('GET', '/v1/audit/verify')).body).toMatchObject({ ok: true, first_broken: null });
    // It runs on from the checkpoint: the next step is step 3 of its script.
    expect((await runUntil(pid, ['terminated'])).exit?.code).toBe(0);
  });

  it('refuses to restore a process that has exited (fork its checkpoint instead)', async () => {
    const { pid } = await spawn({ name: 'gone', task: 't', model: scripted, script: [turn(nap), turn(call('exit', { code: 0 }))] });
    await runUntil(pid, ['sleeping']);
    const c = await checkpoint(pid);
    await runUntil(pid, ['terminated']);
    expect((await restore(pid, c.id)).status).toBe(409);
    const f = await fork(pid, c.id);
    expect(f.status).toBe(201);
    expect(f.body.forked_from).toBe(`${pid}@${c.id}`);
  });
});

describe('fork', () => {
  it('a new pid with lineage, independent of the original; children are not duplicated', async () => {
    const { pid } = await spawn({
      name: 'orig',
      task: 't',
      model: scripted,
      script: [turn(call('fs_write', { path: 'a.txt', content: 'one' }), call('spawn', { name: 'kid', task: 'x', image: 'idle' }), nap), turn(call('fs_write', { path: 'a.txt', content: 'mine' }), nap)],
    });
    await runUntil(pid, ['sleeping']);
    const c = await checkpoint(pid);
    const child = await ok(fork(pid, c.id, { name: 'branch', priority: 10 }), 201);
    expect(child.pid).not.toBe(pid);
    expect(child).toMatchObject({ name: 'branch', priority: 10, ppid: null, forked_from: `${pid}@${c.id}`, version: 1 });
    expect((await pcbOf(child.pid)).forked_from).toBe(`${pid}@${c.id}`);
    // Evicted before its first step, the fork reads back its own PCB: the original's steps it
    // copied carry the original's counters (usage, version, time), which are not the fork's.
    const forked = await pcbOf(child.pid);
    await abortAllDurableObjects();
    expect(await pcbOf(child.pid)).toEqual(forked);
    const ps = await api<{ processes: { pid: string; forked_from: string | null }[] }>('GET', '/v1/processes?limit=500');
    expect(ps.body.processes.find((p) => p.pid === child.pid)?.forked_from).toBe(`${pid}@${c.id}`);
    expect(await fileOf(child.pid, 'a.txt')).toBe('one');
    // Writes in the fork never reach the original, and the other way round.
    await tick(child.pid);
    expect(await fileOf(child.pid, 'a.txt')).toBe('mine');
    expect(await fileOf(pid, 'a.txt')).toBe('one');
    await api('POST', `/v1/processes/${pid}/signals`, { signal: 'SIGKILL' });
    expect((await pcbOf(child.pid)).state).not.toBe('terminated');
    const kids = await api<{ processes: unknown[] }>('GET', `/v1/processes?ppid=${child.pid}`);
    expect(kids.body.processes).toEqual([]);
    // A different task reaches the fork's context.
    const g = await fork(pid, c.id, { task: 'now do something else' });
    const ctx = await api<{ pages: { kind: string; text: string }[] }>('GET', `/v1/processes/${g.body.pid}/context`);
    expect(JSON.stringify(ctx.body)).toMatch(/now do something else/);
  });
});

describe('safety invariants', () => {
  it('a capability used up after the checkpoint stays used up after restore and in a fork', async () => {
    const { pid } = await spawn({
      name: 'uses',
      task: 't',
      model: scripted,
      capabilities: ['fs:/**:r', { cap: 'fs:/once.txt:w', uses: 1 }, { cap: 'fs:/tmp/**:w', effect: 'allow' }],
      script: [turn(nap), turn(call('fs_write', { path: 'once.txt', content: 'used' }), nap), turn(call('fs_write', { path: 'once.txt', content: 'again' }), nap)],
    });
    await runUntil(pid, ['sleeping']);
    const c = await checkpoint(pid);
    await tick(pid);
    expect(await fileOf(pid, 'once.txt')).toBe('used');
    const spent = (await pcbOf(pid)).capabilities.find((g) => g.cap === 'fs:/once.txt:w');
    expect(spent?.uses).toBe(0);
    const r = { body: await ok(restore(pid, c.id)) };
    expect(r.body.capabilities.find((g) => g.cap === 'fs:/once.txt:w')?.uses).toBe(0);
    // The fork never gets a grant its parent does not hold at fork time (nor copies of use-limited ones).
    const f = await fork(pid, c.id);
    expect(f.body.capabilities.some((g) => g.cap === 'fs:/once.txt:w')).toBe(false);
    expect(f.body.capabilities.some((g) => g.cap === 'fs:/tmp/**:w')).toBe(true);
    expect((await fork(pid, c.id, { capabilities: ['net:*'] })).status).toBe(403);
    // After the restore, the write that used the grant up is refused.
    await tick(pid);
    await tick(pid);
    expect((await results(pid)).filter((r) => r.name === 'fs_write').at(-1)).toMatchObject({ ok: false, error: { code: 'EPERM' } });
  });

  it('an approval decided after the checkpoint is not resurrected as pending; a pending one is not carried into a fork as approved', async () => {
    const { pid } = await spawn({
      name: 'ask',
      task: 't',
      model: scripted,
      capabilities: ['fs:/**:r', { cap: 'fs:/**:w', effect: 'ask' }],
      script: [turn(call('fs_write', { path: 'r.md', content: 'v1' })), turn(call('exit', { code: 0 }))],
    });
    await runUntil(pid, ['waiting']);
    const c = await checkpoint(pid);
    const [ask] = await approvals(pid);
    expect(ask?.status).toBe('pending');
    // Fork while pending: the fork asks again under its own pid; the original's approval is not its.
    const f = await fork(pid, c.id);
    await runUntil(f.body.pid, ['waiting']);
    const forkAsks = await approvals(f.body.pid);
    expect(forkAsks).toHaveLength(1);
    expect(forkAsks[0]?.id).not.toBe(ask?.id);
    expect((await api('POST', `/v1/approvals/${ask!.id}`, { decision: 'approve' })).status).toBe(200);
    expect((await approvals(f.body.pid))[0]?.status).toBe('pending');
    expect((await api('GET', `/v1/processes/${f.body.pid}/fs/r.md`)).status).toBe(404);
    await runUntil(pid, ['terminated', 'zombie']);
    expect(await fileOf(pid, 'r.md')).toBe('v1');
    expect((await restore(pid, c.id)).status).toBe(409);
    // Now a live one: approve after the checkpoint, then restore — the call is not asked or run again.
    const { pid: p2 } = await spawn({
      name: 'ask2',
      task: 't',
      model: scripted,
      capabilities: ['fs:/**:r', { cap: 'fs:/**:w', effect: 'ask' }],
      script: [turn(call('fs_write', { path: 'r.md', content: 'v1' })), turn(nap)],
    });
    await runUntil(p2, ['waiting']);
    const c2 = await checkpoint(p2);
    const [a2] = await approvals(p2);
    await api('POST', `/v1/approvals/${a2!.id}`, { decision: 'approve' });
    await runUntil(p2, ['sleeping']);
    expect(await fileOf(p2, 'r.md')).toBe('v1');
    const r = await restore(p2, c2.id);
    expect(r.body.state).toBe('ready');
    expect(r.body.wait).toBeNull();
    expect((await approvals(p2)).map((a) => a.status)).toEqual(['approved']);
    const last = (await results(p2)).at(-1);
    expect(last).toMatchObject({ name: 'fs_write', ok: false, error: { code: 'EPERM' } });
    expect(last?.error?.message).toMatch(/after checkpoint/);
  });

  it("another tenant's checkpoint is a 404", async () => {
    const { pid } = await spawn({ name: 'mine', task: 't', model: scripted, script: [turn(nap)] });
    await runUntil(pid, ['sleeping']);
    const c = await checkpoint(pid);
    const made = await api<{ token: string }>('POST', '/v1/tokens', { tenant: 'ckpt-other', role: 'admin', name: 'other' });
    const other = { authorization: `Bearer ${made.body.token}` };
    for (const [method, path] of [
      ['GET', `/v1/processes/${pid}/checkpoints`],
      ['GET', `/v1/processes/${pid}/checkpoints/${c.id}`],
      ['POST', `/v1/processes/${pid}/checkpoints`],
      ['POST', `/v1/processes/${pid}/checkpoints/${c.id}/restore`],
      ['POST', `/v1/processes/${pid}/checkpoints/${c.id}/fork`],
      ['DELETE', `/v1/processes/${pid}/checkpoints/${c.id}`],
      ['GET', `/v1/processes/${pid}/checkpoints/${c.id}/diff/${c.id}`],
    ] as const) {
      expect((await api(method, path, method === 'POST' ? {} : undefined, other)).status, `${method} ${path}`).toBe(404);
    }
  });

  it('a checkpoint holding untrusted content keeps its taint labels, in a restore and in a fork', async () => {
    const { pid } = await spawn({
      name: 'taint',
      task: 't',
      model: scripted,
      capabilities: ['fs:/**:rw', 'net:127.0.0.1'],
      script: [turn(call('net_fetch', { url: `${env.TEST_SERVER}/hello` }), nap), turn(call('net_fetch', { url: `${env.TEST_SERVER}/other` }), nap)],
    });
    await runUntil(pid, ['sleeping']);
    const c = await checkpoint(pid);
    const tainted = (p: string) => runInDurableObject(stubOf(p), (_i, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM pages WHERE json_extract(body, '$.untrusted') = 1").one().n > 0);
    expect(await tainted(pid)).toBe(true);
    await ok(restore(pid, c.id));
    expect(await tainted(pid)).toBe(true);
    const f = await ok(fork(pid, c.id), 201);
    expect(await tainted(f.pid)).toBe(true);
  });
});

describe('limits', () => {
  it('a process with 10 MB of files and 2,000 steps checkpoints within the platform limits, and forks back whole', async () => {
    const { pid } = await spawn({ name: 'big', task: 't', model: scripted, script: [turn(nap)] });
    await runUntil(pid, ['sleeping']);
    const file = (i: number) => `${String(i).padStart(4, '0')}:`.repeat(200_000).slice(0, 1_000_000);
    await runInDurableObject(stubOf(pid), (_i, state) => {
      const sql = state.storage.sql;
      for (let s = 2; s <= 2001; s++) {
        sql.exec("INSERT INTO steps (step, status, text, created_at) VALUES (?, 'done', ?, 0)", s, `step ${s}`);
        sql.exec("INSERT INTO journal (step, idx, call_id, name, args, status, result) VALUES (?, 0, ?, 'fs_read', '{\"args\":{}}', 'done', '{\"ok\":true}')", s, `c${s}`);
        sql.exec("INSERT INTO pages (step, kind, body, created_at, tokens) VALUES (?, 'assistant', ?, 0, 50)", s, JSON.stringify({ kind: 'assistant', text: `thinking about step ${s} `.repeat(8), tool_calls: [] }));
      }
      for (let i = 0; i < 10; i++) {
        const content = file(i);
        sql.exec('INSERT INTO files (path, size, chunks, updated_at) VALUES (?, ?, 4, 0)', `/data/${i}.txt`, content.length);
        for (let k = 0; k < 4; k++) sql.exec('INSERT INTO file_chunks (path, idx, data) VALUES (?, ?, ?)', `/data/${i}.txt`, k, content.slice(k * 262_144, (k + 1) * 262_144));
      }
    });
    const c = await checkpoint(pid);
    expect(c.raw_bytes).toBeGreaterThan(10_000_000);
    const f = await fork(pid, c.id);
    expect(f.status).toBe(201);
    expect(await fileOf(f.body.pid, 'data/7.txt')).toBe(file(7));
    const steps = await runInDurableObject(stubOf(f.body.pid), (_i, state) => state.storage.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM journal').one().n);
    expect(steps).toBe(2001);
  });
});

describe('the checkpoint and fork syscalls', () => {
  it('an agent checkpoints itself and forks a child from the checkpoint, under proc:checkpoint and proc:fork', async () => {
    const { pid } = await spawn({
      name: 'self',
      task: 't',
      model: scripted,
      capabilities: ['fs:/**:rw', 'proc:checkpoint', 'proc:fork'],
      script: [
        turn(call('checkpoint', { label: 'start' })),
        turn(call('fs_write', { path: 'a.txt', content: 'parent' }), call('fork', { checkpoint: 'start', task: 'be the fork' })),
        turn(call('wait', {})),
        { text: 'done' },
      ],
    });
    await tick(pid);
    const list = (await api<{ checkpoints: Summary[] }>('GET', `/v1/processes/${pid}/checkpoints`)).body.checkpoints;
    expect(list.map((c) => [c.reason, c.step])).toEqual([['syscall', 1]]);
    const done = await runTree(pid);
    expect(done.exit?.code).toBe(0);
    const mine = await results(pid);
    const forked = mine.find((r) => r.name === 'fork') as { ok: boolean; result?: { pid: string; forked_from: string } } | undefined;
    expect(forked?.ok).toBe(true);
    expect(forked?.result?.forked_from).toBe(`${pid}@${list[0]?.id}`);
    const child = await pcbOf(forked?.result?.pid ?? '');
    expect(child).toMatchObject({ ppid: pid, forked_from: `${pid}@${list[0]?.id}` });
    // The parent collected the fork's exit; the fork, which has no checkpoint of its own, could not fork.
    expect(mine.find((r) => r.name === 'wait')).toMatchObject({ ok: true });
    expect((await results(child.pid)).find((r) => r.name === 'fork')).toMatchObject({ ok: false, error: { code: 'ENOENT' } });
    const ctx = await runInDurableObject(stubOf(child.pid), (_i, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM pages WHERE kind = 'notice' AND body LIKE '%be the fork%'").one().n);
    expect(ctx).toBe(1);
  });

  it('without the capabilities both are EPERM', async () => {
    const { pid } = await spawn({ name: 'noself', task: 't', model: scripted, script: [turn(call('checkpoint', {}), call('fork', {}))] });
    await runUntil(pid, ['terminated']);
    expect((await results(pid)).slice(0, 2).map((r) => [r.name, r.error?.code])).toEqual([
      ['checkpoint', 'EPERM'],
      ['fork', 'EPERM'],
    ]);
  });
});
