/**
 * Process lifecycle as users rely on it: signals in every blocked state, wait and zombies, quotas,
 * a model's final answer, removal, and the live event stream.
 */
import { SELF } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { ADMIN, api, eventsOf, pcbOf, runUntil, spawn, tick } from './support/helpers.ts';

const scripted = { provider: 'scripted', model: 'scripted' };
const call = (name: string, args: Record<string, unknown> = {}) => ({ tool_calls: [{ name, args }] });
const signal = (pid: string, sig: string) => api<{ state: string }>('POST', `/v1/processes/${pid}/signals`, { signal: sig });
const resultOf = async (pid: string, name: string) => (await eventsOf(pid)).filter((e) => e.type === 'syscall' && e.data.name === name).map((e) => e.data);

describe('signals', () => {
  it('SIGSTOP freezes a sleeping process (its wake-up does not fire) and SIGCONT resumes the sleep', async () => {
    const { pid } = await spawn({ name: 's', task: 't', model: scripted, script: [call('sleep', { seconds: 30 }), call('exit', { code: 0 })] });
    await runUntil(pid, ['sleeping']);
    expect((await signal(pid, 'SIGSTOP')).body.state).toBe('stopped');
    expect(await tick(pid)).toBe(false); // no alarm while stopped
    expect((await pcbOf(pid)).state).toBe('stopped');
    expect((await signal(pid, 'SIGCONT')).body.state).toBe('sleeping');
    const done = await runUntil(pid, ['terminated']);
    expect(done.exit?.code).toBe(0);
    expect(await resultOf(pid, 'sleep')).toEqual([expect.objectContaining({ ok: true, result: { slept_seconds: 30 } })]);
  });

  it('SIGTERM wakes a sleeping process for one clean-up step, then ends it with code SIGTERM; SIGKILL ends a ready one', async () => {
    const a = await spawn({ name: 'a', task: 't', model: scripted, script: [call('sleep', { seconds: 30 }), call('fs_list', { path: '/' })] });
    await runUntil(a.pid, ['sleeping']);
    const termed = await signal(a.pid, 'SIGTERM');
    expect(termed.status).toBe(200);
    expect(await runUntil(a.pid, ['terminated'])).toMatchObject({ state: 'terminated', exit: { code: 'SIGTERM' } });
    const b = await spawn({ name: 'b', task: 't', model: scripted, script: [call('sleep', { seconds: 30 })] });
    await signal(b.pid, 'SIGKILL');
    expect(await pcbOf(b.pid)).toMatchObject({ state: 'terminated', exit: { code: 'SIGKILL', reason: 'killed by api:bootstrap' } });
    expect(await tick(b.pid)).toBe(false);
  });
});

describe('wait, exit and zombies', () => {
  it('a child that exits before its parent waits stays a zombie until the wait collects it', async () => {
    const { pid } = await spawn({
      name: 'parent',
      task: 't',
      model: scripted,
      script: [call('spawn', { name: 'kid', task: 'finish', image: 'demo-helper' }), call('sleep', { seconds: 5 }), call('wait', {}), call('exit', { code: 0, result: '{{last_result}}' })],
    });
    await runUntil(pid, ['sleeping']);
    const kids = await api<{ processes: { pid: string }[] }>('GET', `/v1/processes?ppid=${pid}`);
    const kid = kids.body.processes[0]!.pid;
    expect((await runUntil(kid, ['zombie'])).state).toBe('zombie');
    const parent = await runUntil(pid, ['terminated']);
    expect(JSON.parse(String(parent.exit?.result))).toMatchObject({ ok: true, value: { pid: kid, exit: { code: 0, result: 'helper says hello' } } });
    expect((await pcbOf(kid)).state).toBe('terminated');
  });

  it('wait with a timeout returns ETIMEDOUT to the model, which carries on', async () => {
    const { pid } = await spawn({
      name: 'p',
      task: 't',
      model: scripted,
      script: [call('spawn', { name: 'slow', task: 'nap', image: 'idle', priority: 10 }), call('wait', { timeout_seconds: 5 }), call('exit', { code: 7 })],
    });
    const waiting = await runUntil(pid, ['waiting']);
    expect(waiting.wait).toMatchObject({ reason: 'child', pid: null });
    const done = await runUntil(pid, ['zombie', 'terminated']);
    expect(done.exit?.code).toBe(7);
    expect(await resultOf(pid, 'wait')).toEqual([expect.objectContaining({ ok: false, error: expect.objectContaining({ code: 'ETIMEDOUT' }) })]);
  });

  it('wait with no children is ECHILD, and kill of a process that is not a child is EPERM', async () => {
    const other = await spawn({ name: 'other', task: 't', model: scripted, script: [call('sleep', { seconds: 60 })] });
    const { pid } = await spawn({ name: 'p', task: 't', model: scripted, script: [call('wait', {}), call('kill', { pid: other.pid, signal: 'SIGKILL' }), call('exit', { code: 0 })] });
    expect((await runUntil(pid, ['terminated'])).exit?.code).toBe(0);
    expect((await resultOf(pid, 'wait'))[0]).toMatchObject({ ok: false, error: { code: 'ECHILD' } });
    expect((await resultOf(pid, 'kill'))[0]).toMatchObject({ ok: false, error: { code: 'EPERM' } });
    expect((await pcbOf(other.pid)).state).not.toBe('terminated');
  });

  it('killing a parent leaves its running child alone; the orphan reaps itself when it exits', async () => {
    const { pid } = await spawn({ name: 'p', task: 't', model: scripted, script: [call('spawn', { name: 'kid', task: 'x', image: 'demo-helper' }), call('wait', {})] });
    await runUntil(pid, ['waiting']);
    const kid = (await api<{ processes: { pid: string }[] }>('GET', `/v1/processes?ppid=${pid}`)).body.processes[0]!.pid;
    await signal(pid, 'SIGKILL');
    expect((await pcbOf(pid)).state).toBe('terminated');
    expect((await runUntil(kid, ['terminated'])).exit?.code).toBe(0);
  });
});

