import { describe, expect, it } from 'vitest';
import { callKind, modelToolName } from './mcp.ts';
import { isHighRisk, requirementFor } from './policy.ts';
import { type ValidCall, replayClass, validateCall } from './syscalls.ts';

const call = (args: Record<string, unknown>): ValidCall => {
  const v = validateCall({ id: 'c1', name: 'mcp_call', args });
  if (!v.ok) throw new Error(v.error.message);
  return v.value;
};

describe('MCP tools as syscalls (pure)', () => {
  it('names tools mcp__<server>__<tool>, safe for every provider and at most 64 characters', () => {
    expect(modelToolName('docs', 'search')).toBe('mcp__docs__search');
    expect(modelToolName('docs', 'files/read.v2')).toBe('mcp__docs__files_read_v2');
    expect(modelToolName('docs', 'x'.repeat(100))).toHaveLength(64);
  });

  it('the kind comes from the annotations; a tool that says nothing is a write', () => {
    expect(callKind({ read_only: true, idempotent: false })).toBe('read');
    expect(callKind({ read_only: false, idempotent: true })).toBe('idempotent');
    expect(callKind({ read_only: false, idempotent: false })).toBe('write');
  });

  it('replays reads and idempotent calls, never writes; only writes and idempotent calls are high-risk', () => {
    const base = { server: 'docs', tool: 'search', args: { q: 'x' } };
    expect(replayClass(call(base))).toBe('unsafe'); // no kind: the kernel did not vouch for it
    expect(replayClass(call({ ...base, kind: 'read' }))).toBe('idempotent');
    expect(replayClass(call({ ...base, kind: 'idempotent' }))).toBe('idempotent');
    expect(isHighRisk(call({ ...base, kind: 'read' }))).toBe(false);
    expect(isHighRisk(call({ ...base, kind: 'idempotent' }))).toBe(true);
    expect(isHighRisk(call(base))).toBe(true);
    expect(requirementFor(call(base), { children_spawned: 0 })).toEqual({ domain: 'mcp', server: 'docs', tool: 'search' });
  });

  it('refuses malformed calls with EINVAL', () => {
    for (const args of [{ server: 'Docs', tool: 'x' }, { server: 'docs', tool: 'a b' }, { server: 'docs', tool: 'x', args: [] }, { server: 'docs', tool: 'x', kind: 'admin' }, { server: 'docs', tool: 'x', timeout_seconds: 600 }]) {
      const v = validateCall({ id: 'c', name: 'mcp_call', args });
      expect(v.ok, JSON.stringify(args)).toBe(false);
      if (!v.ok) expect(v.error.code).toBe('EINVAL');
    }
  });
});
