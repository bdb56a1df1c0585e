import { describe, expect, it } from 'vitest';
import { attenuate, covers } from './attenuation.ts';
import { decide, parseCapability } from './capabilities.ts';
import { FilterSchema, MAX_TEXT_BYTES, MetadataSchema, NamespaceSchema, checkText, matchesFilter, storedNamespace } from './memory.ts';
import { requirementFor } from './policy.ts';
import { validateCall } from './syscalls.ts';

describe('memory namespaces', () => {
  it('accepts self, tenant and shared names; refuses the kernel-reserved and malformed ones', () => {
    for (const ok of ['self', 'tenant', 'image/researcher', 'team/alpha', 'kb', 'a.b_c-d/e']) expect(NamespaceSchema.safeParse(ok).success).toBe(true);
    for (const bad of ['proc/p1', 'pages/p1', 'proc', 'Team', '/x', 'x/', 'a//b', '', 'x'.repeat(65), 'a b']) expect(NamespaceSchema.safeParse(bad).success).toBe(false);
  });

  it('self is stored per process; every other name as is', () => {
    expect(storedNamespace('self', 'p1')).toBe('proc/p1');
    expect(storedNamespace('team/alpha', 'p1')).toBe('team/alpha');
  });
});

describe('metadata, text and filters', () => {
  it('metadata is flat, with keys Vectorize accepts and none of the kernel\'s "_" keys', () => {
    expect(MetadataSchema.safeParse({ topic: 'x', year: 2025, done: true }).success).toBe(true);
    for (const bad of [{ _tenant: 'x' }, { 'a.b': 1 }, { $x: 1 }, { nested: { a: 1 } }, { list: ['a'] }, { big: 'x'.repeat(300) }]) expect(MetadataSchema.safeParse(bad).success).toBe(false);
  });

  it('text is limited in bytes, not characters', () => {
    expect(checkText('a'.repeat(MAX_TEXT_BYTES)).ok).toBe(true);
    expect(checkText('é'.repeat(MAX_TEXT_BYTES / 2 + 1))).toMatchObject({ ok: false, error: { code: 'E2BIG' } });
    expect(checkText('   ')).toMatchObject({ ok: false, error: { code: 'EINVAL' } });
  });

  it('filters follow Vectorize: implicit $eq, ranges on like types, sets; missing fields match $ne and $nin only', () => {
    const m = { topic: 'billing', year: 2025 };
    expect(matchesFilter(m, { topic: 'billing' })).toBe(true);
    expect(matchesFilter(m, { year: { $gt: 2024, $lte: 2025 } })).toBe(true);
    expect(matchesFilter(m, { year: { $gt: '2024' } })).toBe(false);
    expect(matchesFilter(m, { topic: { $in: ['a', 'billing'] } })).toBe(true);
    expect(matchesFilter(m, { missing: { $ne: 1 } })).toBe(true);
    expect(matchesFilter(m, { missing: { $nin: [1] } })).toBe(true);
    expect(matchesFilter(m, { missing: { $lt: 1 } })).toBe(false);
    expect(matchesFilter(m, { missing: 'x' })).toBe(false);
    expect(FilterSchema.safeParse({ a: { $regex: 'x' } }).success).toBe(false);
    expect(FilterSchema.safeParse({ a: {} }).success).toBe(false);
  });
});

describe('mem syscalls and capabilities', () => {
  const call = (name: string, args: unknown) => {
    const v = validateCall({ id: 'c', name, args });
    if (!v.ok) throw new Error(v.error.message);
    return v.value;
  };

  it('need mem:<namespace>:r to search and :w to write or delete, self by default', () => {
    expect(requirementFor(call('mem_search', { query: 'q' }), { children_spawned: 0 })).toEqual({ domain: 'mem', namespace: 'self', access: 'r' });
    expect(requirementFor(call('mem_write', { text: 't', namespace: 'tenant' }), { children_spawned: 0 })).toEqual({ domain: 'mem', namespace: 'tenant', access: 'w' });
    expect(requirementFor(call('mem_delete', { id: 'm_1', namespace: 'team/a' }), { children_spawned: 0 })).toEqual({ domain: 'mem', namespace: 'team/a', access: 'w' });
    expect(validateCall({ id: 'c', name: 'mem_search', args: { query: 'q', top_k: 21 } }).ok).toBe(false);
    expect(validateCall({ id: 'c', name: 'mem_write', args: { text: 't', namespace: 'pages/p1' } }).ok).toBe(false);
  });

  it('parses mem grants and decides by namespace glob and rights', () => {
    expect(parseCapability('mem:team/*:r')).toEqual({ ok: true, value: { domain: 'mem', namespace: 'team/*', read: true, write: false } });
    expect(parseCapability('mem:self').ok).toBe(false);
    expect(parseCapability('mem:Self:rw').ok).toBe(false);
    const grants = [{ cap: 'mem:self:rw' }, { cap: 'mem:team/*:r' }].map((g) => ({ ...g, effect: 'allow' as const }));
    expect(decide(grants, { domain: 'mem', namespace: 'team/alpha', access: 'r' }, 0).decision).toBe('allow');
    expect(decide(grants, { domain: 'mem', namespace: 'team/alpha', access: 'w' }, 0)).toMatchObject({ decision: 'deny', needed: 'mem:team/alpha:w' });
    expect(decide(grants, { domain: 'mem', namespace: 'team/alpha/x', access: 'r' }, 0).decision).toBe('deny');
    expect(decide(grants, { domain: 'mem', namespace: 'tenant', access: 'r' }, 0).decision).toBe('deny');
  });

  it('attenuates on spawn: a child gets a namespace and right only if the parent holds it', () => {
    const cap = (s: string) => {
      const c = parseCapability(s);
      if (!c.ok) throw new Error(s);
      return c.value;
    };
    expect(covers(cap('mem:**:rw'), cap('mem:team/*:r'))).toBe(true);
    expect(covers(cap('mem:team/*:r'), cap('mem:team/*:rw'))).toBe(false);
    expect(covers(cap('mem:team/*:rw'), cap('mem:team/**:r'))).toBe(false);
    const parent = [{ cap: 'mem:self:rw', effect: 'allow' as const }, { cap: 'mem:tenant:r', effect: 'allow' as const }];
    expect(attenuate(parent, [{ cap: 'mem:tenant:r', effect: 'allow' }], 0).ok).toBe(true);
    expect(attenuate(parent, [{ cap: 'mem:tenant:rw', effect: 'allow' }], 0)).toMatchObject({ ok: false, error: { code: 'EPERM' } });
  });
});
