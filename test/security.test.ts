/**
 * Tenants and API authentication, and the tamper-evident audit log.
 */
import { SELF, env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { api, runUntil } from './support/helpers.ts';

type ErrorBody = { error: { code: string; message: string } };
const scripted = { provider: 'scripted', model: 'scripted' };

async function tokenFor(tenant: string, role: 'admin' | 'operator' | 'reader'): Promise<Record<string, string>> {
  const r = await api<{ token: string }>('POST', '/v1/tokens', { tenant, role, name: `${tenant}-${role}` });
  expect(r.status).toBe(201);
  return { authorization: `Bearer ${r.body.token}` };
}

describe('authentication and roles', () => {
  it('401 without a token or with a bad one, for every protected route; failures are audited', async () => {
    for (const [method, path] of [
      ['GET', '/v1/processes'],
      ['POST', '/v1/processes'],
      ['GET', '/v1/audit'],
      ['GET', '/v1/approvals'],
      ['POST', '/v1/tokens'],
    ] as const) {
      const none = await SELF.fetch(`http://agentos.test${path}`, { method, headers: { 'cf-connecting-ip': '198.51.100.1' } });
      expect(none.status, `${method} ${path}`).toBe(401);
      expect(((await none.json()) as ErrorBody).error.code).toBe('EUNAUTH');
    }
    const bad = await api<ErrorBody>('GET', '/v1/processes', undefined, { authorization: 'Bearer aos_000000000000.00000000000000000000000000000000', 'cf-connecting-ip': '198.51.100.1' });
    expect(bad.status).toBe(401);
    expect((await api('GET', '/healthz', undefined, { authorization: '' })).status).toBe(200);
    const audit = await api<{ rows: { kind: string; outcome: string; code: string }[] }>('GET', '/v1/audit?tenant=system&limit=100');
    expect(audit.body.rows.filter((r) => r.kind === 'auth' && r.code === 'EUNAUTH').length).toBeGreaterThanOrEqual(6);
  });

  it('403 when the role is not enough: readers read, operators act, admins manage tokens', async () => {
    const reader = await tokenFor('default', 'reader');
    const operator = await tokenFor('default', 'operator');
    expect((await api('GET', '/v1/processes', undefined, reader)).status).toBe(200);
    const denied = await api<ErrorBody>('POST', '/v1/processes', { name: 'x', task: 'y', model: scripted }, reader);
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe('EPERM');
    expect((await api('POST', '/v1/processes', { name: 'x', task: 'y', model: scripted }, operator)).status).toBe(201);
    expect((await api('POST', '/v1/tokens', { role: 'reader', name: 'n' }, operator)).status).toBe(403);
  });

  it('stores only a hash of each token secret, and a revoked token stops working', async () => {
    const created = await api<{ id: string; token: string }>('POST', '/v1/tokens', { role: 'reader', name: 'short-lived' });
    const secret = created.body.token.split('.')[1] ?? '';
    const row = await env.DB.prepare('SELECT secret_hash FROM tokens WHERE id = ?').bind(created.body.id).first<{ secret_hash: string }>();
    expect(row?.secret_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(row?.secret_hash).not.toContain(secret);
    const auth = { authorization: `Bearer ${created.body.token}` };
    expect((await api('GET', '/v1/processes', undefined, auth)).status).toBe(200);
    expect((await api('DELETE', `/v1/tokens/${created.body.id}`)).status).toBe(200);
    expect((await api('GET', '/v1/processes', undefined, auth)).status).toBe(401);
  });

  it('rate-limits a client after 20 failed attempts, even with a valid token; other clients are unaffected', async () => {
    const ip = { 'cf-connecting-ip': '203.0.113.77' };
    for (let i = 0; i < 20; i++) await api('GET', '/v1/processes', undefined, { ...ip, authorization: 'Bearer wrong' });
    const limited = await api<ErrorBody>('GET', '/v1/processes', undefined, ip);
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('ERATE');
    expect((await api('GET', '/v1/processes', undefined, { 'cf-connecting-ip': '203.0.113.78' })).status).toBe(200);
  });
});

describe('tenant isolation', () => {
  it("no endpoint shows one tenant another tenant's processes, events, files, audit or approvals", async () => {
    const beta = await tokenFor('beta', 'operator');
    const spawned = await api<{ pid: string }>('POST', '/v1/processes', {
      name: 'alpha-secret',
      task: 't',
      model: scripted,
      capabilities: ['fs:/**:rw', { cap: 'net:*', effect: 'ask' }],
      script: [{ tool_calls: [{ name: 'fs_write', args: { path: 'secret.txt', content: 's3cret' } }, { name: 'net_fetch', args: { url: `${env.TEST_SERVER}/echo` } }] }],
    });
    const pid = spawned.body.pid;
    await runUntil(pid, ['waiting']);
    const approvalId = (await api<{ approvals: { id: string }[] }>('GET', '/v1/approvals')).body.approvals.find(() => true)?.id ?? '';
    expect(approvalId).toMatch(/^ap_/);
    for (const [method, path, body] of [
      ['GET', `/v1/processes/${pid}`],
      ['GET', `/v1/processes/${pid}/events`],
      ['GET', `/v1/processes/${pid}/fs/secret.txt`],
      ['POST', `/v1/processes/${pid}/signals`, { signal: 'SIGKILL' }],
      ['DELETE', `/v1/processes/${pid}`],
      ['GET', `/v1/approvals/${approvalId}`],
      ['POST', `/v1/approvals/${approvalId}`, { decision: 'approve' }],
    ] as const) {
      const r = await api<ErrorBody>(method, path, body, beta);
      expect(r.status, `${method} ${path}`).toBe(404);
    }
    const sse = await SELF.fetch(`http://agentos.test/v1/processes/${pid}/events`, { headers: { ...beta, accept: 'text/event-stream' } });
    expect(sse.status).toBe(404);
    expect((await api<{ processes: unknown[] }>('GET', '/v1/processes?limit=500', undefined, beta)).body.processes).toEqual([]);
    expect((await api<{ rows: unknown[] }>('GET', `/v1/audit?pid=${pid}`, undefined, beta)).body.rows).toEqual([]);
    expect((await api<{ approvals: unknown[] }>('GET', '/v1/approvals', undefined, beta)).body.approvals).toEqual([]);
    expect((await api('GET', '/v1/audit?tenant=default', undefined, beta)).status).toBe(403);
    // The owner still sees everything.
    expect((await api<{ content: string }>('GET', `/v1/processes/${pid}/fs/secret.txt`)).body.content).toBe('s3cret');
    expect((await api<{ state: string }>('GET', `/v1/processes/${pid}`)).body.state).toBe('waiting');
  });
});

describe('the tamper-evident audit log', () => {
  it('verifies an intact chain and finds an edited row, a deleted row and a cut-off tail', async () => {
    const gamma = await tokenFor('gamma', 'operator');
    for (let i = 0; i < 3; i++) {
      const r = await api<{ pid: string }>('POST', '/v1/processes', { name: `g${i}`, task: 't', model: scripted, script: [{ tool_calls: [{ name: 'exit', args: { code: 0 } }] }] }, gamma);
      await runUntil(r.body.pid, ['terminated'], 50, gamma);
    }
    const verify = async () => (await api<{ ok: boolean; rows: number; first_broken: { chain_seq: number; reason: string } | null }>('GET', '/v1/audit/verify', undefined, gamma)).body;
    const intact = await verify();
    expect(intact).toMatchObject({ ok: true, first_broken: null });
    expect(intact.rows).toBeGreaterThanOrEqual(12);
    const rows = (await env.DB.prepare("SELECT chain_seq, detail, id FROM audit WHERE tenant = 'gamma' ORDER BY chain_seq").all<{ chain_seq: number; detail: string; id: string }>()).results;

    const target = rows[4]!;
    await env.DB.prepare("UPDATE audit SET detail = ? WHERE tenant = 'gamma' AND chain_seq = ?").bind('{"forged":true}', target.chain_seq).run();
    expect(await verify()).toMatchObject({ ok: false, first_broken: { chain_seq: target.chain_seq, reason: expect.stringMatching(/edited/) } });
    await env.DB.prepare("UPDATE audit SET detail = ? WHERE tenant = 'gamma' AND chain_seq = ?").bind(target.detail, target.chain_seq).run();
    expect((await verify()).ok).toBe(true);

    const saved = await env.DB.prepare("SELECT * FROM audit WHERE tenant = 'gamma' AND chain_seq = 6").first<Record<string, unknown>>();
    await env.DB.prepare("DELETE FROM audit WHERE tenant = 'gamma' AND chain_seq = 6").run();
    expect(await verify()).toMatchObject({ ok: false, first_broken: { chain_seq: 6, reason: expect.stringMatching(/missing/) } });
    const cols = Object.keys(saved ?? {});
    await env.DB.prepare(`INSERT INTO audit (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`).bind(...cols.map((c) => (saved as Record<string, unknown>)[c] ?? null)).run();
    expect((await verify()).ok).toBe(true);

    const last = rows.at(-1)!.chain_seq;
    await env.DB.prepare("DELETE FROM audit WHERE tenant = 'gamma' AND chain_seq >= ?").bind(last - 1).run();
    expect(await verify()).toMatchObject({ ok: false, first_broken: { chain_seq: last - 1, reason: expect.stringMatching(/deleted from the end/) } });
  });
});
