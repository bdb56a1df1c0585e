/**
 * Capabilities enforced by the dispatcher, and human approval bound to the exact call.
 */
import { env } from 'cloudflare:test';
import { callHash } from '../src/kernel/policy.ts';
import { describe, expect, it } from 'vitest';
import { api, eventsOf, pcbOf, runUntil, spawn, tick } from './support/helpers.ts';

const scripted = { provider: 'scripted', model: 'scripted' };
const call = (name: string, args: Record<string, unknown> = {}) => ({ name, args });
const turn = (...calls: ReturnType<typeof call>[]) => ({ tool_calls: calls });
type Result = { name: string; ok: boolean; result?: Record<string, unknown>; error?: { code: string; message: string; details?: { needed?: string } } };
type Approval = { id: string; pid: string; syscall: string; args: Record<string, unknown>; capability: string; reason: string; status: string };

const results = async (pid: string) => (await eventsOf(pid)).filter((e) => e.type === 'syscall').map((e) => e.data as unknown as Result);
const hits = async (key: string) => ((await (await fetch(`${env.TEST_SERVER}/count/${key}`)).json()) as { count: number }).count;
const pending = async (pid: string) => (await api<{ approvals: Approval[] }>('GET', '/v1/approvals?limit=500')).body.approvals.filter((a) => a.pid === pid);
const decide = (id: string, body: Record<string, unknown>) => api<Approval & { error?: { code: string } }>('POST', `/v1/approvals/${id}`, body);

describe('capability checks', () => {
  it('refuses a call no grant covers with EPERM naming the capability needed; the process carries on', async () => {
    const key = crypto.randomUUID();
    const { pid } = await spawn({ name: 'p', task: 't', model: scripted, script: [turn(call('net_fetch', { url: `${env.TEST_SERVER}/sink/${key}` }), call('exit', { code: 0 }))] });
    expect((await runUntil(pid, ['terminated'])).exit?.code).toBe(0);
    const [fetchResult] = await results(pid);
    expect(fetchResult).toMatchObject({ ok: false, error: { code: 'EPERM', details: { needed: 'net:127.0.0.1:GET' } } });
    expect(await hits(key)).toBe(0);
    const audit = await api<{ rows: { action: string; outcome: string; code: string }[] }>('GET', `/v1/audit?pid=${pid}`);
    expect(audit.body.rows).toContainEqual(expect.objectContaining({ action: 'net_fetch', outcome: 'refused', code: 'EPERM' }));
  });

  it('deny wins over allow; a one-shot grant works once; an expired grant does not work', async () => {
    const key = crypto.randomUUID();
    const url = `${env.TEST_SERVER}/sink/${key}`;
    const { pid } = await spawn({
      name: 'p',
      task: 't',
      model: scripted,
      capabilities: ['net:*', { cap: 'net:127.0.0.1:POST', effect: 'deny' }, { cap: 'fs:/once.txt:w', uses: 1 }, { cap: 'fs:/old/**:rw', expires_at: 1 }],
      script: [
        turn(
          call('net_fetch', { url, method: 'POST' }),
          call('fs_write', { path: 'once.txt', content: 'a' }),
          call('fs_write', { path: 'once.txt', content: 'b' }),
          call('fs_write', { path: 'old/x', content: 'x' }),
          call('exit', { code: 0 }),
        ),
      ],
    });
    await runUntil(pid, ['terminated']);
    expect((await results(pid)).map((r) => [r.name, r.ok, r.error?.code])).toEqual([
      ['net_fetch', false, 'EPERM'],
      ['fs_write', true, undefined],
      ['fs_write', false, 'EPERM'],
      ['fs_write', false, 'EPERM'],
      ['exit', true, undefined],
    ]);
    expect(await hits(key)).toBe(0);
    const pcb = await pcbOf(pid);
    expect(pcb.capabilities.find((g) => g.cap === 'fs:/once.txt:w')?.uses).toBe(0);
  });

  it('attenuates on spawn: a child gets at most its parent capabilities, and asking for more is EPERM', async () => {
    const { pid } = await spawn({
      name: 'parent',
      task: 't',
      model: scripted,
      capabilities: ['fs:/**:rw', 'spawn:max=2', { cap: 'net:evil.example:GET', effect: 'deny' }],
      script: [turn(call('spawn', { name: 'greedy', task: 'x', image: 'idle', capabilities: ['net:*'] }), call('spawn', { name: 'modest', task: 'x', image: 'idle', capabilities: ['fs:/tmp/**:r'] }), call('exit', { code: 0 }))],
    });
    await runUntil(pid, ['terminated', 'zombie']);
    const [greedy, modest] = await results(pid);
    expect(greedy).toMatchObject({ ok: false, error: { code: 'EPERM', message: expect.stringMatching(/net:\*/) } });
    expect(modest?.ok).toBe(true);
    const child = await pcbOf(String(modest?.result?.pid));
    expect(child.capabilities).toEqual([
      { cap: 'fs:/tmp/**:r', effect: 'allow' },
      { cap: 'net:evil.example:GET', effect: 'deny' },
    ]);
  });

  it('a modest parent spawns without listing grants: the child inherits what it holds of its image', async () => {
    const { pid } = await spawn({
      name: 'parent',
      task: 't',
      model: scripted,
      capabilities: ['fs:/**:rw', 'spawn:max=2'],
      script: [turn(call('spawn', { name: 'kid', task: 'x', image: 'idle' }), call('spawn', { name: 'worker', task: 'x' }), call('exit', { code: 0 }))],
    });
    await runUntil(pid, ['terminated', 'zombie']);
    const [kid, worker] = await results(pid);
    expect(kid?.ok).toBe(true);
    expect(worker?.ok).toBe(true);
    expect((await pcbOf(String(kid?.result?.pid))).capabilities).toEqual([]);
    expect((await pcbOf(String(worker?.result?.pid))).capabilities).toEqual([
      { cap: 'fs:/**:rw', effect: 'allow' },
      { cap: 'spawn:max=2', effect: 'allow' },
    ]);
  });
});

