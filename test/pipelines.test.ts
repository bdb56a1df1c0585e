/**
 * Pipelines end to end in the Workers runtime: the API starts a Workflow instance, the instance
 * spawns real processes, their exits come back as Workflow events. Nothing sleeps: the tests wait on
 * the engine through Workflows introspection (`waitForStepResult`, `waitForStatus`), fire process
 * alarms explicitly (`tick`), and disable the engine's sleeps (retry backoff).
 */
import { env, introspectWorkflow } from 'cloudflare:test';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import researchReview from '../workflows/examples/research-review.json';
import triage from '../workflows/examples/triage.json';
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
    // The run is in the tenant's audit chain, under its id.
    const audit = await api<{ rows: { pid: string; action: string }[] }>('GET', '/v1/audit?limit=1000');
    expect(audit.body.rows.filter((r) => r.pid === id).map((r) => r.action)).toEqual(['pipeline_start', 'pipeline_end']);
  });

  it('fans out over 20 items with at most 5 processes alive, and fans in the results in item order', async () => {
    const items = Array.from({ length: 20 }, (_, i) => `t${i}`);
    const { id, instance } = await start({
      input: { items },
      spec: {
        stages: [
          // Each item sleeps an hour before it exits: it ends only when the test fires its alarm.
          { name: 'work', for_each: 'input.items', concurrency: 5, task: 'work on {{item}} (#{{index}})', script: [{ tool_calls: [{ name: 'sleep', args: { seconds: 3600 } }] }, ...exits('done {{item}}')] },
          { name: 'merge', needs: ['work'], task: 'merge {{stages.work.result}}', script: exits('{{stages.work.result}}') },
        ],
      },
    });
    // Five spawn at once; the sixth waits for a lane.
    for (let i = 0; i < 5; i++) await instance.waitForStepResult({ name: `spawn:work:${i}:1` });
    // Live processes of the stage, read from each process itself (its PCB). A live process's task
    // row is always still running (it is collected after the exit), so those rows are the candidates.
    const liveNow = async () => {
      const { results } = await env.DB.prepare("SELECT pid FROM pipeline_tasks WHERE pipeline = ? AND stage = 'work' AND status = 'running'").bind(id).all<{ pid: string }>();
      const states = await Promise.all(results.map(async (t) => (await pcbOf(t.pid)).state));
      const spawned = (await env.DB.prepare('SELECT COUNT(*) AS n FROM pipeline_tasks WHERE pipeline = ?').bind(id).first<{ n: number }>())?.n ?? 0;
      return { spawned, live: states.filter((s) => s !== 'zombie' && s !== 'terminated').length };
    };
    let most = (await liveNow()).live;
    expect(most).toBe(5);
    expect((await liveNow()).spawned).toBe(5);
    for (let i = 0; i < 20; i++) {
      await runTask(instance, 'work', i);
      const now = await liveNow();
      most = Math.max(most, now.live);
      expect(now.live).toBeLessThanOrEqual(5);
    }
    expect(most).toBe(5);
    await runTask(instance, 'merge');
    await instance.waitForStatus('complete');
    const v = await view(id);
    expect(v.stages[0]?.result).toEqual(items.map((t) => `done ${t}`));
    expect(JSON.parse(v.stages[1]?.result as string)).toEqual(items.map((t) => `done ${t}`));
    expect(v.stages[0]?.tasks.map((t) => t.item)).toEqual(items.map((_, i) => i));
  }, 60_000);

  it('a human gate: approved through /v1/approvals, the pipeline goes on; denied, it fails and later stages are skipped', async () => {
    const spec = {
      stages: [
        { name: 'draft', task: 'draft', script: exits('the draft') },
        { name: 'review', type: 'approval', needs: ['draft'], prompt: 'publish "{{stages.draft.result}}"?', timeout_seconds: 3600 },
        { name: 'publish', needs: ['review', 'draft'], task: 'publish {{stages.draft.result}} ({{stages.review.result.note}})', script: exits('published') },
      ],
    };
    for (const decision of ['approve', 'deny'] as const) {
      const { id, instance } = await start({ spec });
      await runTask(instance, 'draft');
      const opened = (await instance.waitForStepResult({ name: 'gate:review:open' })) as { value: { approval_id: string } };
      const approvalId = opened.value.approval_id;
      const pending = await api<{ approvals: { id: string; pid: string | null; pipeline: string | null; stage: string | null; reason: string }[] }>('GET', '/v1/approvals');
      const gate = pending.body.approvals.find((a) => a.id === approvalId);
      // A gate is no process's: it names its run and stage instead of a pid.
      expect(gate).toMatchObject({ pid: null, pipeline: id, stage: 'review', reason: 'publish "the draft"?' });
      expect((await api<{ pid: string | null; stage: string | null }>('GET', `/v1/approvals/${approvalId}`)).body).toMatchObject({ pid: null, stage: 'review' });
      expect((await view(id)).stages[1]?.status).toBe('waiting');
      const decided = await api<{ status: string }>('POST', `/v1/approvals/${approvalId}`, { decision, note: 'looks right' });
      expect(decided.status).toBe(200);
      expect(decided.body.status).toBe(decision === 'approve' ? 'approved' : 'denied');
      // A second decision is refused.
      expect((await api('POST', `/v1/approvals/${approvalId}`, { decision })).status).toBe(409);
      if (decision === 'approve') {
        const pid = await runTask(instance, 'publish');
        await instance.waitForStatus('complete');
        expect((await pcbOf(pid)).task).toBe('publish the draft (looks right)');
        expect((await view(id)).status).toBe('complete');
      } else {
        await instance.waitForStatus('complete');
        const v = await view(id);
        expect(v.status).toBe('failed');
        expect(v.error?.code).toBe('EPERM');
        expect(v.stages.map((s) => s.status)).toEqual(['complete', 'denied', 'skipped']);
        expect(v.stages[2]?.tasks).toEqual([]);
      }
    }
  });

  it('a failing stage is retried with backoff, then fails with a clear status', async () => {
    const { id, instance } = await start({
      spec: { stages: [{ name: 'flaky', task: 'fail', retries: { limit: 2, delay_seconds: 30 }, script: [{ tool_calls: [{ name: 'exit', args: { code: 3, result: 'broken' } }] }] }] },
    });
    const pids = [await runTask(instance, 'flaky', 0, 1), await runTask(instance, 'flaky', 0, 2), await runTask(instance, 'flaky', 0, 3)];
    expect(new Set(pids).size).toBe(3);
    await instance.waitForStatus('complete');
    const v = await view(id);
    expect(v.status).toBe('failed');
    expect(v.stages[0]?.status).toBe('failed');
    expect(v.stages[0]?.tasks.map((t) => [t.attempt, t.status, t.exit_code])).toEqual([
      [1, 'failed', '3'],
      [2, 'failed', '3'],
      [3, 'failed', '3'],
    ]);
    expect(v.error?.message).toContain('stage "flaky" failed');
    expect(v.error?.message).toContain('exited with 3');
  });

  it('a Workflow restarted in the middle of a stage spawns no second process and completes', async () => {
    const { id, instance } = await start({ spec: { stages: [{ name: 'slow', task: 'work', script: exits('ok') }, { name: 'after', needs: ['slow'], task: 'then', script: exits('then') }] } });
    const first = (await instance.waitForStepResult({ name: 'spawn:slow:0:1' })) as { pid: string };
    await (await env.PIPELINES.get(id)).restart();
    const pid = await runTask(instance, 'slow');
    expect(pid).toBe(first.pid);
    await runTask(instance, 'after');
    await instance.waitForStatus('complete');
    const v = await view(id);
    expect(v.status).toBe('complete');
    expect(v.stages[0]?.tasks.map((t) => t.pid)).toEqual([first.pid]);
    const spawned = await env.DB.prepare('SELECT COUNT(*) AS n FROM processes WHERE name = ?').bind(`${id}/slow`).first<{ n: number }>();
    expect(spawned?.n).toBe(1);
  });

  it('a stage past its timeout_seconds has its process killed and fails with ETIMEDOUT', async () => {
    // The wait for the exit lasts until the deadline (60 s, under the 300 s recheck); forcing it to
    // give up is the engine's timer firing at the deadline.
    await introspector.modifyAll(async (m) => {
      await m.forceEventTimeout({ name: 'exit:nap:0:1:0' });
    });
    const sleeper = [{ tool_calls: [{ name: 'sleep', args: { seconds: 3600 } }] }, ...exits('too late')];
    const { id, instance } = await start({ spec: { stages: [{ name: 'nap', task: 'nap', timeout_seconds: 60, script: sleeper }, { name: 'after', needs: ['nap'], task: 'x', script: exits('x') }] } });
    const { pid } = (await instance.waitForStepResult({ name: 'spawn:nap:0:1' })) as { pid: string };
    expect(await instance.waitForStepResult({ name: 'check:nap:0:1:0' })).toBe('timed_out');
    await instance.waitForStatus('complete');
    const pcb = await pcbOf(pid);
    expect(pcb.state).toBe('terminated');
    expect(pcb.exit?.code).toBe('SIGKILL');
    const v = await view(id);
    expect(v.status).toBe('failed');
    expect(v.error?.code).toBe('ETIMEDOUT');
    expect(v.stages.map((s) => s.status)).toEqual(['failed', 'skipped']);
    expect(v.stages[0]?.tasks.map((t) => [t.status, t.error?.code])).toEqual([['failed', 'ETIMEDOUT']]);
  });

  it('a lost exit event is recovered by re-reading the process', async () => {
    await introspector.modifyAll(async (m) => {
      await m.forceEventTimeout({ name: 'exit:solo:0:1:0' });
    });
    const { id, instance } = await start({ spec: { stages: [{ name: 'solo', task: 'work', script: exits('found anyway') }] } });
    await runTask(instance, 'solo');
    await instance.waitForStepResult({ name: 'check:solo:0:1:0' });
    await instance.waitForStatus('complete');
    expect((await view(id)).stages[0]?.result).toBe('found anyway');
  });

  it('cancel ends every live process of the run and starts no new one', async () => {
    const sleeper = [{ tool_calls: [{ name: 'sleep', args: { seconds: 3600 } }] }, { tool_calls: [{ name: 'exit', args: { code: 0 } }] }];
    const { id, instance } = await start({ input: { xs: [1, 2, 3, 4, 5] }, spec: { stages: [{ name: 'nap', for_each: 'input.xs', concurrency: 3, task: 'nap {{item}}', script: sleeper }] } });
    const pids: string[] = [];
    for (let i = 0; i < 3; i++) pids.push(((await instance.waitForStepResult({ name: `spawn:nap:${i}:1` })) as { pid: string }).pid);
    for (const pid of pids) await tick(pid); // each is asleep now
    const r = await api<View>('POST', `/v1/pipelines/${id}/cancel`);
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('cancelled');
    for (const pid of pids) {
      for (let i = 0; i < 10 && (await pcbOf(pid)).state !== 'terminated'; i++) await tick(pid);
      expect((await pcbOf(pid)).state).toBe('terminated');
    }
    const v = await view(id);
    expect(v.stages[0]?.tasks.length).toBe(3);
    expect(v.stages[0]?.tasks.every((t) => t.status === 'cancelled')).toBe(true);
    expect((await api('POST', `/v1/pipelines/${id}/cancel`)).status).toBe(409);
  });

  it('another tenant sees nothing of a pipeline', async () => {
    const { id } = await start({ spec: { stages: [{ name: 'a', task: 'x', script: exits('x') }] } });
    const other = { authorization: `Bearer ${(await api<{ token: string }>('POST', '/v1/tokens', { tenant: 'other-co', role: 'operator', name: 'o' })).body.token}` };
    expect((await api('GET', `/v1/pipelines/${id}`, undefined, other)).status).toBe(404);
    expect((await api('POST', `/v1/pipelines/${id}/cancel`, undefined, other)).status).toBe(404);
    expect((await api<{ pipelines: unknown[] }>('GET', '/v1/pipelines', undefined, other)).body.pipelines).toEqual([]);
    expect((await api<{ specs: unknown[] }>('GET', '/v1/pipeline-specs', undefined, other)).body.specs).toEqual([]);
    const mine = await api<{ pipelines: { id: string }[] }>('GET', '/v1/pipelines');
    expect(mine.body.pipelines.map((p) => p.id)).toContain(id);
  });

  it('a malformed spec is a 400 with the zod issues, never a 500', async () => {
    const bad: [unknown, string][] = [
      [{ spec: { stages: [] } }, 'stages'],
      [{ spec: { stages: [{ name: 'a', task: 'x', needs: ['b'] }, { name: 'b', task: 'y', needs: ['a'] }] } }, 'cycle'],
      [{ spec: { stages: [{ name: 'a', task: 'x', needs: ['ghost'] }] } }, 'ghost'],
      [{ spec: { stages: [{ name: 'a', task: '{{stages.b.result}}' }, { name: 'b', task: 'y' }] } }, 'does not need'],
      [{ spec: { stages: [{ name: 'a', task: 'hello {{item}}' }] } }, 'for_each'],
      [{ spec: { stages: [{ name: 'a', task: '{{nonsense.x}}' }] } }, 'a path starts with'],
      [{ spec: { stages: [{ name: 'A b', task: 'x' }] } }, 'stage name'],
      [{ spec: { stages: [{ name: 'a', task: 'x', image: 'no-such-image' }] } }, 'unknown image'],
      [{ spec: { stages: [{ name: 'a', type: 'approval' }] } }, 'prompt'],
      [{ spec: { stages: [{ name: 'a', task: 'x' }] }, name: 'both' }, 'exactly one'],
      ['{"spec": ', 'not valid JSON'],
    ];
    for (const [body, needle] of bad) {
      const r = await api<{ error: { code: string; message: string; details?: { issues?: unknown[] } } }>('POST', '/v1/pipelines', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.code).toBe('EINVAL');
      expect(r.body.error.message, JSON.stringify(r.body)).toContain(needle);
      if (typeof body !== 'string') expect(r.body.error.details?.issues?.length).toBeGreaterThan(0);
    }
    const put = await api<{ error: { details: { issues: { path: string[] }[] } } }>('PUT', '/v1/pipeline-specs/broken', { stages: [{ name: 'a', task: 'x', needs: ['a'] }] });
    expect(put.status).toBe(400);
    expect(put.body.error.details.issues[0]?.path).toEqual(['stages', '0', 'needs', '0']);
  });

  it('a named spec runs by name, and a webhook route starts it with the payload as input', async () => {
    const stored = await api<{ version: number }>('PUT', '/v1/pipeline-specs/greet', { stages: [{ name: 'hello', task: 'greet {{input.who}}', script: exits('hello {{input.who}}') }] });
    expect(stored.status).toBe(200);
    expect(stored.body.version).toBe(1);
    expect((await api<{ version: number }>('PUT', '/v1/pipeline-specs/greet', { stages: [{ name: 'hello', task: 'greet {{input.who}}', script: exits('hello {{input.who}}') }] })).body.version).toBe(2);
    expect((await api('POST', '/v1/pipelines', { name: 'nope', input: {} })).status).toBe(404);
    const hook = await api('POST', '/v1/hooks', { name: 'greeter', action: 'pipeline', pipeline: 'greet' });
    expect(hook.status).toBe(201);
    const fired = await api<{ pipeline: string }>('POST', '/v1/hooks/greeter', { who: 'ada' }, { 'x-agentos-delivery': 'd-1' });
    expect(fired.status).toBe(202);
    // The same delivery starts the same run, once.
    expect((await api<{ pipeline: string }>('POST', '/v1/hooks/greeter', { who: 'ada' }, { 'x-agentos-delivery': 'd-1' })).body.pipeline).toBe(fired.body.pipeline);
    const [instance] = await introspector.get();
    if (!instance) throw new Error('no instance');
    const pid = await runTask(instance, 'hello');
    await instance.waitForStatus('complete');
    const v = await view(fired.body.pipeline);
    expect(v.stages[0]?.result).toBe('hello ada');
    expect((await pcbOf(pid)).task).toBe('greet ada');
  });

  it('ships two example pipelines that run on the scripted model as documented', async () => {
    {
      const { id, instance } = await start(researchReview);
      await runTask(instance, 'research');
      for (let i = 0; i < 3; i++) await runTask(instance, 'write', i);
      await runTask(instance, 'edit');
      const opened = (await instance.waitForStepResult({ name: 'gate:review:open' })) as { value: { approval_id: string } };
      expect((await api('POST', `/v1/approvals/${opened.value.approval_id}`, { decision: 'approve', note: 'ship it' })).status).toBe(200);
      await runTask(instance, 'publish');
      await instance.waitForStatus('complete');
      const v = await view(id);
      expect(v.status).toBe('complete');
      expect(v.stages.map((s) => s.status)).toEqual(['complete', 'complete', 'complete', 'complete', 'complete']);
      expect(v.stages[2]?.result).toContain('# tides\n');
      expect(v.stages[4]?.result).toBe('published: tides');
    }
    {
      const { id, instance } = await start(triage);
      await runTask(instance, 'classify');
      await runTask(instance, 'fix');
      await instance.waitForStatus('complete');
      const v = await view(id);
      expect(v.status).toBe('complete');
      expect(v.stages.map((s) => [s.name, s.status])).toEqual([
        ['classify', 'complete'],
        ['fix', 'complete'],
        ['answer', 'skipped'],
      ]);
      expect((await pcbOf(v.stages[1]?.tasks[0]?.pid ?? '')).priority).toBe(10);
    }
  });

  it('passes a result over 64 KiB by reference to its file or exit status, and templates read through it', async () => {
    const big = 'x'.repeat(66_000); // just over INLINE_RESULT_BYTES (64 KiB)
    const { id, instance } = await start({
      spec: {
        stages: [
          { name: 'file', task: 'write', result_file: 'big.txt', script: [{ tool_calls: [{ name: 'fs_write', args: { path: 'big.txt', content: big } }] }, ...exits('see big.txt')] },
          { name: 'exit', task: 'exit big', script: [{ tool_calls: [{ name: 'exit', args: { code: 0, result: { text: big.replaceAll('x', 'y') } } }] }] },
          { name: 'read', needs: ['file', 'exit'], task: '{{stages.file.result}}|{{stages.exit.result.text}}', script: exits('read') },
        ],
      },
    });
    const filePid = await runTask(instance, 'file');
    const exitPid = await runTask(instance, 'exit');
    const reader = await runTask(instance, 'read');
    await instance.waitForStatus('complete');
    const v = await view(id);
    expect(v.stages[0]?.result).toEqual({ $ref: 'file', pid: filePid, path: '/big.txt', bytes: 66_000 });
    expect(v.stages[1]?.result).toMatchObject({ $ref: 'exit', pid: exitPid });
    expect((await pcbOf(reader)).task).toBe(`${big}|${big.replaceAll('x', 'y')}`);
  }, 60_000);

  it('a run whose step fails past its retries ends failed and stops what it started', async () => {
    await introspector.modifyAll(async (m) => {
      await m.disableRetryDelays();
      await m.mockStepError({ name: 'spawn:broken:0:1' }, new Error('D1 is unreachable'));
    });
    const sleeper = [{ tool_calls: [{ name: 'sleep', args: { seconds: 3600 } }] }, ...exits('late')];
    const { id, instance } = await start({ spec: { stages: [{ name: 'nap', task: 'nap', script: sleeper }, { name: 'broken', task: 'x', script: exits('x') }] } });
    const { pid } = (await instance.waitForStepResult({ name: 'spawn:nap:0:1' })) as { pid: string };
    await instance.waitForStatus('errored');
    const v = await view(id);
    expect(v.status).toBe('failed');
    expect(v.error?.code).toBe('EFAULT');
    expect(v.error?.message).toContain('D1 is unreachable');
    for (let i = 0; i < 10 && (await pcbOf(pid)).state !== 'terminated'; i++) await tick(pid);
    const pcb = await pcbOf(pid);
    expect(pcb.state).toBe('terminated');
    expect(v.stages[0]?.tasks[0]?.status).toBe('cancelled');
  });
});
