import { describe, expect, it } from 'vitest';
import { attenuate, covers } from './attenuation.ts';
import { type Capability, type Grant, type Requirement, consume, decide, describeRequirement, grants, normalizeGrant, parseCapability } from './capabilities.ts';
import { globCovers, globMatch } from './globs.ts';

const NOW = 1_700_000_000_000;

function cap(spec: string): Capability {
  const r = parseCapability(spec);
  if (!r.ok) throw new Error(`expected "${spec}" to parse: ${r.error.message}`);
  return r.value;
}

const allow = (c: string, extra: Partial<Grant> = {}): Grant => ({ cap: c, effect: 'allow', ...extra });
const fsReq = (path: string, access: 'r' | 'w'): Requirement => ({ domain: 'fs', path, access });
const netReq = (host: string, method: string): Requirement => ({ domain: 'net', host, method });
const allowed = (list: readonly Grant[], req: Requirement): boolean => decide(list, req, NOW).decision === 'allow';

describe('parseCapability', () => {
  it('parses every domain', () => {
    expect(cap('fs:/home/**:rw')).toEqual({ domain: 'fs', path: '/home/**', read: true, write: true });
    expect(cap('fs:/a/*.txt:r')).toEqual({ domain: 'fs', path: '/a/*.txt', read: true, write: false });
    expect(cap('fs:/a:w')).toEqual({ domain: 'fs', path: '/a', read: false, write: true });
    expect(cap('fs:/a:wr')).toEqual({ domain: 'fs', path: '/a', read: true, write: true });
    expect(cap('net:api.github.com:GET')).toEqual({ domain: 'net', host: 'api.github.com', methods: ['GET'] });
    expect(cap('net:*.example.com:GET,POST')).toEqual({ domain: 'net', host: '*.example.com', methods: ['GET', 'POST'] });
    expect(cap('net:API.Example.com:get, post')).toEqual({ domain: 'net', host: 'api.example.com', methods: ['GET', 'POST'] });
    expect(cap('net:*')).toEqual({ domain: 'net', host: '*', methods: '*' });
    expect(cap('net:host:*')).toEqual({ domain: 'net', host: 'host', methods: '*' });
    expect(cap('spawn')).toEqual({ domain: 'spawn', max: null });
    expect(cap('spawn:max=5')).toEqual({ domain: 'spawn', max: 5 });
    expect(cap('spawn:max=0')).toEqual({ domain: 'spawn', max: 0 });
    expect(cap('proc:signal')).toEqual({ domain: 'proc', right: 'signal' });
    expect(cap('proc:fork')).toEqual({ domain: 'proc', right: 'fork' });
    expect(cap('ipc:send:pid/*')).toEqual({ domain: 'ipc', right: 'send', target: 'pid/*' });
    expect(cap('ipc:publish:topic/alerts')).toEqual({ domain: 'ipc', right: 'publish', target: 'topic/alerts' });
    expect(cap('ipc:subscribe:topic/*')).toEqual({ domain: 'ipc', right: 'subscribe', target: 'topic/*' });
    expect(cap('tool:register')).toEqual({ domain: 'tool', right: 'register' });
    expect(cap('tool:call:csv_*')).toEqual({ domain: 'tool', right: 'call', name: 'csv_*' });
  });

  it('EINVAL with details.capability for malformed specs', () => {
    const bad = [
      '', 'foo:bar', 'FS:/a:r', 'fs', 'fs:/a', 'fs:a/b:r', 'fs::r', 'fs:/a:x', 'fs:/a:rwx', 'fs:/a:', 'fs:/a:b:r',
      'net', 'net:', 'net::GET', 'net:host:FETCH', 'net:host:', 'net:host:GET,', 'net:a_b.com', 'net:a:GET:x', 'net:host:8080',
      'spawn:', 'spawn:max=abc', 'spawn:max=', 'spawn:max=-1', 'spawn:max=1234567', 'spawn:5', 'spawn:max=1:x',
      'proc', 'proc:kill', 'proc:signal:x', 'ipc', 'ipc:send', 'ipc:send:', 'ipc:read:x', 'ipc:send:a:b',
      'tool', 'tool:call', 'tool:call:', 'tool:register:x', 'tool:call:a:b', 'tool:delete:x',
    ];
    for (const spec of bad) {
      const r = parseCapability(spec);
      if (r.ok) throw new Error(`"${spec}" should not parse`);
      expect(r.error.code, spec).toBe('EINVAL');
      expect(r.error.details, spec).toEqual({ capability: spec });
      expect(r.error.message, spec).toContain(spec);
    }
  });
});

