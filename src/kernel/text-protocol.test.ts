import { describe, expect, it } from 'vitest';
import type { RawCall } from './syscalls.ts';
import { SYS_CALL_MARKER, type TextCall, formatTextCall, parseTextCalls } from './text-protocol.ts';

function callsOf(calls: readonly TextCall[]): RawCall[] {
  return calls.map((c, i) => {
    if (c.call === undefined) throw new Error(`call ${i} is an error: ${c.error.message}`);
    return c.call;
  });
}

function onlyError(text: string): { id: string; code: string; message: string } {
  const { calls } = parseTextCalls(text);
  expect(calls).toHaveLength(1);
  const e = calls[0]?.error;
  if (e === undefined) throw new Error('expected an error');
  return e;
}

describe('parseTextCalls', () => {
  it('returns the prose unchanged and no calls when there is no block', () => {
    expect(parseTextCalls('  just thinking [SYS_CALL no marker  ')).toEqual({ text: 'just thinking [SYS_CALL no marker', calls: [] });
  });

  it('parses a single block and strips it from the prose', () => {
    const r = parseTextCalls('Writing now. [SYS_CALL::{"name": "fs_write", "args": {"path": "a.txt", "content": "hi"}}] Done.');
    expect(callsOf(r.calls)).toEqual([{ id: 'text-0', name: 'fs_write', args: { path: 'a.txt', content: 'hi' } }]);
    expect(r.text).toBe('Writing now.  Done.');
  });

  it('parses multiple blocks in order with ids `${prefix}-${n}`', () => {
    const text = `a ${formatTextCall('sleep', { seconds: 1 })} b\n${formatTextCall('yield', {})} c ${formatTextCall('exit', { code: 0 })}`;
    const r = parseTextCalls(text, 'step7');
    expect(callsOf(r.calls).map((c) => [c.id, c.name])).toEqual([
      ['step7-0', 'sleep'],
      ['step7-1', 'yield'],
      ['step7-2', 'exit'],
    ]);
    expect(r.text).toBe('a  b\n c');
  });

  it('does not end a block at `]` or `}` inside JSON strings, and handles escaped quotes', () => {
    const content = 'x] } ]] {"nested": "\\"quoted\\""} \\ end';
    const text = `[SYS_CALL::{"name":"fs_write","args":{"path":"a","content":${JSON.stringify(content)}}}] after`;
    const r = parseTextCalls(text);
    expect(callsOf(r.calls)[0]?.args).toEqual({ path: 'a', content });
    expect(r.text).toBe('after');
  });

  it('allows whitespace between marker, JSON and `]`', () => {
    const r = parseTextCalls('[SYS_CALL::  \n {"name": "yield"} \n\t ]tail');
    expect(callsOf(r.calls)).toEqual([{ id: 'text-0', name: 'yield', args: {} }]);
    expect(r.text).toBe('tail');
  });

  it('args omitted become {}; other args pass through for validation', () => {
    expect(callsOf(parseTextCalls('[SYS_CALL::{"name":"yield"}]').calls)[0]?.args).toEqual({});
    expect(callsOf(parseTextCalls('[SYS_CALL::{"name":"yield","args":[1]}]').calls)[0]?.args).toEqual([1]);
  });

  it('missing `]` is EINVAL and the text after the object stays prose', () => {
    const r = parseTextCalls('[SYS_CALL::{"name":"yield"} and more');
    expect(r.calls[0]?.error).toMatchObject({ id: 'text-0', code: 'EINVAL' });
    expect(r.calls[0]?.error?.message).toContain(']');
    expect(r.text).toBe('and more');
  });

  it('an unterminated object is EINVAL and consumes the rest of the text', () => {
    const r = parseTextCalls('before [SYS_CALL::{"name":"fs_write","args":{"content":"}"} trailing');
    expect(r.calls).toHaveLength(1);
    expect(r.calls[0]?.error).toMatchObject({ id: 'text-0', code: 'EINVAL' });
    expect(r.calls[0]?.error?.message).toContain('not terminated');
    expect(r.text).toBe('before');
  });

  it('an unterminated object does not swallow a later block', () => {
    const r = parseTextCalls('before [SYS_CALL::{"name":"fs_write","args":{"content":"}"} [SYS_CALL::{"name":"yield"}] after');
    expect(r.calls).toHaveLength(2);
    expect(r.calls[0]?.error?.message).toContain('not terminated');
    expect(r.calls[0]?.error?.details).toEqual({ block: '[SYS_CALL::{"name":"fs_write","args":{"content":"}"} ' });
    expect(r.calls[1]?.call).toEqual({ id: 'text-1', name: 'yield', args: {} });
    expect(r.text).toBe('before  after');
  });

  it('a marker not followed by an object is EINVAL up to the end of its line', () => {
    const r = parseTextCalls('[SYS_CALL::fs_write a.txt]\n[SYS_CALL::{"name":"yield"}]');
    expect(r.calls).toHaveLength(2);
    expect(r.calls[0]?.error).toMatchObject({ id: 'text-0', code: 'EINVAL' });
    expect(r.calls[0]?.error?.details).toEqual({ block: '[SYS_CALL::fs_write a.txt]' });
    expect(r.calls[1]?.call).toEqual({ id: 'text-1', name: 'yield', args: {} });
  });

  // A marker without an object is an error up to the end of its line or the next marker, whichever comes first.
  it('a marker without an object does not swallow a later block on the same line', () => {
    const r = parseTextCalls('I will call [SYS_CALL::] now [SYS_CALL::{"name":"yield"}] ok');
    expect(r.calls).toHaveLength(2);
    expect(r.calls[0]?.error?.code).toBe('EINVAL');
    expect(r.calls[1]?.call).toEqual({ id: 'text-1', name: 'yield', args: {} });
  });

  it('rejects invalid JSON, non-object JSON and a missing or empty name', () => {
    expect(onlyError('[SYS_CALL::{name: "yield"}]').message).toContain('not valid JSON');
    expect(onlyError('[SYS_CALL::{"name": "yield",}]').code).toBe('EINVAL');
    expect(onlyError('[SYS_CALL::{"args": {}}]').message).toContain('"name"');
    expect(onlyError('[SYS_CALL::{"name": ""}]').message).toContain('"name"');
    expect(onlyError('[SYS_CALL::{"name": 7}]').code).toBe('EINVAL');
    expect(onlyError('[SYS_CALL::[1, 2]]').code).toBe('EINVAL');
    expect(onlyError('[SYS_CALL::"yield"]').code).toBe('EINVAL');
  });

  it('a bad block does not stop later blocks and numbering continues', () => {
    const r = parseTextCalls('[SYS_CALL::{bad}]\n[SYS_CALL::{"name":"yield"}]');
    expect(r.calls[0]?.error?.id).toBe('text-0');
    expect(r.calls[1]?.call?.id).toBe('text-1');
  });

  it('never throws on random fragments, and every result is a call or an EINVAL error', () => {
    const fragments = [SYS_CALL_MARKER, '{', '}', '"', '\\', ']', 'x', ' ', '\n', '"name"', ':', '"yield"', ','];
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let n = 0; n < 500; n++) {
      let s = '';
      const len = Math.floor(rand() * 40);
      for (let i = 0; i < len; i++) s += fragments[Math.floor(rand() * fragments.length)];
      const r = parseTextCalls(s);
      expect(typeof r.text).toBe('string');
      r.calls.forEach((c, i) => {
        if (c.call !== undefined) expect(c.call.id).toBe(`text-${i}`);
        else expect(c.error).toMatchObject({ id: `text-${i}`, code: 'EINVAL' });
      });
    }
  });
});

describe('formatTextCall', () => {
  it('round-trips through parseTextCalls', () => {
    const samples: [string, unknown][] = [
      ['fs_write', { path: 'notes/a.md', content: 'line ] } "q" \\ [SYS_CALL::{"name":"x"}]\n' }],
      ['exit', { code: 0, result: [1, { a: null }] }],
      ['yield', {}],
    ];
    const text = samples.map(([n, a]) => formatTextCall(n, a)).join(' prose ');
    const r = parseTextCalls(text);
    expect(callsOf(r.calls).map((c) => [c.name, c.args])).toEqual(samples);
    expect(r.text).toBe('prose  prose');
  });
});
