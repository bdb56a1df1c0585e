import { describe, expect, it } from 'vitest';
import type { Grant } from '../kernel/capabilities.ts';
import type { Pcb } from '../kernel/pcb.ts';
import { autoDue, autoPolicyOf, checkpointable, diffTables, forkGrants, restoreGrants, restoredPcb, retention } from './policy.ts';
import { LIVE_META, TABLE_POLICY, metaRollsBack, policyOf } from './tables.ts';

const allow = (cap: string, extra: Partial<Grant> = {}): Grant => ({ cap, effect: 'allow', ...extra });

describe('restoreGrants', () => {
  it('keeps live use counts and expiries, drops grants added since, keeps live denies', () => {
    const atCheckpoint = [allow('fs:/**:rw'), allow('net:a.com', { uses: 3 }), allow('net:b.com')];
    const live = [allow('fs:/**:rw'), allow('net:a.com', { uses: 0 }), allow('net:c.com', { approved: true }), { cap: 'net:*', effect: 'deny' as const }];
    expect(restoreGrants(atCheckpoint, live)).toEqual([allow('fs:/**:rw'), allow('net:a.com', { uses: 0 }), { cap: 'net:*', effect: 'deny' }]);
  });

  it('a grant gone from the live process (revoked) stays gone', () => {
    expect(restoreGrants([allow('net:b.com')], [])).toEqual([]);
  });
});

describe('forkGrants', () => {
  it('keeps only what the parent still covers now; never copies use-limited grants', () => {
    const atCheckpoint = [allow('fs:/**:rw'), allow('net:a.com'), allow('net:once.com', { uses: 1 })];
    const parentNow = [allow('fs:/**:rw'), allow('net:once.com', { uses: 1 })];
    const r = forkGrants(atCheckpoint, parentNow, null, 0);
    expect(r.ok && r.value).toEqual([allow('fs:/**:rw')]);
  });

  it('passes the parent\'s denies and asks down, and refuses a wider request', () => {
    const parentNow = [allow('fs:/**:rw'), { cap: 'fs:/secret/**:rw', effect: 'deny' as const }, { cap: 'net:*', effect: 'ask' as const }];
    const r = forkGrants([allow('fs:/**:rw')], parentNow, null, 0);
    expect(r.ok && r.value).toEqual([allow('fs:/**:rw'), { cap: 'fs:/secret/**:rw', effect: 'deny' }, { cap: 'net:*', effect: 'ask' }]);
    expect(forkGrants([allow('fs:/**:rw')], parentNow, [allow('net:x.com')], 0).ok).toBe(false);
    const narrowed = forkGrants([allow('fs:/**:rw')], parentNow, [allow('fs:/tmp/**:r')], 0);
    expect(narrowed.ok && narrowed.value[0]).toEqual(allow('fs:/tmp/**:r'));
  });

  it('an expired parent grant covers nothing', () => {
    const r = forkGrants([allow('net:a.com')], [allow('net:a.com', { expires_at: 10 })], null, 20);
    expect(r.ok && r.value).toEqual([]);
  });
});

const pcb = (over: Partial<Pcb>): Pcb => ({
  pid: 'p1',
  tenant: 't',
  ppid: null,
  name: 'n',
  image: 'default',
  task: 'x',
  state: 'sleeping',
  priority: 50,
  model: { provider: 'scripted', model: 'scripted' },
  capabilities: [],
  quotas: { max_steps: 10, max_tokens: 100, max_wall_seconds: 100 },
  max_context_tokens: 1000,
  usage: { steps: 1, llm_calls: 1, prompt_tokens: 1, completion_tokens: 1, cached_tokens: 0, cache_write_tokens: 0, syscalls: 1 },
  wait: null,
  stopped_from: null,
  exit: null,
  created_at: 0,
  updated_at: 0,
  version: 3,
  ...over,
});

describe('restoredPcb', () => {
  it('is forward-only: a newer version, the live usage, quotas and identity', () => {
    const live = pcb({ state: 'ready', version: 9, ppid: 'pinit', usage: { ...pcb({}).usage, steps: 7, prompt_tokens: 50 } });
    const r = restoredPcb(pcb({}), live, 123);
    expect(r).toMatchObject({ state: 'sleeping', version: 10, ppid: 'pinit', updated_at: 123 });
    expect(r.usage.steps).toBe(7);
  });
});

describe('the rest', () => {
  it('checkpointable only at a step boundary', () => {
    expect(checkpointable(pcb({ state: 'running' }), 0).ok).toBe(false);
    expect(checkpointable(pcb({}), 1).ok).toBe(false);
    expect(checkpointable(pcb({}), 0).ok).toBe(true);
  });

  it('automatic checkpoints and retention', () => {
    const p = autoPolicyOf({ every_steps: 5 }, { keep: 2, on_sigstop: undefined });
    expect(p).toEqual({ every_steps: 5, on_sigstop: false, keep: 2 });
    expect(autoDue(p, 9, 5)).toBe(false);
    expect(autoDue(p, 10, 5)).toBe(true);
    expect(autoDue(autoPolicyOf(), 100, 0)).toBe(false);
    expect(retention([1, 2, 3, 4], 2)).toEqual([1, 2]);
    expect(retention([1], 2)).toEqual([]);
  });

  it('diffs tables by chunk', () => {
    expect(diffTables([{ name: 'a', rows: 2, chunks: ['x', 'y'] }, { name: 'b', rows: 1, chunks: ['z'] }], [{ name: 'a', rows: 3, chunks: ['x', 'w'] }, { name: 'b', rows: 1, chunks: ['z'] }])).toEqual([
      { table: 'a', chunks_added: 1, chunks_removed: 1, rows_before: 2, rows_after: 3 },
    ]);
  });

  it('classifies tables and meta keys; a table the description does not list is not copied', () => {
    expect(policyOf('outbox')).toBe('live');
    expect(policyOf('events')).toBe('skip');
    expect(policyOf('a_table_added_later')).toBe('skip');
    expect(TABLE_POLICY.pcb).toBe('rollback');
    expect(metaRollsBack('image')).toBe(true);
    expect(metaRollsBack('audit_seq')).toBe(false);
    expect(metaRollsBack('approval:3.0')).toBe(false);
    expect(LIVE_META.has('term_pending')).toBe(true);
  });
});