describe('normalizeGrant', () => {
  it('turns a bare string into an unlimited allow grant, passes objects through, rejects bad caps', () => {
    expect(normalizeGrant('fs:/a:r')).toEqual({ ok: true, value: { cap: 'fs:/a:r', effect: 'allow' } });
    const g: Grant = { cap: 'net:*', effect: 'deny', expires_at: 5, uses: 2 };
    expect(normalizeGrant(g)).toEqual({ ok: true, value: g });
    const r = normalizeGrant({ cap: 'nope:x', effect: 'allow' });
    expect(r.ok ? null : r.error.details).toEqual({ capability: 'nope:x' });
  });
});

describe('globMatch', () => {
  it('* stays within a path segment / host label; ** crosses', () => {
    expect(globMatch('/a/*', '/a/b', '/')).toBe(true);
    expect(globMatch('/a/*', '/a/', '/')).toBe(true);
    expect(globMatch('/a/*', '/a/b/c', '/')).toBe(false);
    expect(globMatch('/a/**', '/a/b/c', '/')).toBe(true);
    expect(globMatch('/a/*.txt', '/a/x.txt', '/')).toBe(true);
    expect(globMatch('/a/*.txt', '/a/b/x.txt', '/')).toBe(false);
    expect(globMatch('/a/*.txt', '/a/x.txt.bak', '/')).toBe(false);
    expect(globMatch('*.example.com', 'api.example.com', '.')).toBe(true);
    expect(globMatch('*.example.com', 'a.b.example.com', '.')).toBe(false);
    expect(globMatch('**.example.com', 'a.b.example.com', '.')).toBe(true);
    expect(globMatch('*.example.com', 'example.com', '.')).toBe(false);
    expect(globMatch('a*', 'a/b', '.')).toBe(true);
  });

  it('treats regex metacharacters literally and anchors both ends', () => {
    expect(globMatch('/a+b/(x).txt', '/a+b/(x).txt', '/')).toBe(true);
    expect(globMatch('/a+b/(x).txt', '/aab/x.txt', '/')).toBe(false);
    expect(globMatch('/a+b/(x).txt', '/a+b/(x)Xtxt', '/')).toBe(false);
    expect(globMatch('/a?[1]{2}|^$\\', '/a?[1]{2}|^$\\', '/')).toBe(true);
    expect(globMatch('/a?', '/a', '/')).toBe(false);
    expect(globMatch('/a', '/a/b', '/')).toBe(false);
    expect(globMatch('/a', 'x/a', '/')).toBe(false);
    expect(grants(cap('fs:/a+b/(x).txt:r'), fsReq('/a+b/(x).txt', 'r'))).toBe(true);
    expect(grants(cap('fs:/a+b/(x).txt:r'), fsReq('/aab/x.txt', 'r'))).toBe(false);
  });
});