describe('quotas and final answers', () => {
  it('a process over its max_steps quota ends with EQUOTA at a step boundary', async () => {
    const many = Array.from({ length: 10 }, () => call('fs_write', { path: 'log', content: '.', append: true }));
    const { pid } = await spawn({ name: 'q', task: 't', model: scripted, script: many, quotas: { max_steps: 3 } });
    const done = await runUntil(pid, ['terminated']);
    expect(done.exit).toMatchObject({ code: 'EQUOTA' });
    expect(done.exit?.reason).toMatch(/max_steps/);
    expect(done.usage.steps).toBe(3);
    expect((await api<{ content: string }>('GET', `/v1/processes/${pid}/fs/log`)).body.content).toBe('...');
  });

  it('a turn with no syscalls is the final answer: exit 0 with the text as result; usage is counted', async () => {
    const { pid } = await spawn({ name: 'a', task: 't', model: scripted, script: [{ text: 'The answer is 42.' }] });
    const done = await runUntil(pid, ['terminated']);
    expect(done.exit).toMatchObject({ code: 0, result: 'The answer is 42.' });
    expect(done.usage.llm_calls).toBe(1);
    expect(done.usage.prompt_tokens).toBeGreaterThan(0);
    expect(done.usage.completion_tokens).toBeGreaterThan(0);
  });
});

describe('removal and the live event stream', () => {
  it('DELETE kills and removes a process; its audit trail stays', async () => {
    const { pid } = await spawn({ name: 'gone', task: 't', model: scripted, script: [call('sleep', { seconds: 60 })] });
    await runUntil(pid, ['sleeping']);
    const del = await api<{ pid: string; exit: { code: string } }>('DELETE', `/v1/processes/${pid}`);
    expect(del.status).toBe(200);
    expect(del.body.exit.code).toBe('SIGKILL');
    expect((await api('GET', `/v1/processes/${pid}`)).status).toBe(404);
    const ps = await api<{ processes: { pid: string }[] }>('GET', '/v1/processes?limit=500');
    expect(ps.body.processes.map((p) => p.pid)).not.toContain(pid);
    const audit = await api<{ rows: { action: string }[] }>('GET', `/v1/audit?pid=${pid}`);
    expect(audit.body.rows.map((r) => r.action)).toEqual(expect.arrayContaining(['spawn', 'SIGKILL', 'exit', 'remove']));
  });

  it('streams events live over SSE, from the backlog to termination, then closes', async () => {
    const { pid } = await spawn({ name: 'sse', task: 't', model: scripted, script: [call('sleep', { seconds: 60 })] });
    const res = await SELF.fetch(`http://agentos.test/v1/processes/${pid}/events`, { headers: { ...ADMIN, accept: 'text/event-stream' } });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    while (!text.includes('event: spawned')) text += (await reader.read()).value ?? '';
    await runUntil(pid, ['sleeping']);
    await signal(pid, 'SIGKILL');
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += value;
    }
    const types = [...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
    expect(types[0]).toBe('spawned');
    expect(types).toEqual(expect.arrayContaining(['llm_call', 'signal', 'exit']));
    expect(types.at(-1)).toBe('state');
    expect(text).toMatch(/"to":"terminated"/);
    // Asking again after the end gets the whole log and a stream that ends.
    const late = await SELF.fetch(`http://agentos.test/v1/processes/${pid}/events`, { headers: { ...ADMIN, accept: 'text/event-stream' } });
    expect(await late.text()).toMatch(/event: exit/);
  });
});
