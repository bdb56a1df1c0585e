import { describe, expect, it } from 'vitest';
import { decide } from './capabilities.ts';
import { callHash, canonicalJson, isHighRisk, requirementFor, sha256Hex } from './policy.ts';
import { SYSCALL_NAMES, type ValidCall, validateCall } from './syscalls.ts';

const PID = 'p0123456789abcdefghij';
const CTX = { children_spawned: 0 };

function valid(name: string, args: unknown): ValidCall {
  const r = validateCall({ id: 'c1', name, args });
  if (!r.ok) throw new Error(`expected ${name} to validate: ${r.error.message}`);
  return r.value;
}

/** One valid call per syscall, so every name is exercised. */
const SAMPLES: Record<string, unknown> = {
  exit: {},
  sleep: { seconds: 1 },
  yield: {},
  spawn: { name: 'c', task: 't' },
  wait: {},
  kill: { pid: PID, signal: 'SIGTERM' },
  checkpoint: {},
  fork: {},
  request_capability: { capability: 'net:*', reason: 'r' },
  page_in: { query: 'vault code' },
  pin: { step: 2 },
  unpin: { step: 2 },
  fs_read: { path: 'a' },
  fs_write: { path: 'a', content: '' },
  fs_list: {},
  net_fetch: { url: 'https://example.com/' },
  send: { to: PID, body: 'hi' },
  recv: {},
  subscribe: { topic: 'alerts' },
  unsubscribe: { topic: 'alerts' },
  publish: { topic: 'alerts', body: 'x' },
  mem_write: { text: 'a fact', namespace: 'tenant' },
  mem_search: { query: 'fact' },
  mem_delete: { id: 'm_1' },
  tool_register: { name: 'wc', description: 'd', parameters: { type: 'object' }, source: 'export default async () => 1' },
  tool_call: { name: 'wc', args: {} },
  mcp_call: { server: 'docs', tool: 'search', args: {} },
};

