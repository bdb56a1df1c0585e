/**
 * Regressions for bugs a review found: each of these once let a process or a tenant do more than
 * it was allowed to.
 */
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { api, childrenOf, eventsOf, pcbOf, runUntil, spawn } from './support/helpers.ts';

const scripted = { provider: 'scripted', model: 'scripted' };
const call = (name: string, args: Record<string, unknown> = {}) => ({ tool_calls: [{ name, args }] });
const hits = async (key: string) => ((await (await fetch(`${env.TEST_SERVER}/count/${key}`)).json()) as { count: number }).count;

describe('fixed escalations', () => {
  it("a tenant's own admin cannot act on another tenant", async () => {
    const made = await api<{ token: string }>('POST', '/v1/tokens', { tenant: 'acme', role: 'admin', name: 'acme-admin' });
    const acme = { authorization: `Bearer ${made.body.token}` };
    expect((await api('POST', '/v1/tokens', { tenant: 'default', role: 'admin', name: 'x' }, acme)).status).toBe(403);
    expect((await api('GET', '/v1/audit?tenant=default', undefined, acme)).status).toBe(403);
    expect((await api('POST', '/v1/tokens', { role: 'reader', name: 'own' }, acme)).status).toBe(201);
  });

  it("a child's quotas never exceed what its parent has left", async () => {
    const { pid } = await spawn({ name: 'p', task: 't', model: scripted, quotas: { max_steps: 3, max_tokens: 5000 }, script: [call('spawn', { name: 'kid', task: 'x', image: 'idle' }), call('exit', { code: 0 })] });
    await runUntil(pid, ['terminated', 'zombie']);
    const kid = (await childrenOf(pid))[0]!;
    const child = await pcbOf(kid);
    expect(child.quotas.max_steps).toBeLessThanOrEqual(2);
    expect(child.quotas.max_tokens).toBeLessThan(5000);
  });

  it('a redirect to a host the process may not reach is not followed', async () => {
    const key = crypto.randomUUID();
    const target = `http://localhost:${new URL(env.TEST_SERVER).port}/sink/${key}`;
    const { pid } = await spawn({
      name: 'r',
      task: 't',
      model: scripted,
      capabilities: ['net:127.0.0.1:GET', { cap: 'net:localhost', effect: 'deny' }],
      script: [call('net_fetch', { url: `${env.TEST_SERVER}/redirect?to=${encodeURIComponent(target)}` }), call('exit', { code: 0 })],
    });
    await runUntil(pid, ['terminated']);
    expect(await hits(key)).toBe(0);
    const r = (await eventsOf(pid)).find((e) => e.type === 'syscall' && e.data.name === 'net_fetch');
    expect(r?.data).toMatchObject({ ok: true, result: { status: 302, redirect: expect.stringMatching(/not followed/) } });
  });

  it('net_fetch save_to needs the file capability too', async () => {
    const { pid } = await spawn({
      name: 's',
      task: 't',
      model: scripted,
      capabilities: ['net:127.0.0.1', 'fs:/**:r', { cap: 'fs:/**:w', effect: 'deny' }],
      script: [call('net_fetch', { url: `${env.TEST_SERVER}/echo`, save_to: 'x.txt' }), call('exit', { code: 0 })],
    });
    await runUntil(pid, ['terminated']);
    const r = (await eventsOf(pid)).find((e) => e.type === 'syscall' && e.data.name === 'net_fetch');
    expect(r?.data).toMatchObject({ ok: false, error: { code: 'EPERM', details: { needed: 'fs:/x.txt:w' } } });
    expect((await api('GET', `/v1/processes/${pid}/fs/x.txt`)).status).toBe(404);
  });
});
