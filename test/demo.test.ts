import { describe, expect, it } from 'vitest';
import { api, eventsOf, fileOf, pcbOf, runUntil, spawn, tick } from './support/helpers.ts';

describe('the demo image', () => {
  it('thinks, writes, sleeps on an alarm, spawns a child, waits for it and exits', async () => {
    const pcb = await spawn({ name: 'demo', task: 'tidy the garden', image: 'demo' });
    expect(pcb.state).toBe('ready');
    const asleep = await runUntil(pcb.pid, ['sleeping']);
    expect(asleep.state).toBe('sleeping');
    expect(await fileOf(pcb.pid, 'notes/plan.md')).toContain('Task: tidy the garden');
    const waiting = await runUntil(pcb.pid, ['waiting']);
    expect(waiting.wait?.reason).toBe('child');
    const ps = await api<{ processes: { pid: string; ppid: string | null }[] }>('GET', `/v1/processes?ppid=${pcb.pid}`);
    expect(ps.body.processes).toHaveLength(1);
    const child = ps.body.processes[0]!.pid;
    const childDone = await runUntil(child, ['zombie', 'terminated']);
    expect(childDone.exit).toMatchObject({ code: 0, result: 'helper says hello' });
    const done = await runUntil(pcb.pid, ['terminated']);
    expect(done.exit).toMatchObject({ code: 0, result: 'plan written, helper finished' });
    expect(JSON.parse(await fileOf(pcb.pid, 'notes/result.json'))).toMatchObject({ ok: true, value: { pid: child, exit: { code: 0 } } });
    expect((await pcbOf(child)).state).toBe('terminated');
    const types = (await eventsOf(pcb.pid)).map((e) => e.type);
    expect(types).toContain('llm_call');
    expect(await tick(pcb.pid)).toBe(false);
  });
});
