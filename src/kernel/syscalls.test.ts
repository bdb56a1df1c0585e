import { describe, expect, it } from 'vitest';
import { type RawCall, SYSCALL_NAMES, type ValidCall, replayClass, syscallTools, validateCall } from './syscalls.ts';

const PID = 'p0123456789abcdefghij';

function call(name: string, args: unknown): RawCall {
  return { id: 'c1', name, args };
}

function valid(name: string, args: unknown): ValidCall {
  const r = validateCall(call(name, args));
  if (!r.ok) throw new Error(`expected ${name} to validate: ${r.error.message}`);
  return r.value;
}

function issuesOf(details: unknown): { path: string[]; message: string; code: string }[] {
  if (typeof details !== 'object' || details === null || !('issues' in details) || !Array.isArray(details.issues)) {
    throw new Error('details.issues missing');
  }
  return details.issues as { path: string[]; message: string; code: string }[];
}

describe('validateCall', () => {
  it('ENOSYS for unknown names, listing the available syscalls', () => {
    for (const name of ['open', 'toString', '__proto__', 'constructor', '']) {
      const r = validateCall(call(name, {}));
      if (r.ok) throw new Error(`"${name}" should be ENOSYS`);
      expect(r.error.code).toBe('ENOSYS');
      expect(r.error.details).toEqual({ name });
      for (const n of SYSCALL_NAMES) expect(r.error.message).toContain(n);
    }
  });

  it('EINVAL when args is a raw (unparseable JSON) string, keeping a bounded snippet', () => {
    const raw = `{"path": "a.txt", ${'x'.repeat(1000)}`;
    const r = validateCall(call('fs_read', raw));
    if (r.ok) throw new Error('expected EINVAL');
    expect(r.error.code).toBe('EINVAL');
    expect(r.error.message).toContain('not valid JSON');
    expect(r.error.details).toEqual({ raw: raw.slice(0, 500) });
  });

  it('EINVAL with details.issues naming the bad field', () => {
    const r = validateCall(call('sleep', { seconds: -1 }));
    if (r.ok) throw new Error('expected EINVAL');
    expect(r.error.code).toBe('EINVAL');
    const issues = issuesOf(r.error.details);
    expect(issues.length).toBeGreaterThan(0);
    expect(issues[0]?.path).toEqual(['seconds']);
    expect(typeof issues[0]?.code).toBe('string');
    expect(r.error.message).toContain('sleep');
  });

  it('rejects missing required fields, wrong types and out-of-range values', () => {
    const bad: [string, unknown][] = [
      ['sleep', {}],
      ['sleep', { seconds: '5' }],
      ['exit', { code: 256 }],
      ['exit', { code: 1.5 }],
      ['kill', { pid: 'not-a-pid', signal: 'SIGTERM' }],
      ['kill', { pid: PID, signal: 'SIGHUP' }],
      ['spawn', { name: 'x', task: '' }],
      ['fs_read', { path: '' }],
      ['fs_write', { path: 'a' }],
      ['net_fetch', { url: 'not a url' }],
      ['net_fetch', { url: 'https://example.com', method: 'TRACE' }],
      ['wait', { timeout_seconds: 0 }],
      ['yield', []],
      ['yield', 42],
    ];
    for (const [name, args] of bad) {
      const r = validateCall(call(name, args));
      expect(r.ok ? 'ok' : r.error.code, `${name} ${JSON.stringify(args)}`).toBe('EINVAL');
    }
  });

  it('strict objects reject unknown keys', () => {
    const r = validateCall(call('yield', { extra: true }));
    if (r.ok) throw new Error('expected EINVAL');
    expect(issuesOf(r.error.details).some((i) => i.code === 'unrecognized_keys')).toBe(true);
    expect(validateCall(call('fs_write', { path: 'a', content: 'b', mode: 'w' })).ok).toBe(false);
  });

  it('applies defaults and keeps the id', () => {
    expect(valid('exit', {})).toEqual({ id: 'c1', name: 'exit', args: { code: 0 } });
    expect(valid('net_fetch', { url: 'https://example.com/' }).args).toEqual({ url: 'https://example.com/', method: 'GET' });
    expect(valid('fs_list', {}).args).toEqual({ path: '/' });
  });

  it('treats null or undefined args as {}', () => {
    expect(valid('yield', null).args).toEqual({});
    expect(valid('yield', undefined).args).toEqual({});
    expect(validateCall(call('sleep', null)).ok).toBe(false);
  });

  it('accepts well-formed calls of every syscall', () => {
    const good: [string, unknown][] = [
      ['exit', { code: 2, result: { any: ['thing'] } }],
      ['sleep', { seconds: 0.5 }],
      ['yield', {}],
      ['spawn', { name: 'kid', task: 't', image: 'default', priority: 0 }],
      ['wait', { pid: PID, timeout_seconds: 10 }],
      ['kill', { pid: PID, signal: 'SIGKILL' }],
      ['request_capability', { capability: 'net:api.github.com:GET', reason: 'read issues' }],
      ['page_in', { query: 'vault code', limit: 2 }],
      ['pin', { step: 3 }],
      ['unpin', { step: 3 }],
      ['fs_read', { path: 'a.txt', offset: 0, length: 10 }],
      ['fs_write', { path: 'a.txt', content: '', append: true }],
      ['fs_list', { path: 'notes' }],
      ['net_fetch', { url: 'https://example.com', method: 'POST', headers: { a: 'b' }, body: 'x', save_to: 'out.html' }],
      ['send', { to: PID, body: { any: 1 }, correlation_id: 'c', reply_to: PID }],
      ['recv', { from: PID, correlation_id: 'c', topic: 'alerts/disk', timeout_seconds: 0 }],
      ['subscribe', { topic: 'alerts' }],
      ['unsubscribe', { topic: 'alerts' }],
      ['publish', { topic: 'alerts', body: 'x' }],
      ['checkpoint', { label: 'before the risky part' }],
      ['fork', { checkpoint: 'before the risky part', task: 'try the other way' }],
      ['mem_write', { text: 'fact', metadata: { topic: 'x', n: 1, ok: true }, namespace: 'team/a' }],
      ['mem_search', { query: 'fact', top_k: 20, filter: { n: { $gte: 1 } }, namespace: 'self' }],
      ['mem_delete', { id: 'm_0123', namespace: 'tenant' }],
      ['tool_register', { name: 'wc', description: 'count words', parameters: { type: 'object' }, source: 'export default async () => 1' }],
      ['tool_call', { name: 'wc', args: { path: 'a.txt' } }],
      ['mcp_call', { server: 'docs', tool: 'search', args: { q: 'x' }, timeout_seconds: 10 }],
    ];
    expect(good.map(([n]) => n).sort()).toEqual([...SYSCALL_NAMES].sort());
    for (const [name, args] of good) expect(valid(name, args).name).toBe(name);
  });
});

