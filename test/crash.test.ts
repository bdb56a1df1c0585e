/**
 * Crash safety: a process killed in the middle of a step resumes from its journal without running
 * a committed syscall twice and without losing one that was accepted; a process whose runs keep
 * faulting backs off and is ended with EFAULT after a bounded number of tries.
 */
import { abortAllDurableObjects, env, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { AgentProcess } from '../durable/agent-process.ts';
import { api, eventsOf, fileOf, pcbOf, runTree, runUntil, spawn, stubOf, tick } from './support/helpers.ts';

type AuditRow = { action: string; outcome: string; code: string | null; kind: string };

/** When the process's alarm is set for (a fresh instance of the object is created to answer, as after a restart). */
async function alarmAt(pid: string): Promise<number | null> {
  return runInDurableObject(stubOf(pid), (_instance, state) => state.storage.getAlarm());
}

async function hangCount(key: string): Promise<number> {
  const r = await fetch(`${env.TEST_SERVER}/count/${key}`);
  return ((await r.json()) as { count: number }).count;
}

/** Start a step that will hang inside net_fetch on /hang/<key>, then kill every object mid-call. */
async function crashDuringFetch(pid: string, key: string): Promise<void> {
  const run = runDurableObjectAlarm(stubOf(pid)).then(
    () => 'finished',
    (e: unknown) => `aborted: ${String(e)}`,
  );
  // Long-poll: answers once the process's request is hanging on the server. No sleeping.
  await (await fetch(`${env.TEST_SERVER}/hanging/${key}`)).text();
  await abortAllDurableObjects();
  expect(await run).toMatch(/^aborted/);
}

function script(key: string, method: 'GET' | 'POST') {
  return [
    {
      text: 'three calls',
      tool_calls: [
        { name: 'fs_write', args: { path: 'a.txt', content: 'A', append: true } },
        { name: 'net_fetch', args: { url: `${env.TEST_SERVER}/hang/${key}`, method } },
        { name: 'fs_write', args: { path: 'b.txt', content: 'B', append: true } },
      ],
    },
    { tool_calls: [{ name: 'exit', args: { code: 0 } }] },
  ];
}

describe('a step killed mid-syscall', () => {
  it('resumes from the journal: done calls are not repeated, an idempotent call is re-issued, nothing is lost', async () => {
    const key = `get-${crypto.randomUUID()}`;
    const { pid } = await spawn({ name: 'crashy', task: 'survive', image: 'default', model: { provider: 'scripted', model: 'scripted' }, capabilities: ['fs:/**:rw', 'net:127.0.0.1'], script: script(key, 'GET') });
    await crashDuringFetch(pid, key);

    // The object restarted: the new instance knows the old one is gone, so the step resumes now, not
    // when its lease (STEP_LEASE_MS) runs out, and one alarm run finishes it.
    expect(await alarmAt(pid)).toBeLessThanOrEqual(Date.now());
    expect(await tick(pid)).toBe(true);
    const done = await pcbOf(pid);
    expect(done.state).toBe('terminated');
    expect(done.exit?.code).toBe(0);

    expect(await fileOf(pid, 'a.txt')).toBe('A'); // appended once, not twice
    expect(await fileOf(pid, 'b.txt')).toBe('B'); // not lost
    expect(await hangCount(key)).toBe(2); // GET is safe to repeat, so it was re-issued once
    const syscalls = (await eventsOf(pid)).filter((e) => e.type === 'syscall').map((e) => e.data.name);
    expect(syscalls).toEqual(['fs_write', 'net_fetch', 'fs_write', 'exit']);
    const audit = await api<{ rows: AuditRow[] }>('GET', `/v1/audit?pid=${pid}`);
    expect(audit.body.rows.filter((r) => r.kind === 'syscall').map((r) => r.action)).toEqual(['fs_write', 'net_fetch', 'fs_write', 'exit']);
  });

  it("keeps the PCB's counters across a crash in the middle of a slice, though only the step rows held them", async () => {
    const key = `counters-${crypto.randomUUID()}`;
    const append = { name: 'fs_write', args: { path: 'a.txt', content: 'A', append: true } };
    const steps = [...Array.from({ length: 5 }, () => ({ tool_calls: [append] })), { tool_calls: [{ name: 'net_fetch', args: { url: `${env.TEST_SERVER}/hang/${key}`, method: 'GET' } }] }, { tool_calls: [{ name: 'exit', args: { code: 0 } }] }];
    const { pid } = await spawn({ name: 'counted', task: 'count', image: 'default', model: { provider: 'scripted', model: 'scripted' }, capabilities: ['fs:/**:rw', 'net:127.0.0.1'], script: steps });
    await crashDuringFetch(pid, key);
    const after = await runInDurableObject(stubOf(pid), (_i, state) => {
      const row = state.storage.sql.exec<{ data: string }>('SELECT data FROM pcb').one();
      return { row: (JSON.parse(row.data) as { usage: { steps: number } }).usage.steps, stepRows: state.storage.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM steps').one().n };
    });
    // The five fused steps and the sixth's journal commit changed only counters: the pcb row lags behind them.
    expect(after.stepRows).toBe(6);
    expect(after.row).toBeLessThan(6);
    const pcb = await pcbOf(pid);
    expect(pcb.usage).toMatchObject({ steps: 6, llm_calls: 6 });
    expect(await tick(pid)).toBe(true);
    const done = await pcbOf(pid);
    expect(done.state).toBe('terminated');
    expect(done.usage).toMatchObject({ steps: 7, llm_calls: 7 });
    expect(await fileOf(pid, 'a.txt')).toBe('AAAAA');
  });

  it('never repeats an unsafe call: the model is told EINTR instead', async () => {
    const key = `post-${crypto.randomUUID()}`;
    const { pid } = await spawn({ name: 'crashy', task: 'survive', image: 'default', model: { provider: 'scripted', model: 'scripted' }, capabilities: ['fs:/**:rw', 'net:127.0.0.1'], script: script(key, 'POST') });
    await crashDuringFetch(pid, key);
    const done = await runUntil(pid, ['terminated']);
    expect(done.exit?.code).toBe(0);
    expect(await hangCount(key)).toBe(1);
    const fetchResult = (await eventsOf(pid)).find((e) => e.type === 'syscall' && e.data.name === 'net_fetch');
    expect(fetchResult?.data).toMatchObject({ ok: false, error: { code: 'EINTR' } });
    expect(await fileOf(pid, 'a.txt')).toBe('A');
    expect(await fileOf(pid, 'b.txt')).toBe('B');
  });
});

describe('a new instance of a process', () => {
  it('resumes a step interrupted in the middle of an LLM call at once, not when the step lease expires', async () => {
    const model = `crash-llm-${crypto.randomUUID()}`;
    const answer = { body: { id: 'c1', object: 'chat.completion', created: 0, model, choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'survived' } }], usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 } } };
    await fetch(`${env.TEST_SERVER}/llm/scenario`, { method: 'POST', body: JSON.stringify({ model, responses: [{ hang: true }, answer] }) });
    const { pid } = await spawn({ name: 'llm-crash', task: 't', model: { provider: 'openai', model } });
    const run = runDurableObjectAlarm(stubOf(pid)).catch((e: unknown) => `aborted: ${String(e)}`);
    await (await fetch(`${env.TEST_SERVER}/llm/hanging/${model}`)).text();
    await abortAllDurableObjects();
    expect(await run).toMatch(/^aborted/);

    expect(await alarmAt(pid)).toBeLessThanOrEqual(Date.now());
    expect(await tick(pid)).toBe(true);
    const done = await pcbOf(pid);
    expect(done.exit).toMatchObject({ code: 0, result: 'survived' });
    expect(done.usage.llm_calls).toBe(1); // the lost call had no answer journaled: counted once
  });

  it('does not touch the timers of a process that was not mid-step', async () => {
    const { pid } = await spawn({ name: 'sleeper', task: 't', image: 'default', model: { provider: 'scripted', model: 'scripted' }, script: [{ tool_calls: [{ name: 'sleep', args: { seconds: 3600 } }] }, { tool_calls: [{ name: 'exit', args: { code: 0 } }] }] });
    expect(await tick(pid)).toBe(true);
    expect((await pcbOf(pid)).state).toBe('sleeping');
    const before = await alarmAt(pid);
    await abortAllDurableObjects();
    const after = await alarmAt(pid);
    expect(after).toBe(before);
    expect(after).toBeGreaterThan(Date.now() + 3000 * 1000);
  });
});