describe('grants and decide', () => {
  it('fs: rights, globs, and dir/** granting the directory itself', () => {
    expect(grants(cap('fs:/home/**:r'), fsReq('/home/a/b.txt', 'r'))).toBe(true);
    expect(grants(cap('fs:/home/**:r'), fsReq('/home/a/b.txt', 'w'))).toBe(false);
    expect(grants(cap('fs:/home/**:w'), fsReq('/home/a', 'r'))).toBe(false);
    expect(grants(cap('fs:/home/**:rw'), fsReq('/home', 'w'))).toBe(true);
    expect(grants(cap('fs:/home/**:rw'), fsReq('/homework', 'r'))).toBe(false);
    expect(grants(cap('fs:/home/*:r'), fsReq('/home', 'r'))).toBe(false);
    expect(grants(cap('fs:/**:r'), fsReq('/', 'r'))).toBe(true);
    expect(grants(cap('fs:/a/*.txt:r'), fsReq('/a/b/c.txt', 'r'))).toBe(false);
  });

  it('net: methods, *, and host globs', () => {
    expect(grants(cap('net:api.github.com:GET'), netReq('api.github.com', 'GET'))).toBe(true);
    expect(grants(cap('net:api.github.com:GET'), netReq('API.GitHub.com', 'GET'))).toBe(true);
    expect(grants(cap('net:api.github.com:GET'), netReq('api.github.com', 'POST'))).toBe(false);
    expect(grants(cap('net:api.github.com:GET'), netReq('github.com', 'GET'))).toBe(false);
    expect(grants(cap('net:h:GET,POST'), netReq('h', 'POST'))).toBe(true);
    expect(grants(cap('net:h'), netReq('h', 'DELETE'))).toBe(true);
    expect(grants(cap('net:*'), netReq('anything.example.org', 'PATCH'))).toBe(true);
    expect(grants(cap('net:*:GET'), netReq('x.y.z', 'PUT'))).toBe(false);
    expect(grants(cap('net:*.example.com:GET'), netReq('api.example.com', 'GET'))).toBe(true);
    expect(grants(cap('net:*.example.com:GET'), netReq('example.com', 'GET'))).toBe(false);
    expect(grants(cap('net:*.example.com:GET'), netReq('a.b.example.com', 'GET'))).toBe(false);
    expect(grants(cap('net:*.example.com:GET'), netReq('evilexample.com', 'GET'))).toBe(false);
  });

  it('spawn max vs count; proc, ipc and tool; no cross-domain matches', () => {
    expect(grants(cap('spawn:max=5'), { domain: 'spawn', count: 5 })).toBe(true);
    expect(grants(cap('spawn:max=5'), { domain: 'spawn', count: 6 })).toBe(false);
    expect(grants(cap('spawn:max=0'), { domain: 'spawn', count: 1 })).toBe(false);
    expect(grants(cap('spawn'), { domain: 'spawn', count: 1_000_000 })).toBe(true);
    expect(grants(cap('proc:signal'), { domain: 'proc', right: 'signal' })).toBe(true);
    expect(grants(cap('proc:signal'), { domain: 'proc', right: 'fork' })).toBe(false);
    expect(grants(cap('proc:checkpoint'), { domain: 'proc', right: 'checkpoint' })).toBe(true);
    expect(grants(cap('ipc:send:pid/*'), { domain: 'ipc', right: 'send', target: 'pid/p1' })).toBe(true);
    expect(grants(cap('ipc:send:pid/*'), { domain: 'ipc', right: 'publish', target: 'pid/p1' })).toBe(false);
    expect(grants(cap('ipc:subscribe:topic/*'), { domain: 'ipc', right: 'subscribe', target: 'topic/a/b' })).toBe(false);
    expect(grants(cap('tool:call:csv_*'), { domain: 'tool', right: 'call', name: 'csv_parse' })).toBe(true);
    expect(grants(cap('tool:call:csv_*'), { domain: 'tool', right: 'call', name: 'json_parse' })).toBe(false);
    expect(grants(cap('tool:call:*'), { domain: 'tool', right: 'register' })).toBe(false);
    expect(grants(cap('tool:register'), { domain: 'tool', right: 'register' })).toBe(true);
    expect(grants(cap('net:*'), fsReq('/a', 'r'))).toBe(false);
    expect(grants(cap('fs:/**:rw'), { domain: 'proc', right: 'signal' })).toBe(false);
  });

  it('describeRequirement names the exact capability needed', () => {
    expect(describeRequirement(fsReq('/a/b', 'w'))).toBe('fs:/a/b:w');
    expect(describeRequirement(netReq('h.com', 'GET'))).toBe('net:h.com:GET');
    expect(describeRequirement({ domain: 'spawn', count: 3 })).toBe('spawn:max=3');
    expect(describeRequirement({ domain: 'proc', right: 'signal' })).toBe('proc:signal');
    expect(describeRequirement({ domain: 'ipc', right: 'publish', target: 't/x' })).toBe('ipc:publish:t/x');
    expect(describeRequirement({ domain: 'tool', right: 'register' })).toBe('tool:register');
    expect(describeRequirement({ domain: 'tool', right: 'call', name: 'f' })).toBe('tool:call:f');
  });

  it('precedence: deny > standing approval > ask > allow, in any order', () => {
    const req = fsReq('/a', 'r');
    const d: Grant = { cap: 'fs:/**:r', effect: 'deny' };
    const s: Grant = { cap: 'fs:/a:r', effect: 'allow', approved: true };
    const k: Grant = { cap: 'fs:/a:rw', effect: 'ask' };
    const a = allow('fs:/*:r');
    expect(decide([a, k, s, d], req, NOW)).toEqual({ decision: 'deny', grant: 3, needed: 'fs:/a:r' });
    expect(decide([d, a], req, NOW)).toEqual({ decision: 'deny', grant: 0, needed: 'fs:/a:r' });
    expect(decide([a, k, s], req, NOW)).toEqual({ decision: 'allow', grant: 2 });
    expect(decide([a, k], req, NOW)).toEqual({ decision: 'ask', grant: 1, needed: 'fs:/a:r' });
    expect(decide([k, a], req, NOW)).toEqual({ decision: 'ask', grant: 0, needed: 'fs:/a:r' });
    expect(decide([allow('net:*'), a, allow('fs:/a:r')], req, NOW)).toEqual({ decision: 'allow', grant: 1 });
    expect(decide([{ cap: 'fs:/a:r', effect: 'ask', approved: true }, a], req, NOW).decision).toBe('ask');
  });

  it('no match, non-matching grants, invalid caps, expired and used-up grants → deny naming the need', () => {
    const req = netReq('api.github.com', 'POST');
    const expected = { decision: 'deny', grant: null, needed: 'net:api.github.com:POST' };
    expect(decide([], req, NOW)).toEqual(expected);
    expect(decide([allow('net:api.github.com:GET'), allow('bogus:x'), { cap: 'net:*', effect: 'deny', expires_at: NOW }], req, NOW)).toEqual(expected);
    expect(decide([allow('net:*', { expires_at: NOW })], req, NOW)).toEqual(expected);
    expect(decide([allow('net:*', { expires_at: NOW - 1 })], req, NOW)).toEqual(expected);
    expect(decide([allow('net:*', { uses: 0 })], req, NOW)).toEqual(expected);
    expect(decide([allow('net:*', { expires_at: NOW + 1, uses: 1 })], req, NOW)).toEqual({ decision: 'allow', grant: 0 });
    expect(decide([allow('net:*', { expires_at: null, uses: null })], req, NOW)).toEqual({ decision: 'allow', grant: 0 });
    expect(decide([{ cap: 'net:*', effect: 'deny', uses: 0 }, allow('net:*')], req, NOW)).toEqual({ decision: 'allow', grant: 1 });
  });

  it('decide does not mutate its input', () => {
    const list: Grant[] = [allow('fs:/**:r', { uses: 1 }), { cap: 'fs:/x:r', effect: 'deny' }];
    const before = structuredClone(list);
    decide(list, fsReq('/a', 'r'), NOW);
    decide(list, fsReq('/x', 'r'), NOW);
    expect(list).toEqual(before);
  });
});

