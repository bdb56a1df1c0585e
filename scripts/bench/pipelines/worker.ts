/**
 * Pipelines bench Worker (scripts/bench/pipelines/wrangler.toml; driven by run.mjs). Not part of the
 * product: the kernel Worker as it ships, plus
 *   POST /setup          apply the D1 schema (../schema.ts)
 *   GET  /wait?id=       answer when pipeline `id` has ended: its status and the server's timings
 *   GET  /wait?pid=      answer when process `pid` has terminated (the direct arm's wait)
 * Both waits re-read D1 every 2 ms inside the Worker, the same for both arms, so neither arm pays
 * an HTTP round trip per look.
 */
import kernel from '../../../src/index.ts';
import { applySchema } from '../schema.ts';

export { AgentProcess, AuditChain, LlmScheduler, MemoryIndex, PipelineWorkflow, ToolBroker, ToolEgress } from '../../../src/index.ts';

const tick = () => new Promise((r) => setTimeout(r, 2));

async function until<T>(read: () => Promise<T | null>, ms = 600_000): Promise<T | null> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (v !== null || Date.now() > end) return v;
    await tick();
  }
}

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === '/setup') return applySchema(env.DB, request);
    if (url.pathname === '/wait') {
      const id = url.searchParams.get('id');
      const pid = url.searchParams.get('pid');
      if (id) {
        const row = await until(() => env.DB.prepare("SELECT status, created_at, ended_at FROM pipelines WHERE id = ? AND status IN ('complete', 'failed', 'cancelled')").bind(id).first<{ status: string; created_at: number; ended_at: number }>());
        // Each task's process: created → terminated, as the process table records it.
        // (The task's own started_at is its spawn step's start, ended_at its collect step's end.)
        const tasks = await env.DB.prepare(
          'SELECT t.stage, t.item, t.pid, t.started_at, t.ended_at, p.created_at AS spawned_at, p.updated_at AS exited_at FROM pipeline_tasks t JOIN processes p ON p.pid = t.pid WHERE t.pipeline = ? ORDER BY p.created_at',
        )
          .bind(id)
          .all<{ stage: string; item: number; pid: string; started_at: number; ended_at: number; spawned_at: number; exited_at: number }>();
        return Response.json({ ...row, tasks: tasks.results });
      }
      if (pid) {
        const row = await until(() => env.DB.prepare("SELECT state, created_at, updated_at FROM processes WHERE pid = ? AND state = 'terminated'").bind(pid).first<{ state: string; created_at: number; updated_at: number }>());
        return Response.json(row);
      }
    }
    return kernel.fetch(request, env, ctx);
  },
  queue: kernel.queue,
} satisfies ExportedHandler<Env>;