describe('a delivery cut short by a crash', () => {
  it('is made by the next instance, though nothing else wakes the process: a message sent just before it exited', async () => {
    const b = await spawn({ name: 'receiver', task: 't', image: 'default', model: { provider: 'scripted', model: 'scripted' }, script: [{ tool_calls: [{ name: 'recv', args: {} }] }, { tool_calls: [{ name: 'exit', args: { code: 0, result: '{{last_result}}' } }] }] });
    await runUntil(b.pid, ['waiting']);
    const a = await spawn({ name: 'sender', task: 't', image: 'default', model: { provider: 'scripted', model: 'scripted' }, script: [{ tool_calls: [{ name: 'send', args: { to: b.pid, body: 'before the crash' } }] }, { tool_calls: [{ name: 'exit', args: { code: 0 } }] }] });
    // The sender's run commits the send and its exit, and dies in its outbox's delivery: after the
    // audit records reached D1 (an I/O, so what came before is durable), before the message left.
    const run = runInDurableObject(stubOf(a.pid), async (instance: { alarm(): Promise<void> }, state) => {
      const sql = state.storage.sql;
      const exec = sql.exec.bind(sql);
      Object.defineProperty(sql, 'exec', {
        value: (query: string, ...params: SqlStorageValue[]) => {
          if (/INTO meta/.test(query) && params[0] === 'audit_head') state.abort('crash before the outbox is delivered');
          return exec(query, ...params);
        },
      });
      await state.storage.deleteAlarm();
      await instance.alarm();
    });
    await expect(run).rejects.toThrow(/crash before the outbox/);
    expect((await pcbOf(b.pid)).state).toBe('waiting');
    // The sender has exited, so no step will run again; its new instance owes the message and arms
    // its outbox, whose alarm delivers it (it may fire on its own before this tick).
    expect((await pcbOf(a.pid)).state).toBe('terminated');
    await tick(a.pid);
    const done = await runUntil(b.pid, ['terminated']);
    expect(JSON.parse(String(done.exit?.result))).toMatchObject({ ok: true, value: { from: a.pid, body: 'before the crash' } });
  });
});

