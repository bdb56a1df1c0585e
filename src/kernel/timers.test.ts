import { describe, expect, it } from 'vitest';
import { DEFAULT_QUOTAS, type Pcb, PROCESS_STATES, type ProcessState, ZERO_USAGE } from './pcb.ts';
import { TIMER_KINDS, type Timer, armable, due, earliest, faultBackoffMs, quotaExceeded } from './timers.ts';

const CREATED = 1_000_000;

function makePcb(over: Partial<Pcb> = {}): Pcb {
  return {
    pid: 'p00000000000000000001',
    tenant: 't1',
    ppid: null,
    max_context_tokens: 64000,
    name: 't',
    image: 'default',
    task: 'x',
    state: 'running',
    priority: 50,
    model: { provider: 'scripted', model: 'scripted' },
    capabilities: [],
    quotas: { max_steps: 10, max_tokens: 1000, max_wall_seconds: 60 },
    usage: { ...ZERO_USAGE },
    wait: null,
    stopped_from: null,
    exit: null,
    created_at: CREATED,
    updated_at: CREATED,
    version: 1,
    ...over,
  };
}

const ALL: Timer[] = TIMER_KINDS.map((kind, i) => ({ kind, fire_at: 100 + i }));

describe('earliest and due', () => {
  it('earliest picks the smallest fire_at, null when empty', () => {
    expect(earliest([])).toBeNull();
    const timers: Timer[] = [
      { kind: 'run', fire_at: 50 },
      { kind: 'wake', fire_at: 10 },
      { kind: 'outbox', fire_at: 30 },
    ];
    expect(earliest(timers)).toEqual({ kind: 'wake', fire_at: 10 });
  });

  it('due returns the timers at or before now, in firing order, without mutating the input', () => {
    const timers: Timer[] = [
      { kind: 'run', fire_at: 300 },
      { kind: 'outbox', fire_at: 100 },
      { kind: 'wake', fire_at: 200 },
      { kind: 'fault', fire_at: 201 },
    ];
    const copy = structuredClone(timers);
    expect(due(timers, 200).map((t) => t.kind)).toEqual(['outbox', 'wake']);
    expect(due(timers, 99)).toEqual([]);
    expect(due(timers, 1e9).map((t) => t.fire_at)).toEqual([100, 200, 201, 300]);
    expect(timers).toEqual(copy);
  });
});

describe('armable', () => {
  const EXPECTED: Record<ProcessState, string[]> = {
    ready: ['run', 'outbox', 'fault', 'term'],
    running: ['run', 'outbox', 'fault', 'term'],
    sleeping: ['wake', 'outbox', 'fault', 'term'],
    waiting: ['wait_timeout', 'outbox', 'fault', 'term'],
    stopped: ['outbox'],
    zombie: ['outbox'],
    terminated: ['outbox'],
  };
  for (const state of PROCESS_STATES) {
    it(`${state}: ${EXPECTED[state].join(', ')}`, () => {
      expect(armable(state, ALL).map((t) => t.kind).sort()).toEqual([...EXPECTED[state]].sort());
    });
  }

  it('sleeping arms wake but not run; waiting arms wait_timeout', () => {
    const kinds = (s: ProcessState) => armable(s, ALL).map((t) => t.kind);
    expect(kinds('sleeping')).toContain('wake');
    expect(kinds('sleeping')).not.toContain('run');
    expect(kinds('waiting')).toContain('wait_timeout');
    expect(kinds('waiting')).not.toContain('wake');
  });
});

describe('faultBackoffMs', () => {
  it('doubles from 2 s and caps at 300 s with no jitter', () => {
    const none = () => 0;
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((f) => faultBackoffMs(f, none))).toEqual([2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000]);
    expect(faultBackoffMs(9, none)).toBe(300_000);
    expect(faultBackoffMs(50, none)).toBe(300_000);
    expect(faultBackoffMs(5000, none)).toBe(300_000);
    expect(faultBackoffMs(0, none)).toBe(2000);
  });

  it('adds up to 20% jitter from the injected random', () => {
    expect(faultBackoffMs(1, () => 0.5)).toBe(2200);
    expect(faultBackoffMs(3, () => 0.999999)).toBe(9600);
    for (let f = 1; f <= 12; f++) {
      const base = faultBackoffMs(f, () => 0);
      for (const r of [0, 0.1, 0.37, 0.5, 0.99]) {
        const d = faultBackoffMs(f, () => r);
        expect(d).toBeGreaterThanOrEqual(base);
        expect(d).toBeLessThanOrEqual(Math.round(base * 1.2));
      }
    }
  });
});

describe('quotaExceeded', () => {
  it('null when within every quota', () => {
    const pcb = makePcb({ usage: { ...ZERO_USAGE, steps: 9, prompt_tokens: 500, completion_tokens: 499 } });
    expect(quotaExceeded(pcb, CREATED + 59_999)).toBeNull();
    expect(quotaExceeded(makePcb({ quotas: DEFAULT_QUOTAS }), CREATED)).toBeNull();
  });

  it('steps', () => {
    const r = quotaExceeded(makePcb({ usage: { ...ZERO_USAGE, steps: 10 } }), CREATED);
    expect(r?.code).toBe('EQUOTA');
    expect(r?.reason).toContain('max_steps');
  });

  it('tokens count prompt + completion', () => {
    const r = quotaExceeded(makePcb({ usage: { ...ZERO_USAGE, prompt_tokens: 600, completion_tokens: 400 } }), CREATED);
    expect(r?.code).toBe('EQUOTA');
    expect(r?.reason).toContain('max_tokens');
    expect(r?.reason).toContain('1000');
    expect(quotaExceeded(makePcb({ usage: { ...ZERO_USAGE, prompt_tokens: 999, cached_tokens: 5000 } }), CREATED)).toBeNull();
  });

  it('wall seconds since created_at', () => {
    const r = quotaExceeded(makePcb(), CREATED + 60_000);
    expect(r?.code).toBe('EQUOTA');
    expect(r?.reason).toContain('max_wall_seconds');
  });
});