describe('consume', () => {
  it('decrements uses of the indexed grant only, and only when numeric; returns a new array', () => {
    const list: Grant[] = [allow('fs:/a:r', { uses: 2 }), allow('fs:/b:r', { uses: 3 }), allow('fs:/c:r'), allow('fs:/d:r', { uses: null })];
    const before = structuredClone(list);
    const out = consume(list, 1);
    expect(out).not.toBe(list);
    expect(list).toEqual(before);
    expect(out.map((g) => g.uses)).toEqual([2, 2, undefined, null]);
    expect(out[0]).toBe(list[0]);
    expect(consume(list, 2)).toEqual(before);
    expect(consume(list, 3)).toEqual(before);
    expect(consume(list, 9)).toEqual(before);
    expect(consume(consume(list, 0), 0)[0]?.uses).toBe(0);
  });
});

describe('covers', () => {
  const c = (p: string, ch: string) => covers(cap(p), cap(ch));

  it('per-domain subset rules', () => {
    expect(c('fs:/home/**:rw', 'fs:/home/a/*.txt:r')).toBe(true);
    expect(c('fs:/home/**:r', 'fs:/home/a:w')).toBe(false);
    expect(c('fs:/home/**:r', 'fs:/home/a:rw')).toBe(false);
    expect(c('fs:/home/**:rw', 'fs:/etc/x:r')).toBe(false);
    expect(c('fs:/home/a:r', 'fs:/home/**:r')).toBe(false);
    expect(c('fs:/a/*:r', 'fs:/a/*:r')).toBe(true);
    expect(c('fs:/a/*:r', 'fs:/a/b/c:r')).toBe(false);
    expect(c('net:*', 'net:x.com:POST')).toBe(true);
    expect(c('net:*:GET', 'net:x.com')).toBe(false);
    expect(c('net:x.com:GET,POST', 'net:x.com:POST')).toBe(true);
    expect(c('net:x.com:GET', 'net:x.com:GET,POST')).toBe(false);
    expect(c('net:*.x.com', 'net:api.x.com:GET')).toBe(true);
    expect(c('net:*.x.com', 'net:a.b.x.com:GET')).toBe(false);
    expect(c('net:api.x.com', 'net:*.x.com')).toBe(false);
    expect(c('spawn', 'spawn:max=99')).toBe(true);
    expect(c('spawn:max=5', 'spawn:max=5')).toBe(true);
    expect(c('spawn:max=5', 'spawn:max=6')).toBe(false);
    expect(c('spawn:max=5', 'spawn')).toBe(false);
    expect(c('proc:signal', 'proc:signal')).toBe(true);
    expect(c('ipc:send:pid/*', 'ipc:send:pid/p1')).toBe(true);
    expect(c('ipc:send:pid/*', 'ipc:publish:pid/p1')).toBe(false);
    expect(c('ipc:publish:topic/alerts', 'ipc:publish:topic/*')).toBe(false);
    expect(c('tool:call:csv_*', 'tool:call:csv_parse')).toBe(true);
    expect(c('tool:call:csv_*', 'tool:call:*')).toBe(false);
    expect(c('tool:call:*', 'tool:register')).toBe(false);
    expect(c('tool:register', 'tool:register')).toBe(true);
    expect(c('fs:/**:rw', 'net:*')).toBe(false);
  });

  // The child's pattern is a pattern, not literal text: a parent's `*` must never cover a child's `**`.
  it('a single-segment * does not cover ** (fs)', () => {
    expect(c('fs:/home/*:r', 'fs:/home/**:r')).toBe(false);
  });
  it('a single-label * does not cover ** (net)', () => {
    expect(c('net:*.example.com:GET', 'net:**.example.com:GET')).toBe(false);
  });
  it('a single-segment * does not cover ** (ipc)', () => {
    expect(c('ipc:subscribe:topic/*', 'ipc:subscribe:topic/**')).toBe(false);
  });
  it('so attenuate cannot widen fs:/home/*:r into a child read of /home/a/b', () => {
    const parent = [allow('fs:/home/*:r')];
    expect(allowed(parent, fsReq('/home/a/b', 'r'))).toBe(false);
    const r = attenuate(parent, [allow('fs:/home/**:r')], NOW);
    expect(r.ok && allowed(r.value, fsReq('/home/a/b', 'r'))).toBe(false);
  });
});