describe('a message delivered again after its recipient exited', () => {
  it('is a duplicate, not a dead letter: the sender crashed after the delivery, before it forgot the message', async () => {
    const b = await spawn({ name: 'receiver', task: 't', image: 'default', model: { provider: 'scripted', model: 'scripted' }, script: [{ tool_calls: [{ name: 'recv', args: {} }] }, { tool_calls: [{ name: 'exit', args: { code: 0 } }] }] });
    await runUntil(b.pid, ['waiting']);
    const a = await spawn({ name: 'sender', task: 't', image: 'default', model: { provider: 'scripted', model: 'scripted' }, script: [{ tool_calls: [{ name: 'send', args: { to: b.pid, body: 'once' } }] }, { tool_calls: [{ name: 'sleep', args: { seconds: 60 } }] }, { tool_calls: [{ name: 'exit', args: { code: 0 } }] }] });
    // The sender's outbox delivers the message, then its object dies before the row is deleted.
    const run = runInDurableObject(stubOf(a.pid), async (instance: { alarm(): Promise<void> }, state) => {
      const sql = state.storage.sql;
      const exec = sql.exec.bind(sql);
      Object.defineProperty(sql, 'exec', {
        value: (query: string, ...params: SqlStorageValue[]) => {
          if (/^DELETE FROM outbox/.test(query)) state.abort('crash after the delivery');
          return exec(query, ...params);
        },
      });
      await state.storage.deleteAlarm();
      await instance.alarm();
    });
    await expect(run).rejects.toThrow(/crash after the delivery/);
    expect((await runUntil(b.pid, ['terminated'])).exit?.code).toBe(0);
    // The sender's next instance delivers the message again, to a recipient that has exited.
    await runUntil(a.pid, ['terminated']);
    const { results } = await env.DB.prepare('SELECT id, reason FROM dead_letters WHERE recipient = ?').bind(b.pid).all();
    expect(results).toEqual([]);
  });
});