describe('requirementFor', () => {
  it('fs_read and fs_list need r, fs_write needs w, on the normalised path', () => {
    expect(requirementFor(valid('fs_read', { path: 'a/../b' }), CTX)).toEqual({ domain: 'fs', path: '/b', access: 'r' });
    expect(requirementFor(valid('fs_read', { path: './notes//todo.md' }), CTX)).toEqual({ domain: 'fs', path: '/notes/todo.md', access: 'r' });
    expect(requirementFor(valid('fs_list', {}), CTX)).toEqual({ domain: 'fs', path: '/', access: 'r' });
    expect(requirementFor(valid('fs_list', { path: 'dir/' }), CTX)).toEqual({ domain: 'fs', path: '/dir', access: 'r' });
    expect(requirementFor(valid('fs_write', { path: '/x/./y/../z.txt', content: 'c' }), CTX)).toEqual({ domain: 'fs', path: '/x/z.txt', access: 'w' });
    expect(requirementFor(valid('fs_write', { path: 'a', content: 'c', append: true }), CTX)).toEqual({ domain: 'fs', path: '/a', access: 'w' });
  });

  it('paths that escape or are not paths need no capability (null)', () => {
    for (const path of ['..', '../etc/passwd', 'a/../../x', 'C:/x', 'file:///etc/passwd', 'a\\b', 'a\u0000b']) {
      expect(requirementFor(valid('fs_read', { path }), CTX), path).toBeNull();
      expect(requirementFor(valid('fs_write', { path, content: '' }), CTX), path).toBeNull();
    }
  });

  it('net_fetch needs the hostname (no port, lower case) and the method', () => {
    expect(requirementFor(valid('net_fetch', { url: 'https://api.github.com/repos' }), CTX)).toEqual({ domain: 'net', host: 'api.github.com', method: 'GET' });
    expect(requirementFor(valid('net_fetch', { url: 'http://API.GitHub.com:8443/x?y=1#z', method: 'POST' }), CTX)).toEqual({
      domain: 'net',
      host: 'api.github.com',
      method: 'POST',
    });
    expect(requirementFor(valid('net_fetch', { url: 'https://user:pw@h.example.com/', method: 'DELETE' }), CTX)).toEqual({
      domain: 'net',
      host: 'h.example.com',
      method: 'DELETE',
    });
    const unparseable: ValidCall<'net_fetch'> = { id: 'c', name: 'net_fetch', args: { url: 'not a url', method: 'GET' } };
    expect(requirementFor(unparseable, CTX)).toBeNull();
  });

  it('spawn needs a count one past the children spawned so far', () => {
    expect(requirementFor(valid('spawn', SAMPLES.spawn), { children_spawned: 0 })).toEqual({ domain: 'spawn', count: 1 });
    expect(requirementFor(valid('spawn', SAMPLES.spawn), { children_spawned: 4 })).toEqual({ domain: 'spawn', count: 5 });
    const grants = [{ cap: 'spawn:max=5', effect: 'allow' as const }];
    const reqAt = (n: number) => {
      const r = requirementFor(valid('spawn', SAMPLES.spawn), { children_spawned: n });
      if (!r) throw new Error('spawn needs a capability');
      return decide(grants, r, 0).decision;
    };
    expect(reqAt(4)).toBe('allow');
    expect(reqAt(5)).toBe('deny');
  });

  it('kill needs proc:signal; exit, sleep, yield, wait and request_capability need nothing', () => {
    expect(requirementFor(valid('kill', SAMPLES.kill), CTX)).toEqual({ domain: 'proc', right: 'signal' });
    expect(requirementFor(valid('checkpoint', SAMPLES.checkpoint), CTX)).toEqual({ domain: 'proc', right: 'checkpoint' });
    expect(requirementFor(valid('fork', SAMPLES.fork), CTX)).toEqual({ domain: 'proc', right: 'fork' });
    for (const name of ['exit', 'sleep', 'yield', 'wait', 'request_capability', 'page_in', 'pin', 'unpin']) {
      expect(requirementFor(valid(name, SAMPLES[name]), CTX), name).toBeNull();
    }
  });

  it('every syscall needing a capability is one of the fs/net/spawn/kill/ipc/mem/tool/mcp calls', () => {
    expect(Object.keys(SAMPLES).sort()).toEqual([...SYSCALL_NAMES].sort());
    const needing = SYSCALL_NAMES.filter((n) => requirementFor(valid(n, SAMPLES[n]), CTX) !== null).sort();
    expect(needing).toEqual(['checkpoint', 'fork', 'fs_list', 'fs_read', 'fs_write', 'kill', 'mcp_call', 'mem_delete', 'mem_search', 'mem_write', 'net_fetch', 'publish', 'send', 'spawn', 'subscribe', 'tool_call', 'tool_register']);
    expect(requirementFor(valid('send', SAMPLES.send), CTX)).toEqual({ domain: 'ipc', right: 'send', target: `pid/${PID}` });
    expect(requirementFor(valid('publish', SAMPLES.publish), CTX)).toEqual({ domain: 'ipc', right: 'publish', target: 'topic/alerts' });
  });

  it('tool_register needs tool:register and tool_call needs tool:call:<name>', () => {
    expect(requirementFor(valid('tool_register', SAMPLES.tool_register), CTX)).toEqual({ domain: 'tool', right: 'register' });
    expect(requirementFor(valid('tool_call', SAMPLES.tool_call), CTX)).toEqual({ domain: 'tool', right: 'call', name: 'wc' });
  });
});

describe('isHighRisk', () => {
  it('is true exactly for net_fetch, spawn, fork, kill, send, publish, tool_register and MCP calls not declared read-only', () => {
    const risky = SYSCALL_NAMES.filter((n) => isHighRisk(valid(n, SAMPLES[n]))).sort();
    expect(risky).toEqual(['fork', 'kill', 'mcp_call', 'net_fetch', 'publish', 'send', 'spawn', 'tool_register']);
    expect(isHighRisk(valid('mcp_call', { server: 'docs', tool: 'search', args: {}, kind: 'read' }))).toBe(false);
    expect(isHighRisk(valid('net_fetch', { url: 'https://x.com/', method: 'HEAD' }))).toBe(true);
    expect(isHighRisk(valid('fs_write', SAMPLES.fs_write))).toBe(false);
  });
});

