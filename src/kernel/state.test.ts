import { describe, expect, it } from 'vitest';
import { type Pcb, PROCESS_STATES, type ProcessState, ZERO_USAGE, DEFAULT_QUOTAS, onlyCountersDiffer } from './pcb.ts';
import { LEGAL_FROM, type TransitionEvent, type TransitionType, canTransition, transition } from './state.ts';

const NOW = 1_700_000_123_456;

function makePcb(over: Partial<Pcb> = {}): Pcb {
  return {
    pid: 'p00000000000000000001',
    tenant: 't1',
    ppid: null,
    max_context_tokens: 64000,
    name: 'test',
    image: 'default',
    task: 'do things',
    state: 'ready',
    priority: 50,
    model: { provider: 'scripted', model: 'scripted' },
    capabilities: [],
    quotas: { ...DEFAULT_QUOTAS },
    usage: { ...ZERO_USAGE },
    wait: null,
    stopped_from: null,
    exit: null,
    created_at: 1_000,
    updated_at: 2_000,
    version: 7,
    ...over,
  };
}

const EVENTS: Readonly<Record<TransitionType, TransitionEvent>> = {
  dispatch: { type: 'dispatch' },
  yield: { type: 'yield' },
  sleep: { type: 'sleep' },
  block: { type: 'block', wait: { reason: 'child', pid: null, deadline: 99_000 } },
  wake: { type: 'wake' },
  stop: { type: 'stop' },
  cont: { type: 'cont' },
  exit: { type: 'exit', status: { code: 3, reason: 'done', result: { answer: 42 } } },
  reap: { type: 'reap' },
};

/** The diagram in state.ts, written out independently of LEGAL_FROM: [from, event] → target. */
const EXPECTED: Readonly<Partial<Record<ProcessState, Partial<Record<TransitionType, ProcessState>>>>> = {
  ready: { dispatch: 'running', stop: 'stopped', exit: 'zombie' },
  running: { yield: 'ready', sleep: 'sleeping', block: 'waiting', stop: 'stopped', exit: 'zombie' },
  sleeping: { wake: 'ready', stop: 'stopped', exit: 'zombie' },
  waiting: { wake: 'ready', stop: 'stopped', exit: 'zombie' },
  stopped: { cont: 'ready', exit: 'zombie' },
  zombie: { reap: 'terminated' },
  terminated: {},
};

const EVENT_TYPES = Object.keys(EVENTS) as TransitionType[];

describe('transition: every state × every event', () => {
  it('covers every event type in LEGAL_FROM', () => {
    expect(new Set(EVENT_TYPES)).toEqual(new Set(Object.keys(LEGAL_FROM)));
  });

  for (const state of PROCESS_STATES) {
    for (const type of EVENT_TYPES) {
      const to = EXPECTED[state]?.[type];
      if (to !== undefined) {
        it(`${state} --${type}--> ${to}`, () => {
          const pcb = makePcb({ state });
          const snapshot = structuredClone(pcb);
          expect(canTransition(state, type)).toBe(true);
          const r = transition(pcb, EVENTS[type], NOW);
          if (!r.ok) throw new Error(`expected ok, got ${r.error.code}`);
          expect(r.value.state).toBe(to);
          expect(r.value.version).toBe(pcb.version + 1);
          expect(r.value.updated_at).toBe(NOW);
          expect(r.value).not.toBe(pcb);
          expect(pcb).toEqual(snapshot);
        });
      } else {
        it(`${state} --${type}--> ESTATE`, () => {
          const pcb = makePcb({ state });
          const snapshot = structuredClone(pcb);
          expect(canTransition(state, type)).toBe(false);
          const r = transition(pcb, EVENTS[type], NOW);
          if (r.ok) throw new Error(`expected ESTATE, got state ${r.value.state}`);
          expect(r.error.code).toBe('ESTATE');
          expect(r.error.details).toMatchObject({ pid: pcb.pid, state, event: type });
          expect(pcb).toEqual(snapshot);
        });
      }
    }
  }
});

