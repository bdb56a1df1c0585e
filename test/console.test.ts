/**
 * What the web console relies on from the Worker: its files served at /console/ by the assets
 * binding (while every API path still runs the Worker), GET /v1/whoami for the role its buttons
 * follow, and ps as a live stream. The console itself is tested in Chromium (test/browser/).
 */
import { SELF, env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { ADMIN, api, spawn } from './support/helpers.ts';

const scripted = { provider: 'scripted', model: 'scripted' };

describe('the console is served by the same Worker', () => {
  // The test runner's SELF is the Worker alone, without the assets router in front of it; the
  // routing itself (run_worker_first) is exercised under wrangler dev by the browser tests.
  it('the assets binding holds the built console; /console reaches the Worker, which hands it to the assets', async () => {
    const page = await env.ASSETS.fetch('http://agentos.test/console/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(await page.text()).toMatch(/<script type="module" src="app.js">/);
    const js = await env.ASSETS.fetch('http://agentos.test/console/app.js');
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
    await js.body?.cancel();
    const bare = await SELF.fetch('http://agentos.test/console', { redirect: 'manual' });
    expect([307, 308]).toContain(bare.status);
    expect(new URL(bare.headers.get('location') ?? '', 'http://agentos.test/').pathname).toBe('/console/');
  });
});

describe('GET /v1/whoami', () => {
  it("says the token's tenant and role, never a secret; a bad token is 401", async () => {
    const admin = await api<{ tenant: string; role: string; token_id: string }>('GET', '/v1/whoami');
    expect(admin.body).toEqual({ tenant: 'default', role: 'admin', token_id: 'bootstrap' });
    const created = await api<{ id: string; token: string }>('POST', '/v1/tokens', { role: 'reader', name: 'console-reader' });
    const reader = await api<Record<string, unknown>>('GET', '/v1/whoami', undefined, { authorization: `Bearer ${created.body.token}` });
    expect(reader.body).toEqual({ tenant: 'default', role: 'reader', token_id: created.body.id });
    expect(JSON.stringify(reader.body)).not.toContain(created.body.token.split('.')[1]);
    expect((await api('GET', '/v1/whoami', undefined, { authorization: 'Bearer aos_000000000000.00000000000000000000000000000000' })).status).toBe(401);
    const doc = await api<{ paths: Record<string, { get?: { responses: Record<string, unknown> } }> }>('GET', '/openapi.json');
    expect(doc.body.paths['/v1/whoami']?.get?.responses).toHaveProperty('200');
  });
});

describe('ps, live', () => {
  it('opens with the page as a snapshot, then sends the rows that change and the ones that leave', async () => {
    const first = await spawn({ name: 'feed-a', task: 't', model: scripted, script: [{ text: 'done' }] });
    const res = await SELF.fetch('http://agentos.test/v1/processes?limit=500', { headers: { ...ADMIN, accept: 'text/event-stream' } });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const until = async (re: RegExp) => {
      while (!re.test(text)) {
        const { done, value } = await reader.read();
        if (done) throw new Error(`stream ended before ${re}: ${text.slice(-500)}`);
        text += value;
      }
    };
    await until(/event: snapshot\ndata: .*\n\n/);
    const snapshot = JSON.parse(/event: snapshot\ndata: (.*)\n/.exec(text)![1]!) as { processes: { pid: string }[] };
    expect(snapshot.processes.map((p) => p.pid)).toContain(first.pid);
    // A new process appears without asking again…
    const second = await spawn({ name: 'feed-b', task: 't', model: scripted, script: [{ text: 'done' }] });
    await until(new RegExp(`event: changed\ndata: \\{"pid":"${second.pid}"`));
    // …and a removed one leaves.
    expect((await api('DELETE', `/v1/processes/${first.pid}`)).status).toBe(200);
    await until(new RegExp(`event: removed\ndata: \\{"pid":"${first.pid}"\\}`));
    await reader.cancel();
  });

  it('a reader may watch, and the stream needs a token like any other call', async () => {
    expect((await SELF.fetch('http://agentos.test/v1/processes', { headers: { accept: 'text/event-stream' } })).status).toBe(401);
  });
});
