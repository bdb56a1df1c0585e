import { describe, expect, it } from 'vitest';
import { PipelineSpecSchema, conditionHolds, retryDelaySeconds, topologicalOrder } from './spec.ts';
import { type Scope, isRef, parsePath, render, templateRefs } from './template.ts';

const parse = (stages: unknown[]) => PipelineSpecSchema.safeParse({ stages });
const noDeref = async () => {
  throw new Error('no reference expected');
};

describe('pipeline spec', () => {
  it('defaults a stage to a process stage and sorts the DAG so needs come first', () => {
    const r = parse([
      { name: 'c', task: 'c', needs: ['a', 'b'] },
      { name: 'b', task: 'b', needs: ['a'] },
      { name: 'a', task: 'a' },
    ]);
    expect(r.success).toBe(true);
    if (!r.success) return;
    expect(r.data.stages[0]?.type).toBe('process');
    const order = topologicalOrder(r.data.stages);
    expect(order.ok && order.value.map((s) => s.name)).toEqual(['a', 'b', 'c']);
  });

  it('names the stage and field of each problem: cycles, unknown needs, unreadable stages, item outside for_each', () => {
    const issues = (stages: unknown[]) => {
      const r = parse(stages);
      return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    };
    expect(issues([{ name: 'a', task: 'x', needs: ['b'] }, { name: 'b', task: 'y', needs: ['a'] }])[0]).toContain('cycle');
    expect(issues([{ name: 'a', task: 'x', needs: ['zz'] }])).toEqual(['stages.0.needs.0: "zz" is not a stage of this pipeline']);
    expect(issues([{ name: 'a', task: 'x' }, { name: 'a', task: 'y' }])).toEqual(['stages.1.name: duplicate stage name "a"']);
    expect(issues([{ name: 'a', task: 'x' }, { name: 'b', task: '{{stages.a.result}}' }])[0]).toContain('does not need');
    // Transitive needs are readable.
    expect(issues([{ name: 'a', task: 'x' }, { name: 'b', task: 'y', needs: ['a'] }, { name: 'c', task: '{{stages.a.result}}', needs: ['b'] }])).toEqual([]);
    expect(issues([{ name: 'a', task: '{{item}}' }])[0]).toContain('for_each');
    expect(issues([{ name: 'a', task: '{{item.x}}', for_each: 'input.xs' }])).toEqual([]);
    expect(issues([{ name: 'a', task: 'x', for_each: 'item' }])[0]).toContain('for_each reads a list');
    expect(issues([{ name: 'a', task: 'x', when: { path: 'stages.q.result' } }])[0]).toContain('does not need');
  });

  it('leaves the scripted provider its own placeholders', () => {
    expect(templateRefs('{{task}} {{last_result}} {{result:0.value.pid}}')).toEqual({ ok: true, value: [] });
    expect(parse([{ name: 'a', task: 'x', script: [{ text: 'echo {{task}}' }] }]).success).toBe(true);
  });

  it('rejects malformed paths in linear time', () => {
    expect(parsePath('input..x').ok).toBe(false);
    expect(parsePath('stages.a.status').ok).toBe(false);
    expect(parsePath('pipeline.id').ok).toBe(true);
    const hostile = `${'{{'.repeat(50_000)}x`;
    const t = Date.now();
    templateRefs(hostile);
    expect(Date.now() - t).toBeLessThan(500);
  });
});

describe('templates', () => {
  const scope: Scope = { pipeline: 'plx', input: { topic: 'tides', n: 3, list: ['a', 'b'] }, stages: new Map<string, unknown>([['s', { title: 'T', parts: [1, 2] }]]), item: { value: { name: 'i0' }, index: 0 } };

  it('inserts strings as they are and other values as JSON, and reads fields and indexes', async () => {
    expect(await render('{{input.topic}}/{{input.n}}/{{input.list}}/{{input.list.1}}', scope, noDeref)).toBe('tides/3/["a","b"]/b');
    expect(await render('{{stages.s.result.parts.0}} {{item.name}} #{{index}} in {{pipeline.id}}', scope, noDeref)).toBe('1 i0 #0 in plx');
  });

  it('a path that names nothing is EINVAL, not an empty string', async () => {
    await expect(render('{{input.missing}}', scope, noDeref)).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('reads through a result reference, and parses a JSON file to read into it', async () => {
    const ref = { $ref: 'file', pid: 'p1', path: '/out.json', bytes: 99 };
    expect(isRef(ref)).toBe(true);
    const s: Scope = { ...scope, stages: new Map([['big', ref]]) };
    const deref = async () => '{"summary": "short", "rows": [1]}';
    expect(await render('{{stages.big.result.summary}}', s, deref)).toBe('short');
    expect(await render('{{stages.big.result}}', s, deref)).toBe('{"summary": "short", "rows": [1]}');
  });
});

describe('conditions and retries', () => {
  it('equals, not_equals, in, and truthiness', () => {
    expect(conditionHolds({ path: 'x', equals: 'bug' }, 'bug')).toBe(true);
    expect(conditionHolds({ path: 'x', not_equals: 'bug' }, 'bug')).toBe(false);
    expect(conditionHolds({ path: 'x', in: [1, 2] }, 2)).toBe(true);
    expect(conditionHolds({ path: 'x' }, [])).toBe(false);
    expect(conditionHolds({ path: 'x' }, { a: 1 })).toBe(true);
  });

  it('backs off constant, linear or exponential', () => {
    expect([2, 3, 4].map((a) => retryDelaySeconds({ limit: 3, delay_seconds: 10, backoff: 'exponential' }, a))).toEqual([10, 20, 40]);
    expect([2, 3, 4].map((a) => retryDelaySeconds({ limit: 3, delay_seconds: 10, backoff: 'linear' }, a))).toEqual([10, 20, 30]);
    expect([2, 3].map((a) => retryDelaySeconds({ limit: 3, delay_seconds: 5, backoff: 'constant' }, a))).toEqual([5, 5]);
  });
});
