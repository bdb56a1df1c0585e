import { describe, expect, it } from 'vitest';
import { MAX_PATH_LENGTH, MAX_SEGMENT_LENGTH, dirPrefix, normalizePath } from './paths.ts';

function normalized(input: string): string {
  const r = normalizePath(input);
  if (!r.ok) throw new Error(`expected "${input}" to normalise, got ${r.error.code}: ${r.error.message}`);
  return r.value;
}

function codeOf(input: string): string {
  const r = normalizePath(input);
  return r.ok ? `ok:${r.value}` : r.error.code;
}

describe('normalizePath', () => {
  it('resolves relative, dotted and absolute forms to the same path', () => {
    for (const p of ['a/b', './a/b', '/a/b', 'a//b/', '/./a/./b/.', '//a///b']) expect(normalized(p), p).toBe('/a/b');
  });

  it('the root is "/"', () => {
    for (const p of ['/', '', '.', './', '//', 'a/..', '/a/b/../..']) expect(normalized(p), p).toBe('/');
  });

  it('resolves ".." inside the root', () => {
    expect(normalized('a/../b')).toBe('/b');
    expect(normalized('/a/b/../c/./d/..')).toBe('/a/c');
    expect(normalized('...')).toBe('/...');
    expect(normalized('a/..b')).toBe('/a/..b');
  });

  it('EPERM for paths that escape the root', () => {
    for (const p of ['..', '/..', '/../x', '../x', 'a/../../x', './../a', 'a/b/../../../c']) expect(codeOf(p), p).toBe('EPERM');
  });

  it('EPERM for drive letters and URLs', () => {
    for (const p of ['C:/x', 'c:', 'file:///etc/passwd', 'https://example.com/x', 'git+ssh://host/repo']) {
      expect(codeOf(p), p).toBe('EPERM');
    }
    expect(normalized('notes:2024/a')).toBe('/notes:2024/a');
  });

  it('EINVAL for NUL, control characters and backslashes', () => {
    for (const p of ['a\u0000b', 'a\nb', 'a\tb', '\u001f', 'a\u007fb', 'a\\b', '..\\..\\etc', 'C:\\x']) expect(codeOf(p), JSON.stringify(p)).toBe('EINVAL');
  });

  it('EINVAL for an over-long path or segment, at exactly the limit + 1', () => {
    const atLimit = `/${'a/'.repeat((MAX_PATH_LENGTH - 2) / 2)}b`;
    expect(atLimit.length).toBe(MAX_PATH_LENGTH);
    expect(codeOf(atLimit)).toBe(`ok:${atLimit}`);
    expect(codeOf(`${atLimit}c`)).toBe('EINVAL');
    const seg = 'x'.repeat(MAX_SEGMENT_LENGTH);
    expect(normalized(`d/${seg}`)).toBe(`/d/${seg}`);
    expect(codeOf(`d/${seg}x`)).toBe('EINVAL');
    expect(codeOf(`${seg}x/..`)).toBe('EINVAL');
  });

  it('error messages are actionable', () => {
    const r = normalizePath('a\\b');
    expect(r.ok ? '' : r.error.message).toContain('backslash');
    const e = normalizePath('../x');
    expect(e.ok ? '' : e.error.message).toContain('../x');
  });
});

describe('dirPrefix', () => {
  it('maps the root to "/" and other directories to "dir/"', () => {
    expect(dirPrefix('/')).toBe('/');
    expect(dirPrefix('/a')).toBe('/a/');
    expect(dirPrefix('/a/b')).toBe('/a/b/');
    expect(dirPrefix(normalized('./notes/'))).toBe('/notes/');
  });
});