describe('attenuate', () => {
  it('passes covered grants with the earlier expiry, appends live parent denies and asks once, never hands on a use-limited grant', () => {
    const parent: Grant[] = [
      allow('fs:/home/**:rw', { expires_at: NOW + 100 }),
      { cap: 'fs:/home/secret/**:rw', effect: 'deny' },
      { cap: 'net:*', effect: 'deny' },
      { cap: 'spawn', effect: 'deny', expires_at: NOW },
      allow('net:api.x.com:GET'),
      { cap: 'net:api.x.com:POST', effect: 'ask' },
      allow('fs:/once/**:w', { uses: 1 }),
    ];
    const r = attenuate(parent, [allow('fs:/home/a/**:r', { expires_at: NOW + 500, uses: 2, approved: true }), allow('net:api.x.com:GET', { uses: 7 }), { cap: 'net:*', effect: 'deny' }], NOW);
    expect(r).toEqual({
      ok: true,
      value: [
        { cap: 'fs:/home/a/**:r', effect: 'allow', expires_at: NOW + 100, uses: 2 },
        { cap: 'net:api.x.com:GET', effect: 'allow', uses: 7 },
        { cap: 'net:*', effect: 'deny' },
        { cap: 'fs:/home/secret/**:rw', effect: 'deny' },
        { cap: 'net:api.x.com:POST', effect: 'ask' },
      ],
    });
    const earlier = attenuate(parent, [allow('fs:/home/x:r', { expires_at: NOW + 1 })], NOW);
    expect(earlier.ok && earlier.value[0]).toEqual({ cap: 'fs:/home/x:r', effect: 'allow', expires_at: NOW + 1 });
    // Copies of a one-shot grant would multiply its uses.
    expect(attenuate(parent, [allow('fs:/once/a:w')], NOW)).toMatchObject({ ok: false, error: { code: 'EPERM' } });
  });

  it('EPERM with details.capability for a request the parent does not cover', () => {
    const parent: Grant[] = [allow('fs:/home/**:r'), allow('spawn:max=3'), allow('net:x.com:GET')];
    for (const want of ['fs:/home/a:w', 'fs:/etc/**:r', 'spawn:max=4', 'spawn', 'net:x.com:POST', 'net:*', 'proc:signal', 'tool:register']) {
      const r = attenuate(parent, [allow('fs:/home/a:r'), allow(want)], NOW);
      if (r.ok) throw new Error(`"${want}" should be refused`);
      expect(r.error.code, want).toBe('EPERM');
      expect(r.error.details, want).toEqual({ capability: want });
    }
    const bad = attenuate(parent, [allow('bogus')], NOW);
    expect(bad.ok ? null : bad.error).toMatchObject({ code: 'EINVAL', details: { capability: 'bogus' } });
  });

  it('ask may be covered by a parent ask; allow may not; expired or used-up parent grants cover nothing', () => {
    const parent: Grant[] = [{ cap: 'net:*', effect: 'ask' }, allow('fs:/**:r')];
    expect(attenuate(parent, [{ cap: 'net:x.com:GET', effect: 'ask' }], NOW)).toEqual({ ok: true, value: [{ cap: 'net:x.com:GET', effect: 'ask' }, { cap: 'net:*', effect: 'ask' }] });
    expect(attenuate(parent, [{ cap: 'fs:/a:r', effect: 'ask' }], NOW)).toEqual({ ok: true, value: [{ cap: 'fs:/a:r', effect: 'ask' }, { cap: 'net:*', effect: 'ask' }] });
    expect(attenuate(parent, [allow('net:x.com:GET')], NOW)).toMatchObject({ ok: false, error: { code: 'EPERM' } });
    expect(attenuate([allow('fs:/**:r', { expires_at: NOW })], [allow('fs:/a:r')], NOW)).toMatchObject({ ok: false, error: { code: 'EPERM' } });
    expect(attenuate([allow('fs:/**:r', { uses: 0 })], [allow('fs:/a:r')], NOW)).toMatchObject({ ok: false, error: { code: 'EPERM' } });
    expect(attenuate([{ cap: 'fs:/**:r', effect: 'deny' }], [allow('fs:/a:r')], NOW)).toMatchObject({ ok: false, error: { code: 'EPERM' } });
    expect(attenuate([allow('fs:/**:r')], [], NOW)).toEqual({ ok: true, value: [] });
  });

  it("keeps the parent's ask in force for the child (a child cannot turn an ask into an allow)", () => {
    const parent: Grant[] = [allow('net:*:GET'), { cap: 'net:evil.example', effect: 'ask' }];
    const child = attenuate(parent, [allow('net:*:GET')], NOW);
    expect(child.ok && decide(child.value, { domain: 'net', host: 'evil.example', method: 'GET' }, NOW).decision).toBe('ask');
  });

  it('an attenuated child is allowed no more than its parent', () => {
    const parent: Grant[] = [allow('fs:/home/**:rw'), { cap: 'fs:/home/secret/**:rw', effect: 'deny' }];
    const r = attenuate(parent, [allow('fs:/home/**:r')], NOW);
    if (!r.ok) throw new Error(r.error.message);
    for (const path of ['/home/a', '/home/secret/k', '/etc/x']) expect(allowed(r.value, fsReq(path, 'r')), path).toBe(allowed(parent, fsReq(path, 'r')));
    expect(allowed(r.value, fsReq('/home/a', 'w'))).toBe(false);
  });
});

