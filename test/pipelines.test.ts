/**
 * Pipelines end to end in the Workers runtime: the API starts a Workflow instance, the instance
 * spawns real processes, their exits come back as Workflow events. Nothing sleeps: the tests wait on
 * the engine through Workflows introspection (`waitForStepResult`, `waitForStatus`), fire process
 * alarms explicitly (`tick`), and disable the engine's sleeps (retry backoff).
 */
import { env, introspectWorkflow } from 'cloudflare:test';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { api, pcbOf, tick } from './support/helpers.ts';

type Task = { item: number; attempt: number; pid: string; status: string; exit_code: string | null; result: unknown; error: { code: string; message: string } | null };
type View = {
  id: string;
  status: string;
  error: { code: string; message: string } | null;
  stages: { name: string; status: string; items: number | null; approval_id: string | null; result: unknown; error: { code: string; message: string } | null; tasks: Task[] }[];
};

type Introspector = Awaited<ReturnType<typeof introspectWorkflow>>;
type Instance = Awaited<ReturnType<Introspector['get']>>[number];

let introspector: Introspector;
beforeEach(async () => {
  introspector = await introspectWorkflow(env.PIPELINES);
  await introspector.modifyAll(async (m) => {
    await m.disableSleeps();
  });
});
afterEach(async () => {
  await introspector.dispose();
});

/** A scripted stage: exits 0 with `result` (a template: {{item}}, {{stages.x.result}} …). */
const exits = (result: string) => [{ tool_calls: [{ name: 'exit', args: { code: 0, result } }] }];

async function start(body: unknown): Promise<{ id: string; instance: Instance }> {
  const r = await api<{ id: string }>('POST', '/v1/pipelines', body);
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  const instances = await introspector.get();
  const instance = instances.at(-1);
  if (!instance) throw new Error('no Workflow instance was created');
  return { id: r.body.id, instance };
}

const view = async (id: string, headers: Record<string, string> = {}) => (await api<View>('GET', `/v1/pipelines/${id}`, undefined, headers)).body;

/** Wait for a task's spawn step, then run its process to its end. Returns the pid. */
async function runTask(instance: Instance, stage: string, item = 0, attempt = 1): Promise<string> {
  const spawned = (await instance.waitForStepResult({ name: `spawn:${stage}:${item}:${attempt}` })) as { pid: string };
  for (let i = 0; i < 20 && (await pcbOf(spawned.pid)).state !== 'terminated'; i++) await tick(spawned.pid);
  return spawned.pid;
}

describe('pipelines', () => {
  it('runs a 3-stage pipeline end to end, each stage reading the one before', async () => {
    const { id, instance } = await start({
      input: { topic: 'tides' },
      spec: {
        stages: [
          { name: 'research', task: 'research {{input.topic}}', script: exits('notes on {{input.topic}}') },
          { name: 'draft', needs: ['research'], task: 'draft from: {{stages.research.result}}', script: exits('draft({{stages.research.result}})') },
          { name: 'publish', needs: ['draft'], task: 'publish {{stages.draft.result}}', script: exits('published {{stages.draft.result}}') },
        ],
      },
    });
    const research = await runTask(instance, 'research');
    await runTask(instance, 'draft');
    await runTask(instance, 'publish');
    await instance.waitForStatus('complete');
    const v = await view(id);
    expect(v.status).toBe('complete');
    expect(v.stages.map((s) => [s.name, s.status])).toEqual([
      ['research', 'complete'],
      ['draft', 'complete'],
      ['publish', 'complete'],
    ]);
    expect(v.stages[2]?.result).toBe('published draft(notes on tides)');
    expect((await pcbOf(research)).task).toBe('research tides');
    // One process per stage, each spawned once.
    expect(v.stages.map((s) => s.tasks.length)).toEqual([1, 1, 1]);
  });
});
