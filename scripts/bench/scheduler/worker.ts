/**
 * The scheduler benchmark's Worker: the kernel unchanged (src/index.ts), plus POST /bench/setup,
 * which applies the D1 schema sent by run.mjs (the project's migrations/*.sql, in order).
 */
import kernel from '../../../src/index.ts';

export { AgentProcess, AuditChain, LlmScheduler } from '../../../src/index.ts';

function statements(sql: string): string[] {
  return sql
    .split('\n')
    .map((l) => l.replace(/--.*$/, ''))
    .join('\n')
    .split(';')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === '/bench/setup' && request.method === 'POST') {
      const stmts = statements(await request.text());
      await env.DB.batch(stmts.map((s) => env.DB.prepare(s)));
      return Response.json({ statements: stmts.length });
    }
    return kernel.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;
