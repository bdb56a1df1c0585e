/**
 * The scheduler benchmark's Worker: the kernel unchanged (worker/index.ts), plus POST /bench/setup,
 * which applies the D1 schema sent by run.mjs (the project's migrations/*.sql, in order).
 */
import kernel from '../../../worker/index.ts';
import { applySchema } from '../schema.ts';

export { AgentProcess, AuditChain, LlmScheduler } from '../../../worker/index.ts';

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === '/bench/setup' && request.method === 'POST') {
      return applySchema(env.DB, request);
    }
    return kernel.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;