describe('replayClass', () => {
  it('tool_register is atomic and tool_call is unsafe (a tool may write files and reach the network)', () => {
    expect(replayClass(valid('tool_register', { name: 'wc', description: 'd', parameters: { type: 'object' }, source: 'export default 1' }))).toBe('atomic');
    expect(replayClass(valid('tool_call', { name: 'wc' }))).toBe('unsafe');
  });

  it('net_fetch is idempotent only for safe methods', () => {
    const cls = (method?: string) => replayClass(valid('net_fetch', { url: 'https://example.com', ...(method ? { method } : {}) }));
    expect(cls()).toBe('idempotent');
    for (const m of ['GET', 'HEAD', 'OPTIONS']) expect(cls(m)).toBe('idempotent');
    for (const m of ['POST', 'PUT', 'PATCH', 'DELETE']) expect(cls(m)).toBe('unsafe');
  });

  it('fixed classes for the other syscalls', () => {
    expect(replayClass(valid('spawn', { name: 'a', task: 'b' }))).toBe('idempotent');
    expect(replayClass(valid('kill', { pid: PID, signal: 'SIGTERM' }))).toBe('idempotent');
    expect(replayClass(valid('fs_write', { path: 'a', content: 'b' }))).toBe('atomic');
    expect(replayClass(valid('exit', {}))).toBe('atomic');
    expect(replayClass(valid('sleep', { seconds: 1 }))).toBe('atomic');
  });
});

describe('syscallTools', () => {
  it('one tool per syscall, in SYSCALL_NAMES order, each an object schema without $schema', () => {
    const tools = syscallTools();
    expect(tools.map((t) => t.name)).toEqual(SYSCALL_NAMES);
    for (const t of tools) {
      expect(t.description.length).toBeGreaterThan(0);
      expect(t.parameters.type).toBe('object');
      expect('$schema' in t.parameters).toBe(false);
      expect(t.parameters.additionalProperties).toBe(false);
    }
  });

  it('describes inputs: defaulted fields are optional, required ones are listed', () => {
    const byName = new Map(syscallTools().map((t) => [t.name, t.parameters]));
    expect(byName.get('exit')?.required ?? []).not.toContain('code');
    expect(byName.get('sleep')?.required).toEqual(['seconds']);
    expect(byName.get('kill')?.required).toEqual(expect.arrayContaining(['pid', 'signal']));
  });

  it('is stable across calls (same object, same bytes)', () => {
    const a = syscallTools();
    const bytes = JSON.stringify(a);
    const b = syscallTools();
    expect(b).toBe(a);
    expect(JSON.stringify(b)).toBe(bytes);
  });
});
