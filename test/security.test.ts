/**
 * Tenants and API authentication, and the tamper-evident audit log.
 */
import { SELF, env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { api, pcbOf, runUntil, tick } from './support/helpers.ts';
import { SLICE_STEPS } from '../src/process/step.ts';

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

  it('a token verified in the last AUTH_CACHE_MS needs no D1 read; a revocation through this isolate ends it at once', async () => {
    const created = await api<{ id: string; token: string }>('POST', '/v1/tokens', { role: 'reader', name: 'cached' });
    const auth = { authorization: `Bearer ${created.body.token}`, 'cf-connecting-ip': '192.0.2.40' };
    expect((await api('GET', '/v1/processes', undefined, auth)).status).toBe(200);
    // Revoked in D1 behind this isolate's back (as another isolate's DELETE would): the isolate
    // still trusts what it verified a moment ago, for up to AUTH_CACHE_MS (docs/security.md).
    await env.DB.prepare('UPDATE tokens SET revoked_at = 1 WHERE id = ?').bind(created.body.id).run();
    expect((await api('GET', '/v1/processes', undefined, auth)).status).toBe(200);
    // The same token from a client this isolate has not counted is checked against D1.
    expect((await api('GET', '/v1/processes', undefined, { ...auth, 'cf-connecting-ip': '192.0.2.41' })).status).toBe(401);
    await env.DB.prepare('UPDATE tokens SET revoked_at = NULL WHERE id = ?').bind(created.body.id).run();
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
  type Report = { ok: boolean; rows: number; chains: number; first_broken: { chain_seq: number | null; pid: string | null; pid_seq: number | null; reason: string } | null };
  type Row = Record<string, unknown> & { pid_seq: number; detail: string; id: string };
  const rowsOf = async (pid: string) => (await env.DB.prepare('SELECT * FROM audit WHERE pid = ? AND pid_seq IS NOT NULL ORDER BY pid_seq').bind(pid).all<Row>()).results;
  const put = async (row: Row) => {
    const cols = Object.keys(row);
    await env.DB.prepare(`INSERT INTO audit (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`).bind(...cols.map((c) => row[c] ?? null)).run();
  };

  it("each process chains its own records, anchored in the tenant's chain; verify finds an edited row, a deleted row and a cut-off tail in either", async () => {
    const gamma = await tokenFor('gamma', 'operator');
    const pids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await api<{ pid: string }>('POST', '/v1/processes', { name: `g${i}`, task: 't', model: scripted, script: [{ tool_calls: [{ name: 'exit', args: { code: 0 } }] }] }, gamma);
      await runUntil(r.body.pid, ['terminated'], 50, gamma);
      pids.push(r.body.pid);
    }
    const verify = async () => (await api<Report>('GET', '/v1/audit/verify', undefined, gamma)).body;
    const intact = await verify();
    expect(intact).toMatchObject({ ok: true, first_broken: null, chains: 3 });
    expect(intact.rows).toBeGreaterThanOrEqual(12);
    // Every process anchored its head in the tenant's chain when it stopped running.
    const anchors = (await env.DB.prepare("SELECT pid, detail FROM audit WHERE tenant = 'gamma' AND action = 'anchor' AND chain_seq IS NOT NULL").all<{ pid: string; detail: string }>()).results;
    expect(new Set(anchors.map((a) => a.pid))).toEqual(new Set(pids));
    const [p0] = pids as [string];
    const rows = await rowsOf(p0);
    expect(rows.map((r) => r.pid_seq)).toEqual(rows.map((_, i) => i + 1));

    const target = rows[2]!;
    await env.DB.prepare('UPDATE audit SET detail = ? WHERE id = ?').bind('{"forged":true}', target.id).run();
    expect(await verify()).toMatchObject({ ok: false, first_broken: { pid: p0, pid_seq: target.pid_seq, reason: expect.stringMatching(/edited/) } });
    await env.DB.prepare('UPDATE audit SET detail = ? WHERE id = ?').bind(target.detail, target.id).run();
    expect((await verify()).ok).toBe(true);

    await env.DB.prepare('DELETE FROM audit WHERE id = ?').bind(rows[1]!.id).run();
    expect(await verify()).toMatchObject({ ok: false, first_broken: { pid: p0, pid_seq: 2, reason: expect.stringMatching(/missing/) } });
    await put(rows[1]!);
    expect((await verify()).ok).toBe(true);

    // The tail, anchored: the anchor in the tenant's chain still records it.
    const last = rows.at(-1)!;
    await env.DB.prepare('DELETE FROM audit WHERE id = ?').bind(last.id).run();
    expect(await verify()).toMatchObject({ ok: false, first_broken: { pid: p0, reason: expect.stringMatching(/deleted from the end/) } });
    await put(last);
    expect((await verify()).ok).toBe(true);

    // The tenant's chain itself (the anchors): an edited anchor is a broken tenant row.
    const anchorRow = (await env.DB.prepare("SELECT chain_seq, detail FROM audit WHERE tenant = 'gamma' AND action = 'anchor' ORDER BY chain_seq LIMIT 1").first<{ chain_seq: number; detail: string }>())!;
    await env.DB.prepare("UPDATE audit SET detail = ? WHERE tenant = 'gamma' AND chain_seq = ?").bind('{"seq":1,"hash":"0"}', anchorRow.chain_seq).run();
    expect(await verify()).toMatchObject({ ok: false, first_broken: { chain_seq: anchorRow.chain_seq, pid: null, reason: expect.stringMatching(/edited/) } });
    await env.DB.prepare("UPDATE audit SET detail = ? WHERE tenant = 'gamma' AND chain_seq = ?").bind(anchorRow.detail, anchorRow.chain_seq).run();
    expect((await verify()).ok).toBe(true);
  });

  it("finds rows cut from a running process's chain before any anchor covers them, from the head the process keeps", async () => {
    const delta = await tokenFor('delta', 'operator');
    const steps = Array.from({ length: SLICE_STEPS + 20 }, () => ({ tool_calls: [{ name: 'fs_list', args: { path: '/' } }] }));
    const r = await api<{ pid: string }>('POST', '/v1/processes', { name: 'busy', task: 't', model: scripted, capabilities: ['fs:/**:rw'], script: [...steps, { tool_calls: [{ name: 'exit', args: { code: 0 } }] }] }, delta);
    // One slice (SLICE_STEPS steps): delivered to D1, still running, so not anchored yet.
    await tick(r.body.pid);
    expect((await pcbOf(r.body.pid, delta)).state).toBe('ready');
    const rows = await rowsOf(r.body.pid);
    expect(rows.length).toBeGreaterThanOrEqual(16);
    expect((await env.DB.prepare("SELECT COUNT(*) AS n FROM audit WHERE tenant = 'delta' AND action = 'anchor'").first<{ n: number }>())?.n).toBe(0);
    const verify = async () => (await api<Report>('GET', '/v1/audit/verify', undefined, delta)).body;
    expect((await verify()).ok).toBe(true);
    // Cut the tail: D1 alone cannot tell, the process's own head can.
    await env.DB.prepare('DELETE FROM audit WHERE pid = ? AND pid_seq > ?').bind(r.body.pid, rows.length - 3).run();
    expect(await verify()).toMatchObject({ ok: false, first_broken: { pid: r.body.pid, pid_seq: rows.length - 2, reason: expect.stringMatching(/process has delivered/) } });
    for (const row of rows.slice(-3)) await put(row);
    expect((await verify()).ok).toBe(true);
    // It runs to its end and anchors its whole chain.
    await runUntil(r.body.pid, ['terminated'], 50, delta);
    expect((await verify()).ok).toBe(true);
    expect((await env.DB.prepare("SELECT COUNT(*) AS n FROM audit WHERE tenant = 'delta' AND action = 'anchor'").first<{ n: number }>())?.n).toBeGreaterThanOrEqual(1);
  });
});