describe('canonicalJson', () => {
  it('is independent of key order at every depth', () => {
    const a = { b: 1, a: { y: [1, { q: 2, p: 1 }], x: null }, c: 'z' };
    const b = { c: 'z', a: { x: null, y: [1, { p: 1, q: 2 }] }, b: 1 };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(canonicalJson(a)).toBe('{"a":{"x":null,"y":[1,{"p":1,"q":2}]},"b":1,"c":"z"}');
    expect(JSON.parse(canonicalJson(a))).toEqual(a);
  });

  it('keeps array order, drops undefined keys, and encodes scalars like JSON', () => {
    expect(canonicalJson([3, 1, 2])).not.toBe(canonicalJson([1, 2, 3]));
    expect(canonicalJson([3, 1, 2])).toBe('[3,1,2]');
    expect(canonicalJson({ a: undefined, b: 1 })).toBe('{"b":1}');
    expect(canonicalJson({ a: undefined, b: 1 })).toBe(canonicalJson({ b: 1 }));
    expect(canonicalJson({ n: { m: undefined } })).toBe('{"n":{}}');
    expect(canonicalJson([undefined])).toBe('[null]');
    expect(canonicalJson(undefined)).toBe('null');
    expect(canonicalJson(null)).toBe('null');
    expect(canonicalJson('a"b\n')).toBe(JSON.stringify('a"b\n'));
    expect(canonicalJson({ 'k"1': true, B: 0, a: -1.5 })).toBe('{"B":0,"a":-1.5,"k\\"1":true}');
    expect(canonicalJson({})).toBe('{}');
    expect(canonicalJson([])).toBe('[]');
  });

  it('distinguishes different values', () => {
    const distinct = [{ a: 1 }, { a: '1' }, { a: [1] }, { a: { b: 1 } }, { b: 1 }, { a: null }, [1, 2], [2, 1], {}, []];
    const out = distinct.map(canonicalJson);
    expect(new Set(out).size).toBe(distinct.length);
  });
});

describe('sha256Hex and callHash', () => {
  it('sha256Hex gives the known digests', async () => {
    expect(await sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(await sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('callHash is deterministic, key-order independent, 64 lowercase hex chars', async () => {
    const h1 = await callHash('net_fetch', { url: 'https://x.com/', method: 'GET', headers: { a: '1', b: '2' } });
    const h2 = await callHash('net_fetch', { headers: { b: '2', a: '1' }, method: 'GET', url: 'https://x.com/' });
    expect(h1).toMatch(/^[0-9a-f]{64}$/);
    expect(h1).toBe(h2);
    expect(h1).toBe(await sha256Hex(canonicalJson({ name: 'net_fetch', args: { url: 'https://x.com/', method: 'GET', headers: { a: '1', b: '2' } } })));
  });

  it('differs when the name or any argument differs, however deep', async () => {
    const base = { url: 'https://x.com/', method: 'POST', headers: { a: '1' }, body: '{"k":[1,2]}' };
    const variants: [string, unknown][] = [
      ['net_fetch', base],
      ['fs_write', base],
      ['net_fetch', { ...base, url: 'https://x.com/?' }],
      ['net_fetch', { ...base, method: 'PUT' }],
      ['net_fetch', { ...base, headers: { a: '2' } }],
      ['net_fetch', { ...base, headers: { a: '1', b: '1' } }],
      ['net_fetch', { ...base, body: '{"k":[2,1]}' }],
      ['net_fetch', { ...base, extra: { deep: { deeper: [1] } } }],
      ['net_fetch', { ...base, extra: { deep: { deeper: [2] } } }],
      ['net_fetch', {}],
      ['net_fetch', null],
    ];
    const hashes = await Promise.all(variants.map(([n, a]) => callHash(n, a)));
    expect(new Set(hashes).size).toBe(variants.length);
  });
});