describe('human approval', () => {
  it('blocks an ask call until approved; an unanswered request expires; "once" runs that call only', async () => {
    const key = crypto.randomUUID();
    const url = `${env.TEST_SERVER}/sink/${key}`;
    const { pid } = await spawn({
      name: 'asker',
      task: 't',
      model: scripted,
      capabilities: [{ cap: 'net:127.0.0.1', effect: 'ask' }],
      script: [turn(call('net_fetch', { url, method: 'POST', body: 'one' })), turn(call('net_fetch', { url, method: 'POST', body: 'one' })), turn(call('exit', { code: 0 }))],
    });
    const waiting = await runUntil(pid, ['waiting']);
    expect(waiting.wait).toMatchObject({ reason: 'approval' });
    const [first] = await pending(pid);
    expect(first).toMatchObject({ syscall: 'net_fetch', capability: 'net:127.0.0.1:POST', status: 'pending', args: { url, method: 'POST', body: 'one' } });
    expect(waiting.wait?.approval_id).toBe(first?.id);
    // The only armed timer is the request's expiry: firing it expires the request, and the call fails.
    expect(await tick(pid)).toBe(true);
    expect((await api<Approval>('GET', `/v1/approvals/${first!.id}`)).body.status).toBe('expired');
    expect((await results(pid))[0]).toMatchObject({ ok: false, error: { code: 'EPERM', message: expect.stringMatching(/expired/) } });
    expect((await decide(first!.id, { decision: 'approve' })).status).toBe(409);
    // The model's next turn asks again: a new request, which an operator approves in time.
    const [second] = await pending(pid);
    expect(second?.id).not.toBe(first?.id);
    const decided = await decide(second!.id, { decision: 'approve', grant: 'once', note: 'fine' });
    expect(decided.body).toMatchObject({ status: 'approved', grant_kind: 'once', note: 'fine' });
    const done = await runUntil(pid, ['terminated']);
    expect(done.exit?.code).toBe(0);
    expect(await hits(key)).toBe(1);
    const audit = await api<{ rows: { kind: string; outcome: string }[] }>('GET', `/v1/audit?pid=${pid}`);
    expect(audit.body.rows.map((r) => r.outcome)).toEqual(expect.arrayContaining(['asked', 'expired', 'approved']));
  });

  it('"always" adds a standing grant; deny returns EPERM; an approval never applies to other arguments', async () => {
    const { pid } = await spawn({
      name: 'writer',
      task: 't',
      model: scripted,
      capabilities: ['fs:/**:r', { cap: 'fs:/**:w', effect: 'ask' }],
      script: [
        turn(call('fs_write', { path: 'report.md', content: 'v1' })),
        turn(call('fs_write', { path: 'report.md', content: 'v2' })),
        turn(call('fs_write', { path: 'other.md', content: 'x' })),
        turn(call('exit', { code: 0 })),
      ],
    });
    await runUntil(pid, ['waiting']);
    let [ask] = await pending(pid);
    expect(ask).toMatchObject({ capability: 'fs:/report.md:w', args: { path: 'report.md', content: 'v1' } });
    // Someone rewrites the stored request to stand for different arguments: the process refuses it.
    await env.DB.prepare('UPDATE approvals SET args_hash = ? WHERE id = ?').bind('f'.repeat(64), ask!.id).run();
    const forged = await decide(ask!.id, { decision: 'approve', grant: 'always' });
    expect(forged.status).toBe(403);
    expect((await pcbOf(pid)).state).toBe('waiting');
    expect((await api('GET', `/v1/processes/${pid}/fs/report.md`)).status).toBe(404);
    // With the true hash (the kernel's rule over the canonical call) the approval goes through.
    await env.DB.prepare('UPDATE approvals SET args_hash = ? WHERE id = ?').bind(await callHash('fs_write', { path: 'report.md', content: 'v1' }), ask!.id).run();
    expect((await decide(ask!.id, { decision: 'approve', grant: 'always' })).status).toBe(200);
    await runUntil(pid, ['waiting', 'terminated']);
    // v2 to the same file ran under the standing grant; another file needs its own approval.
    expect((await api<{ content: string }>('GET', `/v1/processes/${pid}/fs/report.md`)).body.content).toBe('v2');
    [ask] = await pending(pid);
    expect(ask).toMatchObject({ capability: 'fs:/other.md:w' });
    expect((await decide(ask!.id, { decision: 'deny', note: 'not that one' })).body.status).toBe('denied');
    expect((await runUntil(pid, ['terminated'])).exit?.code).toBe(0);
    expect((await api('GET', `/v1/processes/${pid}/fs/other.md`)).status).toBe(404);
    expect((await results(pid)).at(-2)).toMatchObject({ name: 'fs_write', ok: false, error: { code: 'EPERM', message: expect.stringMatching(/not that one/) } });
    expect((await pcbOf(pid)).capabilities).toContainEqual({ cap: 'fs:/report.md:w', effect: 'allow', approved: true });
  });

  it('request_capability asks a human for a grant the process lacks', async () => {
    const key = crypto.randomUUID();
    const url = `${env.TEST_SERVER}/sink/${key}`;
    const { pid } = await spawn({
      name: 'needy',
      task: 't',
      model: scripted,
      script: [turn(call('request_capability', { capability: 'net:127.0.0.1:GET', reason: 'to read the report' })), turn(call('net_fetch', { url })), turn(call('exit', { code: 0 }))],
    });
    await runUntil(pid, ['waiting']);
    const [ask] = await pending(pid);
    expect(ask).toMatchObject({ syscall: 'request_capability', capability: 'net:127.0.0.1:GET' });
    await decide(ask!.id, { decision: 'approve', grant: 'once' });
    expect((await runUntil(pid, ['terminated'])).exit?.code).toBe(0);
    expect(await hits(key)).toBe(1);
    const [granted, fetched] = await results(pid);
    expect(granted).toMatchObject({ ok: true, result: { granted: 'net:127.0.0.1:GET', grant: 'once' } });
    expect(fetched?.ok).toBe(true);
    expect((await eventsOf(pid)).map((e) => e.type)).toContain('capability_granted');
  });
});
