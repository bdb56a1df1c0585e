import { describe, expect, it } from 'vitest';
import { IMAGES, IMAGE_NAMES } from './images.ts';
import { DEFAULT_QUOTAS, PID_PATTERN } from './pcb.ts';
import { type SpawnContext, type SpawnRequest, type SpawnSpec, SpawnRequestSchema, childPid, randomPid, resolveSpawn } from './spawn.ts';

const PARENT = 'p0123456789abcdefghij';

function ctx(over: Partial<SpawnContext> = {}): SpawnContext {
  return {
    pid: 'paaaaaaaaaaaaaaaaaaaa',
    tenant: 't1',
    ppid: PARENT,
    spawn_key: 'key-1',
    default_model: { provider: 'openai', model: 'gpt-default' },
    ...over,
  };
}

function resolved(req: SpawnRequest, c: SpawnContext = ctx()): SpawnSpec {
  const r = resolveSpawn(req, c);
  if (!r.ok) throw new Error(`expected spawn to resolve: ${r.error.message}`);
  return r.value;
}

describe('resolveSpawn', () => {
  it('EINVAL for an unknown image, listing the images', () => {
    const r = resolveSpawn({ name: 'x', task: 't', image: 'nope' }, ctx());
    if (r.ok) throw new Error('expected EINVAL');
    expect(r.error.code).toBe('EINVAL');
    expect(r.error.details).toEqual({ image: 'nope' });
    for (const n of IMAGE_NAMES) expect(r.error.message).toContain(n);
  });

  it('defaults: image "default", the deployment model, priority 50, default quotas', () => {
    const s = resolved({ name: 'x', task: 't' });
    expect(s).toMatchObject({
      pid: 'paaaaaaaaaaaaaaaaaaaa',
      ppid: PARENT,
      name: 'x',
      task: 't',
      image: 'default',
      system_prompt: IMAGES.default?.system_prompt,
      tool_mode: 'native',
      priority: 50,
      model: { provider: 'openai', model: 'gpt-default' },
      quotas: DEFAULT_QUOTAS,
      tenant: 't1',
      capabilities: [
        { cap: 'fs:/**:rw', effect: 'allow' },
        { cap: 'spawn:max=16', effect: 'allow' },
        { cap: 'proc:signal', effect: 'allow' },
        { cap: 'ipc:send:pid/*', effect: 'allow' },
        { cap: 'ipc:publish:topic/**', effect: 'allow' },
        { cap: 'ipc:subscribe:topic/**', effect: 'allow' },
        { cap: 'mem:self:rw', effect: 'allow' },
      ],
      untrusted_task: false,
      script: null,
      spawn_key: 'key-1',
    });
  });

  it('a model string uses the default provider; an object is used as is', () => {
    expect(resolved({ name: 'x', task: 't', model: 'gpt-other' }).model).toEqual({ provider: 'openai', model: 'gpt-other' });
    expect(resolved({ name: 'x', task: 't', model: { provider: 'anthropic', model: 'claude' } }).model).toEqual({ provider: 'anthropic', model: 'claude' });
  });

  it("the image's model and script apply when no model is given", () => {
    const s = resolved({ name: 'x', task: 't', image: 'demo-helper' });
    expect(s.model).toEqual({ provider: 'scripted', model: 'scripted' });
    expect(s.tool_mode).toBe('text');
    expect(s.script).toEqual(IMAGES['demo-helper']?.script);
  });

  it('a script with a non-scripted provider is EINVAL; with the scripted one it is kept', () => {
    const script = [{ text: 'hi' }];
    const r = resolveSpawn({ name: 'x', task: 't', script }, ctx());
    expect(r.ok ? 'ok' : r.error.code).toBe('EINVAL');
    expect(r.ok ? '' : r.error.message).toContain('openai');
    const s = resolved({ name: 'x', task: 't', script, model: { provider: 'scripted', model: 's' } });
    expect(s.script).toEqual(script);
    expect(resolved({ name: 'x', task: 't', image: 'demo', script }).script).toEqual(script);
  });

  it('quotas are merged over the defaults', () => {
    expect(resolved({ name: 'x', task: 't', quotas: { max_steps: 3 } }).quotas).toEqual({ ...DEFAULT_QUOTAS, max_steps: 3 });
  });

  it('priority: explicit, else inherited from ctx, else 50', () => {
    expect(resolved({ name: 'x', task: 't', priority: 0 }, ctx({ priority: 70 })).priority).toBe(0);
    expect(resolved({ name: 'x', task: 't' }, ctx({ priority: 70 })).priority).toBe(70);
    expect(resolved({ name: 'x', task: 't' }).priority).toBe(50);
  });

  it("grants the image's declared capabilities to a root process, and attenuates a child's to its parent's", () => {
    expect(resolved({ name: 'x', task: 't' }).capabilities.map((g) => g.cap)).toEqual(['fs:/**:rw', 'spawn:max=16', 'proc:signal', 'ipc:send:pid/*', 'ipc:publish:topic/**', 'ipc:subscribe:topic/**', 'mem:self:rw']);
    const parent_grants = [
      { cap: 'fs:/work/**:rw', effect: 'allow' as const },
      { cap: 'net:*', effect: 'deny' as const },
    ];
    const child = resolved({ name: 'x', task: 't', capabilities: ['fs:/work/out/**:w'] }, ctx({ parent_grants }));
    expect(child.capabilities).toEqual([
      { cap: 'fs:/work/out/**:w', effect: 'allow' },
      { cap: 'net:*', effect: 'deny' },
    ]);
    const tooMuch = resolveSpawn({ name: 'x', task: 't', capabilities: ['fs:/**:rw'] }, ctx({ parent_grants }));
    expect(tooMuch.ok).toBe(false);
    if (!tooMuch.ok) expect(tooMuch.error).toMatchObject({ code: 'EPERM', details: { capability: 'fs:/**:rw' } });
    expect(resolveSpawn({ name: 'x', task: 't', capabilities: ['fs:nope'] }, ctx()).ok).toBe(false);
  });

  it('a child spawned without capabilities inherits what its parent holds, narrowed to what its image declares', () => {
    const modest = [
      { cap: 'fs:/**:rw', effect: 'allow' as const },
      { cap: 'spawn:max=2', effect: 'allow' as const },
    ];
    // The default image declares spawn:max=16, which this parent does not hold: it passes on its own.
    expect(resolved({ name: 'x', task: 't' }, ctx({ parent_grants: modest })).capabilities).toEqual(modest);
    const narrow = [
      { cap: 'fs:/work/**:r', effect: 'allow' as const, expires_at: 5_000 },
      { cap: 'net:api.example.com:GET', effect: 'allow' as const },
      { cap: 'proc:signal', effect: 'allow' as const, uses: 3 },
      { cap: 'net:evil.example', effect: 'deny' as const },
      { cap: 'ipc:send:pid/*', effect: 'ask' as const },
    ];
    // Net is not in the image; a use-limited grant is never copied; denies and asks pass down.
    expect(resolved({ name: 'x', task: 't' }, ctx({ parent_grants: narrow, now: 1_000 })).capabilities).toEqual([
      { cap: 'fs:/work/**:r', effect: 'allow', expires_at: 5_000 },
      { cap: 'net:evil.example', effect: 'deny' },
      { cap: 'ipc:send:pid/*', effect: 'ask' },
    ]);
    // An expired parent grant gives nothing; an image that declares nothing gets nothing but restrictions.
    expect(resolved({ name: 'x', task: 't' }, ctx({ parent_grants: narrow, now: 6_000 })).capabilities.map((g) => g.cap)).toEqual(['net:evil.example', 'ipc:send:pid/*']);
    expect(resolved({ name: 'x', task: 't', image: 'idle' }, ctx({ parent_grants: modest })).capabilities).toEqual([]);
    // Listing capabilities still asks for exactly those, and more than the parent holds is EPERM.
    const r = resolveSpawn({ name: 'x', task: 't', capabilities: ['spawn:max=16'] }, ctx({ parent_grants: modest }));
    if (r.ok) throw new Error('expected EPERM');
    expect(r.error).toMatchObject({ code: 'EPERM', details: { capability: 'spawn:max=16' } });
  });
});