describe('transition side effects', () => {
  it('block sets wait; wake clears it', () => {
    const wait = { reason: 'message' as const, deadline: 5_000 };
    const blocked = transition(makePcb({ state: 'running' }), { type: 'block', wait }, NOW);
    if (!blocked.ok) throw new Error('block failed');
    expect(blocked.value.wait).toEqual(wait);
    const woken = transition(blocked.value, { type: 'wake' }, NOW + 1);
    if (!woken.ok) throw new Error('wake failed');
    expect(woken.value.wait).toBeNull();
    expect(woken.value.version).toBe(blocked.value.version + 1);
    expect(woken.value.updated_at).toBe(NOW + 1);
  });

  it('stop records stopped_from and cont returns there (running resumes as ready)', () => {
    const cases: [ProcessState, ProcessState][] = [
      ['ready', 'ready'],
      ['running', 'ready'],
      ['sleeping', 'sleeping'],
      ['waiting', 'waiting'],
    ];
    for (const [from, back] of cases) {
      const wait = from === 'waiting' ? { reason: 'child' as const, pid: null } : null;
      const stopped = transition(makePcb({ state: from, wait }), { type: 'stop' }, NOW);
      if (!stopped.ok) throw new Error(`stop from ${from} failed`);
      expect(stopped.value.state).toBe('stopped');
      expect(stopped.value.stopped_from).toBe(from);
      expect(stopped.value.wait).toEqual(wait);
      const resumed = transition(stopped.value, { type: 'cont' }, NOW + 5);
      if (!resumed.ok) throw new Error(`cont to ${back} failed`);
      expect(resumed.value.state).toBe(back);
      expect(resumed.value.stopped_from).toBeNull();
      expect(resumed.value.version).toBe(stopped.value.version + 1);
    }
  });

  it('cont with no recorded stopped_from resumes as ready', () => {
    const r = transition(makePcb({ state: 'stopped', stopped_from: null }), { type: 'cont' }, NOW);
    expect(r.ok && r.value.state).toBe('ready');
  });

  it('exit sets the exit status and clears wait and stopped_from', () => {
    const status = { code: 'SIGKILL', reason: 'killed' };
    const pcb = makePcb({ state: 'stopped', stopped_from: 'waiting', wait: { reason: 'child', pid: null } });
    const r = transition(pcb, { type: 'exit', status }, NOW);
    if (!r.ok) throw new Error('exit failed');
    expect(r.value).toMatchObject({ state: 'zombie', exit: status, wait: null, stopped_from: null });
    const reaped = transition(r.value, { type: 'reap' }, NOW + 1);
    if (!reaped.ok) throw new Error('reap failed');
    expect(reaped.value).toMatchObject({ state: 'terminated', exit: status, version: pcb.version + 2 });
  });

  it('other events leave wait, stopped_from and exit untouched', () => {
    const r = transition(makePcb({ state: 'running', wait: null }), { type: 'sleep' }, NOW);
    if (!r.ok) throw new Error('sleep failed');
    expect(r.value).toMatchObject({ wait: null, stopped_from: null, exit: null, pid: 'p00000000000000000001' });
  });

  it('ESTATE details list the states the event is legal from', () => {
    const r = transition(makePcb({ state: 'terminated' }), { type: 'wake' }, NOW);
    if (r.ok) throw new Error('expected ESTATE');
    expect(r.error.details).toEqual({ pid: 'p00000000000000000001', state: 'terminated', event: 'wake', legal_from: ['sleeping', 'waiting'] });
    expect(r.error.message).toContain('terminated');
  });
});

describe('onlyCountersDiffer (which commits may leave the PCB row behind its step rows)', () => {
  it('holds for a step that changed only usage, version and time, and for nothing else', () => {
    const prev = makePcb();
    expect(onlyCountersDiffer(prev, { ...prev, usage: { ...prev.usage, steps: 1 }, version: 8, updated_at: 3_000 })).toBe(true);
    expect(onlyCountersDiffer(prev, { ...prev, state: 'running' })).toBe(false);
    expect(onlyCountersDiffer(prev, { ...prev, capabilities: [...prev.capabilities] })).toBe(false);
    const { wait: _dropped, ...fewer } = prev;
    expect(onlyCountersDiffer(prev, fewer as Pcb)).toBe(false);
    expect(onlyCountersDiffer(prev, { ...prev, forked_from: 'p1' })).toBe(false);
  });
});
