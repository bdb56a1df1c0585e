/**
 * The scheduler benchmark's Worker: the kernel unchanged (worker/index.ts), plus POST /bench/setup,
 * which applies the D1 schema sent by run.mjs (the project's migrations/*.sql, in order), and
 * GET /bench/tickets?shard=<pool>#<n>, a shard's ticket rows (grant, reported send, release, tokens),
 * which run.mjs polls to line each grant up with what the fake provider saw.
 */
import kernel, { LlmScheduler as KernelScheduler } from '../../../worker/index.ts';
import { applySchema } from '../schema.ts';

export { AgentProcess, AuditChain } from '../../../worker/index.ts';

/** The kernel's scheduler object with one read-only diagnostic method for the benchmark. */
export class LlmScheduler extends KernelScheduler {
  async benchTickets(): Promise<Record<string, SqlStorageValue>[]> {
    return this.ctx.storage.sql.exec('SELECT id, state, est_tokens, charged, used, enqueued_at, granted_at, done_at, sent_at FROM tickets').toArray();
  }
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === '/bench/setup' && request.method === 'POST') {
      return applySchema(env.DB, request);
    }
    if (url.pathname === '/bench/tickets') {
      const stub = env.SCHEDULER.get(env.SCHEDULER.idFromName(url.searchParams.get('shard') ?? '')) as unknown as DurableObjectStub<LlmScheduler>;
      return Response.json(await stub.benchTickets());
    }
    return kernel.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;
