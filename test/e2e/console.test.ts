/**
 * The web console in a real Chromium against the real kernel under `wrangler dev` (one kernel for
 * the e2e project, test/e2e/kernel-setup.ts): sign in, spawn from the console, watch the events
 * arrive live, approve the call it waits on and see it finish, and a reader's buttons disabled.
 * Screenshots at 1280 px and at phone width land in test-artifacts/console/ (git-ignored).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFakeLlm } from '../support/fake-llm.ts';
import { DESKTOP, HAVE_CHROMIUM, PHONE, launch, shot } from './browser.ts';
import { api, kernel } from './support.ts';

const { base, token } = kernel();

/** An API call as the bootstrap admin that must succeed; its JSON body. */
async function must<T>(method: string, route: string, body?: unknown): Promise<T> {
  const r = await api<T>(method, route, body);
  if (r.status >= 300) throw new Error(`${method} ${route}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** A process whose first call, fs_write, waits for a human (the grant's effect is ask). */
const NEEDS_APPROVAL = {
  capabilities: [{ cap: 'fs:/**:rw', effect: 'ask' }],
  script: [{ tool_calls: [{ name: 'fs_write', args: { path: 'note.txt', content: 'approved by a human' } }] }, { text: 'done' }],
};

/** Wait for what a page shows, as long as a live update may take under load. */
const poll = <T>(read: () => Promise<T> | T) => expect.poll(read, { timeout: 20_000, interval: 100 });

async function signIn(page: Page, secret: string): Promise<void> {
  await page.goto(`${base}/console/`);
  await page.getByLabel('API token').fill(secret);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Processes', level: 1 }).waitFor();
}

describe.skipIf(!HAVE_CHROMIUM)('the web console in Chromium', () => {
  let browser: Awaited<ReturnType<typeof launch>>;
  beforeAll(async () => {
    browser = await launch(DESKTOP);
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('is served at /console/ by the same Worker; the token is not in any URL', async () => {
    const { page } = browser;
    const seen: string[] = [];
    page.on('request', (r) => seen.push(r.url()));
    await page.goto(`${base}/console`);
    expect(new URL(page.url()).pathname).toBe('/console/');
    await shot(page, 'login-1280');
    await page.getByRole('button', { name: 'Sign in' }).click();
    // The empty required field stops the form: no call was made.
    expect(seen.some((u) => u.includes('/v1/'))).toBe(false);
    await page.getByLabel('API token').fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await poll(() => page.getByRole('alert').textContent()).toMatch(/EUNAUTH/);
    // By keyboard: the field is labelled, Enter submits, and the navigation is reachable with Tab.
    await page.getByLabel('API token').fill(token);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Processes', level: 1 }).waitFor();
    await poll(() => page.getByTestId('whoami').textContent()).toMatch(/default · admin/);
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    expect(await page.locator(':focus').textContent()).toBe('Processes');
    expect(seen.every((u) => !u.includes(token))).toBe(true);
    expect(await page.evaluate("sessionStorage.getItem('agentos.token')")).toBe(token);
  });

  it('shows the process table live: a process spawned elsewhere appears without a reload', async () => {
    const { page } = browser;
    await poll(() => page.getByTestId('ps-live').textContent()).toBe('live');
    const { pid } = await must<{ pid: string }>('POST', '/v1/processes', { name: 'from-the-api', task: 'say hi', script: [{ text: 'hi' }] });
    await page.locator(`tr[data-pid="${pid}"]`).waitFor();
    await poll(() => page.locator(`tr[data-pid="${pid}"] .badge`).textContent()).toBe('terminated');
    await page.getByRole('radio', { name: 'tree' }).check();
    await page.getByRole('tree', { name: 'Process tree' }).getByRole('link', { name: 'from-the-api' }).first().waitFor();
    await page.getByRole('radio', { name: 'table' }).check();
  });

  it('spawns from the console, streams its events live, and finishes once its call is approved', async () => {
    const { page, context } = browser;
    await page.getByText('Spawn a process').click();
    await page.getByLabel('Name', { exact: true }).fill('needs-approval');
    await page.getByLabel('Task', { exact: true }).fill('write a note, with permission');
    await page.getByText('Script and capabilities (JSON, optional)').click();
    await page.getByLabel('Script for the scripted provider').fill(JSON.stringify(NEEDS_APPROVAL.script));
    await page.getByLabel('Capabilities', { exact: true }).fill(JSON.stringify(NEEDS_APPROVAL.capabilities));
    await page.getByRole('button', { name: 'Spawn', exact: true }).click();
    const link = page.getByRole('status').getByRole('link', { name: /needs-approval/ });
    await link.click();
    const pid = decodeURIComponent(new URL(page.url()).hash.split('/')[2] ?? '');
    expect(pid).toMatch(/^p[0-9a-z]{20}$/);

    // The log streams: the request for approval arrives while this page is open.
    await page.locator('[data-testid="events"] li[data-type="approval_requested"]').waitFor();
    await poll(() => page.getByTestId('pcb-state').textContent()).toMatch(/waiting for approval/);
    await shot(page, 'process-waiting-1280');

    // Another tab (signed in on its own: the token lives in each tab's sessionStorage): the inbox
    // shows the exact call and the capability it needs.
    const inbox = await context.newPage();
    await signIn(inbox, token);
    await inbox.getByRole('link', { name: 'Approvals' }).click();
    const card = inbox.locator('article.approval', { has: inbox.getByRole('link', { name: pid }) });
    await card.waitFor();
    expect(await card.getByRole('heading', { level: 2 }).textContent()).toMatch(/fs_write/);
    expect(await card.getByTestId('capability').textContent()).toMatch(/fs:/);
    expect(JSON.parse((await card.getByLabel('arguments of fs_write').textContent()) ?? '')).toEqual({ path: 'note.txt', content: 'approved by a human' });
    await shot(inbox, 'approvals-1280');
    await card.getByRole('button', { name: 'Approve once' }).click();
    await card.waitFor({ state: 'detached' });
    await inbox.close();

    // Back on the process page, never reloaded: the rest of the run streams in and it exits 0.
    await page.locator('[data-testid="events"] li[data-type="exit"]').waitFor();
    await poll(() => page.getByTestId('exit').textContent()).toMatch(/Exit code 0/);
    await page.getByRole('button', { name: 'note.txt' }).click();
    await poll(() => page.getByLabel('contents of /note.txt').textContent()).toBe('approved by a human');
    await shot(page, 'process-1280');
    await page.setViewportSize(PHONE);
    await shot(page, 'process-phone');
    await page.setViewportSize(DESKTOP);
  });

  it('verifies the audit chain, and draws the scheduler pools', async () => {
    const { page } = browser;
    // A scheduled pool with grants in all three priority classes: processes on an OpenAI-compatible
    // model served by the fake LLM on loopback ("*" in SCHEDULER_POOLS schedules every network pool).
    const llm = createFakeLlm();
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (!llm.handle(req, res, Buffer.concat(chunks).toString('utf8'))) res.writeHead(404).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const llmBase = `http://127.0.0.1:${(server.address() as AddressInfo).port}/llm`;
    const model = `console-${Date.now().toString(36)}`;
    const answer = { body: { id: 'c', object: 'chat.completion', created: 1, model, choices: [{ index: 0, message: { role: 'assistant', content: 'done' }, finish_reason: 'stop' }], usage: { prompt_tokens: 50, completion_tokens: 5, total_tokens: 55 } } };
    await fetch(`${llmBase}/scenario`, { method: 'POST', body: JSON.stringify({ model, responses: [answer, answer, answer] }) });
    try {
      const pids = await Promise.all(
        [10, 50, 90].map(async (priority) => (await must<{ pid: string }>('POST', '/v1/processes', { name: `pool-${priority}`, task: 'say done', priority, model: { provider: 'openai', model, base_url: `${llmBase}/openai/v1` } })).pid),
      );
      for (const pid of pids) await poll(async () => (await must<{ state: string }>('GET', `/v1/processes/${pid}`)).state).toBe('terminated');
    } finally {
      server.close();
    }
    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByRole('button', { name: 'Verify the hash chain' }).click();
    await poll(() => page.getByTestId('verify').textContent()).toMatch(/The chain verifies/);
    await shot(page, 'audit-1280');
    await page.getByRole('link', { name: 'Scheduler' }).click();
    const pool = page.locator('section.card', { has: page.getByRole('heading', { name: new RegExp(`^openai:${model}@`) }) });
    await pool.waitFor();
    await poll(() => pool.getByRole('row', { name: /^high/ }).getByRole('cell').first().textContent()).toBe('1');
    for (const cls of ['normal', 'low']) expect(await pool.getByRole('row', { name: new RegExp(`^${cls}`) }).getByRole('cell').first().textContent()).toBe('1');
    expect(await pool.locator('canvas').count()).toBeGreaterThanOrEqual(2);
    await shot(page, 'scheduler-1280');
    await page.getByRole('link', { name: 'Processes' }).click();
    await poll(() => page.getByTestId('ps-live').textContent()).toBe('live');
    await page.locator('table.ps tbody tr').first().waitFor();
    // Tokens per minute by process: the pool's three processes just spent 55 tokens each.
    const tpm = page.getByRole('region', { name: /Tokens per minute, by process/ });
    await poll(() => tpm.getByRole('img').getAttribute('aria-label')).toMatch(/pool-10 55\b/);
    await shot(page, 'processes-1280');
    await page.setViewportSize(PHONE);
    await shot(page, 'processes-phone');
    await page.setViewportSize(DESKTOP);
  });

  it("a reader token sees everything and every action button is disabled", async () => {
    const reader = await must<{ token: string }>('POST', '/v1/tokens', { role: 'reader', name: 'console-e2e-reader' });
    const { pid } = await must<{ pid: string }>('POST', '/v1/processes', { name: 'reader-sees-me', task: 'wait for a human', ...NEEDS_APPROVAL });
    const r = await launch(DESKTOP);
    try {
      const { page } = r;
      await signIn(page, reader.token);
      await poll(() => page.getByTestId('whoami').textContent()).toMatch(/reader/);
      await page.locator(`tr[data-pid="${pid}"]`).waitFor();
      await page.getByText('Spawn a process').click();
      expect(await page.getByRole('button', { name: 'Spawn', exact: true }).isDisabled()).toBe(true);
      await page.locator(`tr[data-pid="${pid}"] a`).first().click();
      await page.locator('[data-testid="events"] li[data-type="approval_requested"]').waitFor();
      for (const name of ['Stop (SIGSTOP)', 'Terminate (SIGTERM)', 'Kill (SIGKILL)', 'Send', 'Remove process']) {
        expect(await page.getByRole('button', { name }).isDisabled(), name).toBe(true);
      }
      await page.getByRole('link', { name: 'Approvals' }).click();
      const card = page.locator('article.approval', { has: page.getByRole('link', { name: pid }) });
      await card.waitFor();
      for (const name of ['Approve once', 'Approve always', 'Deny']) expect(await card.getByRole('button', { name }).isDisabled(), name).toBe(true);
      await shot(page, 'approvals-reader-1280');
      // Reading is not acting: the verify button works for a reader.
      await page.getByRole('link', { name: 'Audit' }).click();
      await page.getByRole('button', { name: 'Verify the hash chain' }).click();
      await poll(() => page.getByTestId('verify').textContent()).toMatch(/verifies/);
    } finally {
      await r.close();
    }
  });
});