describe('SpawnRequestSchema', () => {
  it('accepts a minimal request and rejects unknown keys and an empty task', () => {
    expect(SpawnRequestSchema.safeParse({ name: 'x', task: 't' }).success).toBe(true);
    expect(SpawnRequestSchema.safeParse({ name: 'x', task: 't', colour: 'red' }).success).toBe(false);
    expect(SpawnRequestSchema.safeParse({ name: 'x', task: '' }).success).toBe(false);
    expect(SpawnRequestSchema.safeParse({ name: 'x', task: 't', model: { provider: 'a', model: 'b', extra: 1 } }).success).toBe(false);
    expect(SpawnRequestSchema.safeParse({ name: 'x', task: 't', quotas: { max_steps: 0 } }).success).toBe(false);
    expect(SpawnRequestSchema.safeParse({ name: 'x', task: 't', priority: 101 }).success).toBe(false);
  });
});

describe('pids', () => {
  it('randomPid matches PID_PATTERN and uses the injected randomness', () => {
    for (let i = 0; i < 20; i++) expect(randomPid()).toMatch(PID_PATTERN);
    const fixed = randomPid((b) => b.fill(37));
    expect(fixed).toBe(`p${'1'.repeat(20)}`);
    expect(randomPid((b) => b.fill(255))).toMatch(PID_PATTERN);
    expect(randomPid()).not.toBe(randomPid());
  });

  it('childPid is deterministic per (parent, callKey) and matches PID_PATTERN', async () => {
    const a = await childPid(PARENT, 'step-3/call-0');
    expect(a).toMatch(PID_PATTERN);
    expect(await childPid(PARENT, 'step-3/call-0')).toBe(a);
    expect(await childPid(PARENT, 'step-3/call-1')).not.toBe(a);
    expect(await childPid('pbbbbbbbbbbbbbbbbbbbb', 'step-3/call-0')).not.toBe(a);
  });
});
