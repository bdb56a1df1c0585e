/**
 * Record and replay: traces recorded from the project's scenarios (test/traces/*.json) are
 * replayed against the current code and must not diverge; a changed kernel (another context budget,
 * narrower capabilities) makes the replay report the first divergence with its step.
 *
 * `npm run replay -- trace.json` runs this file against one more trace (REPLAY_TRACE, see
 * scripts/replay.mjs) and fails on a divergence.
 */
import { env, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import type { Trace } from '../src/checkpoints/trace.ts';
import demoTrace from './traces/demo.json';
import notesTrace from './traces/notes.json';
import { api, eventsOf, runTree, spawn, stubOf } from './support/helpers.ts';

const scripted = { provider: 'scripted', model: 'scripted' };
const call = (name: string, args: Record<string, unknown> = {}) => ({ name, args });

/** The scenarios the committed traces were recorded from. */
export const SCENARIOS: Record<string, Record<string, unknown>> = {
  demo: { name: 'demo', task: 'tidy the garden', image: 'demo' },
  notes: {
    name: 'notes',
    task: 'keep notes',
    model: scripted,
    script: [
      { text: 'Writing.', tool_calls: [call('fs_write', { path: 'notes/a.md', content: 'first note '.repeat(200) }), call('fs_write', { path: 'notes/b.md', content: 'second' })] },
      { tool_calls: [call('fs_list', { path: '/notes' }), call('fs_read', { path: 'notes/a.md' })] },
      { tool_calls: [call('fs_read', { path: 'notes/b.md' }), call('fs_read', { path: 'missing.md' })] },
      { text: 'Notes kept.', tool_calls: [call('exit', { code: 0, result: 'kept' })] },
    ],
  },
};

type Divergence = { kind: string; step: number; part?: string };

async function record(body: Record<string, unknown>): Promise<Trace> {
  const { pid } = await spawn(body);
  await runTree(pid);
  return (await api<Trace>('GET', `/v1/processes/${pid}/trace`)).body;
}

async function replay(trace: Trace, extra: Record<string, unknown> = {}): Promise<{ pid: string; divergence: Divergence | null; exit: unknown }> {
  const { pid } = await spawn({ name: `replay-${trace.spawn.name}`, task: trace.spawn.task, image: trace.spawn.image, model: trace.spawn.model, tool_mode: trace.spawn.tool_mode, max_context_tokens: trace.spawn.max_context_tokens, replay: trace, ...extra });
  const done = await runTree(pid);
  const events = await eventsOf(pid);
  const d = events.find((e) => e.type === 'replay_divergence');
  return { pid, divergence: d ? (d.data as unknown as Divergence) : null, exit: done.exit };
}

describe('record and replay', () => {
  it('records every LLM call with its step, and exports the run as a trace', async () => {
    const trace = await record(SCENARIOS.notes as Record<string, unknown>);
    expect(trace.format).toBe('agentos-trace/1');
    expect(trace.steps.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    expect(trace.steps[1]?.request.inputs.map((m) => m.role)).toEqual(['tool', 'tool']);
    expect(trace.syscalls.map((s) => s.name)).toEqual(['fs_write', 'fs_write', 'fs_list', 'fs_read', 'fs_read', 'fs_read', 'exit']);
    expect(trace.exit).toMatchObject({ code: 0 });
  });

  it('an object that recorded calls before schema 6 (llm_trace) still exports them, with the calls recorded since in their step rows', async () => {
    const { pid } = await spawn(SCENARIOS.notes as Record<string, unknown>);
    await runTree(pid);
    const recorded = (await api<Trace>('GET', `/v1/processes/${pid}/trace`)).body;
    // As the code before version 6 left it: steps 1 and 2 in llm_trace, their step rows without a trace.
    await runInDurableObject(stubOf(pid), (_i, state) => {
      const sql = state.storage.sql;
      sql.exec('CREATE TABLE llm_trace (step INTEGER PRIMARY KEY, at INTEGER NOT NULL, latency_ms INTEGER NOT NULL, request TEXT NOT NULL, response TEXT NOT NULL)');
      for (const s of recorded.steps.slice(0, 2)) {
        sql.exec('INSERT INTO llm_trace VALUES (?, ?, ?, ?, ?)', s.step, s.at, s.latency_ms, JSON.stringify(s.request), JSON.stringify(s.response));
        sql.exec('UPDATE steps SET trace = NULL WHERE step = ?', s.step);
      }
      expect(sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM steps WHERE trace IS NOT NULL').one().n).toBe(recorded.steps.length - 2);
    });
    const exported = (await api<Trace>('GET', `/v1/processes/${pid}/trace`)).body;
    expect(exported.steps).toEqual(recorded.steps);
  });

  for (const [name, committed] of [
    ['demo', demoTrace],
    ['notes', notesTrace],
  ] as const) {
    it(`the committed ${name} trace replays against the current code without divergence`, async () => {
      const trace = committed as unknown as Trace;
      const r = await replay(trace);
      expect(r.divergence, 'if the change is intended, re-record: npm run replay -- --record').toBeNull();
      expect(r.exit).toMatchObject({ code: 0 });
      // Recording the scenario again gives the same requests, step by step.
      const fresh = await record(SCENARIOS[name] as Record<string, unknown>);
      expect(fresh.steps.map((s) => [s.step, s.request.system, s.request.messages]), 'if the change is intended, re-record: npm run replay -- --record').toEqual(trace.steps.map((s) => [s.step, s.request.system, s.request.messages]));
    });
  }

  it('a changed kernel makes the replay fail with the step: a different prompt, a different syscall result', async () => {
    const trace = notesTrace as unknown as Trace;
    // Another context budget: the kernel builds a different request once paging starts.
    const paged = await replay(trace, { max_context_tokens: 1000 });
    expect(paged.divergence).toMatchObject({ kind: 'request' });
    expect(paged.divergence?.step).toBeGreaterThan(1);
    // Narrower capabilities: the first fs_read returns EPERM at step 2, seen when step 3 is built.
    const narrow = await replay(trace, { capabilities: ['fs:/notes/b.md:rw', 'fs:/notes/a.md:w'] });
    expect(narrow.divergence).toMatchObject({ kind: 'syscall_result', step: 2 });
  });

  it('records the scenarios (npm run replay -- --record writes them to test/traces)', async () => {
    if (!(env as unknown as { RECORD_TRACES?: string }).RECORD_TRACES) return;
    for (const [name, body] of Object.entries(SCENARIOS)) console.log(`@@TRACE ${name} ${JSON.stringify(await record(body))} @@END`);
  });

  it('replays a trace given on the command line (npm run replay -- trace.json)', async () => {
    const extra = (env as unknown as { REPLAY_TRACE?: string }).REPLAY_TRACE;
    if (!extra) return;
    const r = await replay(JSON.parse(extra) as Trace);
    expect(r.divergence, `the replay diverged: ${JSON.stringify(r.divergence)}`).toBeNull();
  });
});
