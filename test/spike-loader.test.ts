import { env, runInDurableObject } from 'cloudflare:test';
import { it, expect } from 'vitest';
import { stubOf } from './support/helpers.ts';

const run = async (code: string, limits: { cpuMs?: number; subRequests?: number }) =>
  runInDurableObject(stubOf('spike'), async (_inst, state) => {
    const ex = (state as unknown as { exports: Record<string, (o: { props: unknown }) => Fetcher> }).exports;
    const w = env.LOADER.get(null, () => ({
      compatibilityDate: '2026-01-01',
      mainModule: 'main.js',
      modules: { 'main.js': `import { WorkerEntrypoint } from 'cloudflare:workers';
export class Tool extends WorkerEntrypoint { async run() { ${code} } }
export default { fetch() { return new Response('x'); } }` },
      env: {},
      globalOutbound: ex.SpikeEgress!({ props: { pid: 'p1' } }),
      limits,
    }));
    const t0 = Date.now();
    try {
      const r = await (w.getEntrypoint('Tool') as unknown as { run(): Promise<unknown> }).run();
      return { r, ms: Date.now() - t0 };
    } catch (e) {
      return { err: String(e), ms: Date.now() - t0 };
    }
  });

it('cpu', async () => {
  console.log('cpu', JSON.stringify(await run('let x=0; for (let i=0;i<3e9;i++) x+=i; return x;', { cpuMs: 20 })));
}, 60000);
it('subrequests', async () => {
  console.log('sub', JSON.stringify(await run('const out=[]; for (let i=0;i<8;i++) { try { out.push(await (await fetch("http://a.test/"+i)).text()) } catch(e) { out.push(String(e)) } } return out;', { subRequests: 3 })));
}, 60000);
it('memory', async () => {
  console.log('mem', JSON.stringify(await run('const a=[]; for (let i=0;i<200;i++) a.push(new Float64Array(2**20).fill(i)); return a.length;', {})));
  console.log('mem2', JSON.stringify(await run('return 1', {})));
}, 60000);