describe('a spawn whose answer is lost in transit', () => {
  it('is issued again with the same key: the parent gets its one child, and no second one is made', async () => {
    // The child's object makes the child, then its answer to the parent is lost (a platform error).
    // (The process object's spawn is patched for this test only; the API's spawn of the parent passes.)
    const proto = AgentProcess.prototype as unknown as { spawn: (...a: unknown[]) => Promise<unknown> };
    const spawnOf = Object.getOwnPropertyDescriptor(proto, 'spawn')!;
    let lost = 0;
    Object.defineProperty(proto, 'spawn', {
      configurable: true,
      writable: true,
      value: async function (this: unknown, ...a: unknown[]) {
        const r = await (spawnOf.value as (...x: unknown[]) => Promise<unknown>).apply(this, a);
        if ((a[0] as { ppid: string | null }).ppid !== null && lost++ === 0) throw new Error('Network connection lost.');
        return r;
      },
    });
    try {
      const { pid } = await spawn({ name: 'parent', task: 't', image: 'default', model: { provider: 'scripted', model: 'scripted' }, script: [{ tool_calls: [{ name: 'spawn', args: { name: 'kid', task: 'finish', image: 'demo-helper' } }] }, { tool_calls: [{ name: 'wait', args: {} }] }, { tool_calls: [{ name: 'exit', args: { code: 0, result: '{{last_result}}' } }] }] });
      const done = await runTree(pid);
      expect(lost).toBe(2); // asked twice: the lost answer, then the same spawn again
      const spawned = (await eventsOf(pid)).filter((e) => e.type === 'syscall' && e.data.name === 'spawn');
      expect(spawned).toHaveLength(1);
      expect(spawned[0]!.data).toMatchObject({ ok: true });
      const kid = (spawned[0]!.data.result as { pid: string }).pid;
      expect(JSON.parse(String(done.exit?.result))).toMatchObject({ ok: true, value: { pid: kid, exit: { code: 0 } } });
      const { results } = await env.DB.prepare('SELECT pid FROM processes WHERE ppid = ?').bind(pid).all<{ pid: string }>();
      expect(results.map((r) => r.pid)).toEqual([kid]);
      expect((await eventsOf(pid)).filter((e) => e.type === 'fault')).toHaveLength(1);
    } finally {
      Object.defineProperty(proto, 'spawn', spawnOf);
    }
  });
});

describe('a process whose runs keep faulting', () => {
  it('backs off between tries and ends with EFAULT after a bounded number, never looping forever', async () => {
    const { pid } = await spawn({ name: 'faulty', task: 'x', image: 'default', model: { provider: 'scripted', model: 'scripted' }, script: [{ tool_calls: [{ name: 'yield', args: {} }] }] });
    // Corrupt the process's storage so every step fails: its image record is gone.
    await runInDurableObject(stubOf(pid), (_instance, state) => {
      state.storage.sql.exec("DELETE FROM meta WHERE key = 'image'");
    });
    // The object caches what it wrote; a restarted object reads the damaged storage.
    await abortAllDurableObjects();
    const fireTimes: number[] = [];
    for (let i = 0; i < 10; i++) {
      const at = await runInDurableObject(stubOf(pid), (_i, state) => state.storage.getAlarm());
      if (at === null) break;
      fireTimes.push(at);
      await tick(pid);
    }
    const pcb = await pcbOf(pid);
    expect(pcb.state).toBe('terminated');
    expect(pcb.exit?.code).toBe('EFAULT');
    expect(pcb.exit?.reason).toMatch(/faulted 5 times/);
    const faults = (await eventsOf(pid)).filter((e) => e.type === 'fault');
    expect(faults).toHaveLength(5);
    // Each retry is scheduled further out than the last (exponential backoff).
    const gaps = fireTimes.slice(2).map((t, i) => t - (fireTimes[i + 1] ?? 0));
    for (let i = 1; i < gaps.length; i++) expect(gaps[i]!).toBeGreaterThan(gaps[i - 1]!);
    expect(await tick(pid)).toBe(false);
  });
});
