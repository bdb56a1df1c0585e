/**
 * Why the kernel enforces its own tool budgets: locally (workerd under vitest / wrangler dev) the
 * Worker Loader accepts `limits` but does not enforce them. If these tests start failing, workerd
 * has begun enforcing them locally, and docs/tools.md should say so.
 */
import { env, runInDurableObject } from 'cloudflare:test';
import { expect, it } from 'vitest';
import type { AgentProcess } from '../durable/agent-process.ts';
import { stubOf } from './support/helpers.ts';

async function load(code: string, limits: { cpuMs?: number; subRequests?: number }): Promise<unknown> {
  return runInDurableObject(stubOf('platform-limits'), async (_i: AgentProcess, state) => {
    const exports = (state as unknown as { exports: Record<string, (o: { props: unknown }) => Fetcher> }).exports;
    const egress = exports.ToolEgress;
    if (!egress) throw new Error('no ToolEgress export');
    const w = env.LOADER.get(null, () => ({
      compatibilityDate: '2026-01-01',
      mainModule: 'm.js',
      modules: { 'm.js': `import { WorkerEntrypoint } from 'cloudflare:workers';\nexport class T extends WorkerEntrypoint { async run() { ${code} } }\nexport default { fetch() { return new Response(''); } };` },
      env: {},
      globalOutbound: egress({ props: { pid: 'platform-limits', grants: [{ cap: 'net:*', effect: 'allow' }] } }),
      limits,
    }));
    return (w.getEntrypoint('T') as unknown as { run(): Promise<unknown> }).run();
  });
}

it('cpuMs is not enforced locally: a loop far past 1 ms of CPU completes', async () => {
  expect(await load('let x = 0; for (let i = 0; i < 2e8; i++) x += i & 1; return x;', { cpuMs: 1 })).toBe(1e8);
});

it('subRequests is not enforced locally: with a limit of 3, all 8 fetches reach the egress proxy', async () => {
  const code = `const out = []; for (let i = 0; i < 8; i++) { try { const r = await fetch('http://x.test/'); out.push(r.headers.get('x-agentos-refused') + ': ' + (await r.text())); } catch (e) { out.push(String(e.message)); } } return out;`;
  // The proxy refuses each one itself (no tool call is in flight): all 8 got that far.
  const r = (await load(code, { subRequests: 3 })) as string[];
  expect(r).toEqual(Array.from({ length: 8 }, () => 'EPERM: this tool call is no longer in flight'));
});
