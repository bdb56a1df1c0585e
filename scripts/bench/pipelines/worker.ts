/**
 * Pipelines bench Worker (scripts/bench/pipelines/wrangler.toml; driven by run.mjs). Not part of the
 * product: the kernel Worker as it ships, plus
 *   POST /setup          apply the D1 schema (../schema.ts)
 *   GET  /wait?id=       answer when pipeline `id` has ended: its status and the server's timings
 *   GET  /wait?pid=      answer when process `pid` has terminated (the direct arm's wait)
 *   POST /floor          start a FloorWorkflow run ({ items, concurrency, work_ms }) → { id }
 *   GET  /wait?floor=    answer when that run has ended
 * The waits re-read D1 every 2 ms inside the Worker, the same for every arm, so no arm pays an HTTP
 * round trip per look.
 *
 * The engine floor: FloorWorkflow takes the shape of a pipeline's run with nothing of the kernel in
 * it. Per item the same engine calls as a pipeline stage (a spawn step.do, a waitForEvent for
 * `exit-…`, a collect step.do beside the next item); per run the same start and end steps (start
 * beside the first items), the end writing one D1 row
 * (as pipeline:end does) that /wait reads. The event is sent by a Durable Object (FloorExit) through
 * workflows/notify.ts, the function and the kind of place a process's outbox sends its exit event
 * from, work_ms after the spawn step's call, without a process, a D1 write or an audit record.
 */
import { DurableObject, WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from 'cloudflare:workers';
import kernel from '../../../worker/index.ts';
import { notifyPipeline } from '../../../workflows/notify.ts';
import { applySchema } from '../schema.ts';

export { AgentProcess, AuditChain, LlmScheduler, MemoryIndex, PipelineWorkflow, ToolBroker, ToolEgress } from '../../../worker/index.ts';

type BenchEnv = Env & { readonly FLOOR: Workflow<FloorParams>; readonly FLOOR_EXIT: DurableObjectNamespace<FloorExit> };
interface FloorParams {
  readonly items: number;
  readonly concurrency: number;
  readonly work_ms: number;
}

const tick = () => new Promise((r) => setTimeout(r, 2));

async function until<T>(read: () => Promise<T | null>, ms = 600_000): Promise<T | null> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (v !== null || Date.now() > end) return v;
    await tick();
  }
}

/** Stands in for a process: asked to "spawn", it sends the exit event work_ms later, from a Durable Object. */
export class FloorExit extends DurableObject<BenchEnv> {
  exitSoon(instance: string, event: string, workMs: number): null {
    const started = Date.now();
    this.ctx.waitUntil(
      (async () => {
        if (workMs > 0) await new Promise((r) => setTimeout(r, workMs));
        // Its own time (asked → sending), as a process's is spawned → terminated: the ideal's unit.
        await notifyPipeline(this.env.FLOOR, { pipeline: instance, event, pid: '', code: 0, result: { ms: Date.now() - started } });
      })(),
    );
    return null;
  }
}

export class FloorWorkflow extends WorkflowEntrypoint<BenchEnv, FloorParams> {
  override async run(event: Readonly<WorkflowEvent<FloorParams>>, step: WorkflowStep): Promise<null> {
    const { items, concurrency, work_ms } = event.payload;
    const id = event.instanceId;
    const start = step.do('pipeline:start', async () => null);
    let next = 0;
    // As a pipeline's item whose result came with its event: its collect step runs beside what
    // follows, and the run's end waits for it.
    const collects: Promise<unknown>[] = [];
    let ownMs = 0;
    const lane = async (): Promise<void> => {
      for (let i = next++; i < items; i = next++) {
        await step.do(`spawn:${i}`, async () => this.env.FLOOR_EXIT.getByName(`${id}/${i}`).exitSoon(id, `exit-${id}-${i}`, work_ms));
        const heard = await step.waitForEvent<{ result?: { ms?: number } }>(`exit:${i}`, { type: `exit-${id}-${i}`, timeout: '10 minutes' });
        ownMs += heard.payload.result?.ms ?? 0;
        collects.push(step.do(`collect:${i}`, async () => null));
      }
    };
    await Promise.all([start, ...Array.from({ length: Math.min(concurrency, items) }, lane)]);
    await Promise.all(collects);
    await step.do('pipeline:end', async () => {
      await this.env.DB.prepare('INSERT INTO bench_floor (id, ended_at, own_ms) VALUES (?, ?, ?)').bind(id, Date.now(), ownMs).run();
      return null;
    });
    return null;
  }
}

export default {
  async fetch(request: Request, env: BenchEnv, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === '/setup') {
      const r = await applySchema(env.DB, request);
      await env.DB.prepare('CREATE TABLE IF NOT EXISTS bench_floor (id TEXT PRIMARY KEY, ended_at INTEGER NOT NULL, own_ms INTEGER NOT NULL)').run();
      return r;
    }
    if (url.pathname === '/floor' && request.method === 'POST') {
      const params = (await request.json()) as FloorParams;
      const instance = await env.FLOOR.create({ params });
      return Response.json({ id: instance.id, created_at: Date.now() });
    }
    if (url.pathname === '/wait') {
      const id = url.searchParams.get('id');
      const pid = url.searchParams.get('pid');
      const floor = url.searchParams.get('floor');
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
      if (floor) {
        const row = await until(() => env.DB.prepare('SELECT ended_at, own_ms FROM bench_floor WHERE id = ?').bind(floor).first<{ ended_at: number; own_ms: number }>());
        return Response.json(row);
      }
    }
    return kernel.fetch(request, env, ctx);
  },
  queue: kernel.queue,
} satisfies ExportedHandler<BenchEnv>;