describe('globCovers', () => {
  it('decides pattern containment, treating the child pattern as a pattern', () => {
    expect(globCovers('/home/**', '/home/*/notes.md', '/')).toBe(true);
    expect(globCovers('/home/**', '/home/**', '/')).toBe(true);
    expect(globCovers('/home/*', '/home/a*', '/')).toBe(true);
    expect(globCovers('/home/*', '/home/*/x', '/')).toBe(false);
    expect(globCovers('/home/*.md', '/home/*', '/')).toBe(false);
    expect(globCovers('*.example.com', 'api.example.com', '.')).toBe(true);
    expect(globCovers('*.example.com', '*.*.example.com', '.')).toBe(false);
    expect(globCovers('**.example.com', '*.*.example.com', '.')).toBe(true);
    expect(globCovers('topic/*', 'topic/alerts', '/')).toBe(true);
    expect(globCovers('topic/alerts', 'topic/*', '/')).toBe(false);
  });
});

describe('mcp capabilities', () => {
  const mcpReq = (server: string, tool: string): Requirement => ({ domain: 'mcp', server, tool });
  const g = (c: string, effect: Grant['effect'] = 'allow'): Grant => ({ cap: c, effect });

  it('parses mcp:<server-glob>:<tool-glob> and refuses malformed ones', () => {
    expect(cap('mcp:github:search_issues')).toEqual({ domain: 'mcp', server: 'github', tool: 'search_issues' });
    expect(cap('mcp:*:*')).toEqual({ domain: 'mcp', server: '*', tool: '*' });
    for (const bad of ['mcp:github', 'mcp:Git Hub:x', 'mcp:github:a b', 'mcp:github:x:y', 'mcp::x']) expect(parseCapability(bad).ok, bad).toBe(false);
  });

  it('a tool glob is flat: "*" matches dots and slashes in tool names; the server must match too', () => {
    expect(grants(cap('mcp:docs:*'), mcpReq('docs', 'files/read.v2'))).toBe(true);
    expect(grants(cap('mcp:docs:search_*'), mcpReq('docs', 'search_all'))).toBe(true);
    expect(grants(cap('mcp:docs:search_*'), mcpReq('docs', 'delete_all'))).toBe(false);
    expect(grants(cap('mcp:docs:*'), mcpReq('github', 'search'))).toBe(false);
    expect(describeRequirement(mcpReq('docs', 'search'))).toBe('mcp:docs:search');
  });

  it('deny wins, ask asks, and no grant is EPERM naming mcp:<server>:<tool>', () => {
    const list = [g('mcp:docs:*'), g('mcp:docs:delete_*', 'deny'), g('mcp:docs:write', 'ask')];
    expect(decide(list, mcpReq('docs', 'read'), NOW).decision).toBe('allow');
    expect(decide(list, mcpReq('docs', 'delete_all'), NOW).decision).toBe('deny');
    expect(decide(list, mcpReq('docs', 'write'), NOW)).toMatchObject({ decision: 'ask', needed: 'mcp:docs:write' });
    expect(decide(list, mcpReq('other', 'read'), NOW)).toEqual({ decision: 'deny', grant: null, needed: 'mcp:other:read' });
  });

  it('attenuates on spawn: a child gets only narrower mcp grants, and the parent denies pass down', () => {
    const parent = [g('mcp:docs:search_*'), g('mcp:docs:search_secret', 'deny')];
    const child = attenuate(parent, [g('mcp:docs:search_all')], NOW);
    expect(child.ok && child.value.map((x) => `${x.cap}/${x.effect}`)).toEqual(['mcp:docs:search_all/allow', 'mcp:docs:search_secret/deny']);
    expect(attenuate(parent, [g('mcp:docs:*')], NOW).ok).toBe(false);
    expect(attenuate(parent, [g('mcp:*:search_all')], NOW).ok).toBe(false);
    expect(covers(cap('mcp:*:*'), cap('mcp:docs:a*'))).toBe(true);
  });
});
