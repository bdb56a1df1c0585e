import { describe, expect, it } from 'vitest';
import { PREVIEW_STRING_CHARS, preview } from './preview.ts';

describe('preview', () => {
  it('leaves primitives and short strings unchanged', () => {
    for (const v of [null, undefined, 0, -1.5, true, false, 'short', '', 10n]) expect(preview(v)).toBe(v);
    const s = 'x'.repeat(PREVIEW_STRING_CHARS);
    expect(preview(s)).toBe(s);
  });

  it('cuts long strings and notes their length', () => {
    const s = `${'a'.repeat(PREVIEW_STRING_CHARS)}${'b'.repeat(100)}`;
    expect(preview(s)).toBe(`${'a'.repeat(PREVIEW_STRING_CHARS)}… [${PREVIEW_STRING_CHARS + 100} chars]`);
    expect(preview('abcdefgh', 3)).toBe('abc… [8 chars]');
  });

  it('cuts strings wherever they are nested, keeping structural fields', () => {
    const long = 'z'.repeat(2000);
    expect(preview({ path: 'a.txt', content: long, meta: [long, 1] }, 10)).toEqual({
      path: 'a.txt',
      content: `${'z'.repeat(10)}… [2000 chars]`,
      meta: [`${'z'.repeat(10)}… [2000 chars]`, 1],
    });
  });

  it('stops at nesting depth 6', () => {
    const deep = { a: { b: { c: { d: { e: { f: { g: 1 } } } } } } };
    expect(preview(deep)).toEqual({ a: { b: { c: { d: { e: { f: '[…]' } } } } } });
    expect(preview([[[[[['leaf']]]]]])).toEqual([[[[[['leaf']]]]]]);
    expect(preview([[[[[[['leaf']]]]]]])).toEqual([[[[[['[…]']]]]]]);
  });

  it('keeps the first 50 array items and notes the total', () => {
    const fifty = Array.from({ length: 50 }, (_, i) => i);
    expect(preview(fifty)).toEqual(fifty);
    const out = preview(Array.from({ length: 120 }, (_, i) => i));
    expect(out).toEqual([...fifty, '… [120 items]']);
  });

  it('keeps the first 50 keys and notes the total', () => {
    const obj = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
    expect(preview(obj(50))).toEqual(obj(50));
    expect(preview(obj(75))).toEqual({ ...obj(50), '…': '[75 keys]' });
  });

  it('does not modify its input', () => {
    const input = { s: 'y'.repeat(1000), list: Array.from({ length: 60 }, () => 'q') };
    const copy = structuredClone(input);
    preview(input);
    expect(input).toEqual(copy);
  });
});
