import { describe, expect, it } from 'vitest';
import { api, eventsOf, fileOf, pcbOf, runTree, runUntil, spawn, tick } from './support/helpers.ts';

describe('the demo image', () => {
  it('thinks, writes, sleeps on an alarm, spawns a child, waits for it and exits', async () => {
    const pcb = await spawn({ name: 'demo', task: 'tidy the garden', image: 'demo' });
    expect(pcb.state).toBe('ready');
    const asleep = await runUntil(pcb.pid, ['sleeping']);
    expect(asleep.state).toBe('sleeping');
    expect(await fileOf(pcb.pid, 'notes/plan.md')).toContain('Task: tidy the garden');
    const done = await runTree(pcb.pid);
    expect(done.exit).toMatchObject({ code: 0, result: 'plan written, helper finished' });
    const ps = await api<{ processes: { pid: string; ppid: string | null }[] }>('GET', `/v1/processes?ppid=${pcb.pid}`);
    expect(ps.body.processes).toHaveLength(1);
    const child = ps.body.processes[0]!.pid;
    expect(await pcbOf(child)).toMatchObject({ state: 'terminated', exit: { code: 0, result: 'helper says hello' } });
    expect(JSON.parse(await fileOf(pcb.pid, 'notes/result.json'))).toMatchObject({ ok: true, value: { pid: child, exit: { code: 0 } } });
    const types = (await eventsOf(pcb.pid)).map((e) => e.type);
    expect(types.filter((t) => t === 'llm_call')).toHaveLength(6);
    expect(types).toContain('child_exited');
    expect(await tick(pcb.pid)).toBe(false);
  });
});
