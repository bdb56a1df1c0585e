/**
 * Real wire formats through the official SDKs (openai, @anthropic-ai/sdk), against the fake LLM
 * service on loopback: tool calls, several per turn, text-fallback syscalls, 429 with retry-after,
 * 5xx, bad keys, malformed arguments, context-length errors, usage and cached tokens, and eviction
 * in the middle of a call.
 */
import { abortAllDurableObjects, env, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { api, eventsOf, fileOf, pcbOf, runTree, runUntil, spawn, stubOf, tick } from './support/helpers.ts';

type Req = { path: string; headers: Record<string, string>; body: Record<string, unknown> & { messages: Record<string, unknown>[] } };

async function scenario(model: string, responses: unknown[]): Promise<void> {
  await fetch(`${env.TEST_SERVER}/llm/scenario`, { method: 'POST', body: JSON.stringify({ model, responses }) });
}
const requests = async (model: string) => (await (await fetch(`${env.TEST_SERVER}/llm/requests/${model}`)).json()) as Req[];
const unique = (p: string) => `${p}-${crypto.randomUUID().slice(0, 8)}`;

// --- OpenAI wire format -----------------------------------------------------------------------------
const oaCall = (id: string, name: string, args: unknown) => ({ id, type: 'function', function: { name, arguments: typeof args === 'string' ? args : JSON.stringify(args) } });
const oaAnswer = (model: string, message: { content?: string | null; tool_calls?: unknown[] }, usage = { prompt_tokens: 100, completion_tokens: 20, prompt_tokens_details: { cached_tokens: 0 } }) => ({
  body: {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: message.content ?? null, ...(message.tool_calls ? { tool_calls: message.tool_calls } : {}) }, finish_reason: message.tool_calls ? 'tool_calls' : 'stop' }],
    usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
  },
});

describe('OpenAI-compatible chat completions', () => {
  it('runs the scenario: several calls per turn in order, results back as tool messages, usage as reported', async () => {
    const model = unique('gpt');
    await scenario(model, [
      oaAnswer(model, { content: 'Writing two files.', tool_calls: [oaCall('call_a', 'fs_write', { path: 'a.txt', content: 'A' }), oaCall('call_b', 'fs_write', { path: 'b.txt', content: 'B' })] }, { prompt_tokens: 120, completion_tokens: 30, prompt_tokens_details: { cached_tokens: 0 } }),
      oaAnswer(model, { tool_calls: [oaCall('call_c', 'fs_write', '{"path": "c.txt", "content": ')] }, { prompt_tokens: 180, completion_tokens: 10, prompt_tokens_details: { cached_tokens: 128 } }),
      oaAnswer(model, { content: 'All done.' }, { prompt_tokens: 220, completion_tokens: 5, prompt_tokens_details: { cached_tokens: 192 } }),
    ]);
    const { pid } = await spawn({ name: 'oa', task: 'write files', model: { provider: 'openai', model } });
    const done = await runUntil(pid, ['terminated']);
    expect(done.exit).toMatchObject({ code: 0, result: 'All done.' });
    expect(await fileOf(pid, 'a.txt')).toBe('A');
    expect(await fileOf(pid, 'b.txt')).toBe('B');
    // Usage in the PCB is exactly what the server reported.
    expect(done.usage).toMatchObject({ llm_calls: 3, prompt_tokens: 520, completion_tokens: 45, cached_tokens: 320 });

    const reqs = await requests(model);
    expect(reqs).toHaveLength(3);
    expect(reqs[0]?.headers.authorization).toBe('Bearer sk-test-openai');
    const tools = reqs[0]?.body.tools as { type: string; function: { name: string; parameters: { type: string } } }[];
    expect(tools.map((t) => t.function.name)).toEqual(['exit', 'sleep', 'yield', 'spawn', 'wait', 'kill', 'request_capability', 'page_in', 'pin', 'unpin', 'fs_read', 'fs_write', 'fs_list', 'net_fetch', 'send', 'recv', 'subscribe', 'unsubscribe', 'publish', 'checkpoint', 'fork', 'mem_write', 'mem_search', 'mem_delete', 'tool_register', 'tool_call', 'mcp_call']);
    expect(tools.every((t) => t.type === 'function' && t.function.parameters.type === 'object')).toBe(true);
    const second = reqs[1]?.body.messages ?? [];
    expect(second.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool', 'tool']);
    expect((second[2]?.tool_calls as { id: string }[]).map((c) => c.id)).toEqual(['call_a', 'call_b']);
    expect(second.slice(3).map((m) => m.tool_call_id)).toEqual(['call_a', 'call_b']);
    expect(JSON.parse(String(second[3]?.content))).toEqual({ ok: true, value: { path: '/a.txt', bytes_written: 1 } });
    // The truncated arguments came back to the model as EINVAL, not as an exception.
    const third = reqs[2]?.body.messages ?? [];
    expect(JSON.parse(String(third.at(-1)?.content))).toMatchObject({ ok: false, error: { code: 'EINVAL' } });
    // Prefix stability: each prompt starts with the previous one.
    expect(third.slice(0, second.length)).toEqual(second);
  });

  it('runs [SYS_CALL::…] text syscalls for a model configured without tool calling', async () => {
    const model = unique('llama');
    await scenario(model, [oaAnswer(model, { content: 'Sure. [SYS_CALL::{"name": "fs_write", "args": {"path": "t.txt", "content": "via text"}}]' }), oaAnswer(model, { content: '[SYS_CALL::{"name": "exit", "args": {"code": 0}}]' })]);
    const { pid } = await spawn({ name: 'txt', task: 't', model: { provider: 'openai', model }, tool_mode: 'text' });
    expect((await runUntil(pid, ['terminated'])).exit?.code).toBe(0);
    expect(await fileOf(pid, 't.txt')).toBe('via text');
    const reqs = await requests(model);
    expect(reqs[0]?.body.tools).toBeUndefined();
    expect(String(reqs[0]?.body.messages[0]?.content)).toContain('[SYS_CALL::');
    expect(String(reqs[1]?.body.messages.at(-1)?.content)).toMatch(/^\[SYS_RESULT::text-1-0\] \{"ok":true/);
  });

  it('parks on 429 until retry-after (a durable alarm, not a sleep), retries 500s, then succeeds', async () => {
    const model = unique('gpt');
    await scenario(model, [
      { status: 429, headers: { 'retry-after': '7' }, body: { error: { message: 'Rate limit reached', type: 'requests' } } },
      { status: 500, body: { error: { message: 'upstream exploded' } } },
      oaAnswer(model, { content: 'ok' }),
    ]);
    const { pid } = await spawn({ name: 'rl', task: 't', model: { provider: 'openai', model } });
    const before = Date.now();
    await tick(pid);
    expect((await pcbOf(pid)).state).toBe('ready');
    const alarm = await runInDurableObject(stubOf(pid), (_i, state) => state.storage.getAlarm());
    expect(alarm).toBeGreaterThanOrEqual(before + 7000);
    await tick(pid); // the 500
    const done = await runUntil(pid, ['terminated']);
    expect(done.exit).toMatchObject({ code: 0, result: 'ok' });
    const errors = (await eventsOf(pid)).filter((e) => e.type === 'llm_error').map((e) => e.data);
    expect(errors).toEqual([
      expect.objectContaining({ kind: 'retryable', attempt: 1, retry_after_ms: 7000, error: expect.objectContaining({ code: 'EAGAIN' }) }),
      expect.objectContaining({ kind: 'retryable', attempt: 2, error: expect.objectContaining({ code: 'EIO' }) }),
    ]);
    expect(await requests(model)).toHaveLength(3);
  });

  it('ends the process with EPERM on a rejected key, without retrying', async () => {
    const model = unique('gpt');
    await scenario(model, [{ status: 401, body: { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' } } }]);
    const { pid } = await spawn({ name: 'key', task: 't', model: { provider: 'openai', model } });
    const done = await runUntil(pid, ['terminated']);
    expect(done.exit?.code).toBe('EPERM');
    expect(done.exit?.reason).toMatch(/Incorrect API key/);
    expect(await requests(model)).toHaveLength(1);
  });

  it('shrinks the context once on a context-length error, then ends with E2BIG if it still does not fit', async () => {
    const model = unique('gpt');
    const write = (n: number) => oaAnswer(model, { tool_calls: [oaCall(`c${n}`, 'fs_write', { path: `f${n}`, content: 'x' })] });
    const tooLong = { status: 400, body: { error: { message: "This model's maximum context length is 8192 tokens.", type: 'invalid_request_error', code: 'context_length_exceeded' } } };
    await scenario(model, [write(1), write(2), write(3), write(4), tooLong, write(5), tooLong, tooLong]);
    const { pid } = await spawn({ name: 'ctx', task: 't', model: { provider: 'openai', model } });
    const done = await runUntil(pid, ['terminated']);
    expect(done.exit?.code).toBe('E2BIG');
    const reqs = await requests(model);
    expect(reqs).toHaveLength(8);
    const [failed, shrunk] = [reqs[4]?.body.messages ?? [], reqs[5]?.body.messages ?? []];
    expect(shrunk.length).toBeLessThan(failed.length);
    expect(shrunk[1]).toEqual(failed[1]); // the task stays
    expect(String(shrunk[2]?.content)).toMatch(/^\[kernel\] steps 1-2 were dropped/);
    const shrinks = (await eventsOf(pid)).filter((e) => e.type === 'context_shrunk');
    expect(shrinks.map((e) => e.data.dropped_before_step)).toEqual([3, 5]);
  });

  it('re-issues an LLM call lost to eviction, and counts it once', async () => {
    const model = unique('gpt');
    await scenario(model, [{ hang: true }, oaAnswer(model, { content: 'survived' })]);
    const { pid } = await spawn({ name: 'ev', task: 't', model: { provider: 'openai', model } });
    const run = runDurableObjectAlarm(stubOf(pid)).catch((e: unknown) => `aborted: ${String(e)}`);
    await (await fetch(`${env.TEST_SERVER}/llm/hanging/${model}`)).text();
    await abortAllDurableObjects();
    expect(await run).toMatch(/^aborted/);
    const done = await runUntil(pid, ['terminated']);
    expect(done.exit).toMatchObject({ code: 0, result: 'survived' });
    expect(done.usage.llm_calls).toBe(1);
    expect(await requests(model)).toHaveLength(2);
  });
});

describe('API keys', () => {
  it('are sent only to the configured base URL, never to a base_url a process chose', async () => {
    const model = unique('gpt');
    await scenario(model, [oaAnswer(model, { content: 'one' }), oaAnswer(model, { content: 'two' })]);
    const elsewhere = String(env.OPENAI_BASE_URL).replace('127.0.0.1', 'localhost');
    const a = await spawn({ name: 'a', task: 't', model: { provider: 'openai', model, base_url: elsewhere } });
    await runUntil(a.pid, ['terminated']);
    const b = await spawn({ name: 'b', task: 't', model: { provider: 'openai', model } });
    await runUntil(b.pid, ['terminated']);
    expect((await requests(model)).map((r) => r.headers.authorization)).toEqual(['Bearer none', 'Bearer sk-test-openai']);
  });
});

// --- Anthropic wire format --------------------------------------------------------------------------
const anAnswer = (model: string, content: unknown[], usage: Record<string, number>, stop = 'tool_use') => ({
  body: { id: 'msg_1', type: 'message', role: 'assistant', model, content, stop_reason: stop, stop_sequence: null, usage },
});

describe('Anthropic messages', () => {
  it('runs the scenario with tool_use/tool_result blocks, cache_control breakpoints and cache token accounting', async () => {
    const model = unique('claude');
    await scenario(model, [
      anAnswer(model, [{ type: 'text', text: 'Two files.' }, { type: 'tool_use', id: 'toolu_1', name: 'fs_write', input: { path: 'a.txt', content: 'A' } }, { type: 'tool_use', id: 'toolu_2', name: 'fs_list', input: { path: '/' } }], { input_tokens: 50, output_tokens: 10, cache_read_input_tokens: 0, cache_creation_input_tokens: 900 }),
      anAnswer(model, [{ type: 'text', text: 'Finished.' }], { input_tokens: 40, output_tokens: 3, cache_read_input_tokens: 900, cache_creation_input_tokens: 60 }, 'end_turn'),
    ]);
    const { pid } = await spawn({ name: 'an', task: 'write', model: { provider: 'anthropic', model } });
    const done = await runUntil(pid, ['terminated']);
    expect(done.exit).toMatchObject({ code: 0, result: 'Finished.' });
    expect(await fileOf(pid, 'a.txt')).toBe('A');
    expect(done.usage).toMatchObject({ llm_calls: 2, prompt_tokens: 50 + 900 + 40 + 900 + 60, completion_tokens: 13, cached_tokens: 900, cache_write_tokens: 960 });

    const reqs = await requests(model);
    // @anthropic-ai/sdk 1.x sends the key as a bearer token.
    expect(reqs[0]?.headers.authorization).toBe('Bearer sk-ant-test');
    const first = reqs[0]?.body as unknown as { system: { cache_control?: unknown }[]; tools: { name: string; input_schema: { type: string }; cache_control?: unknown }[]; max_tokens: number };
    expect(first.system.at(-1)?.cache_control).toEqual({ type: 'ephemeral' });
    expect(first.tools.at(-1)?.cache_control).toEqual({ type: 'ephemeral' });
    expect(first.tools.slice(0, -1).every((t) => t.cache_control === undefined && t.input_schema.type === 'object')).toBe(true);
    expect(first.max_tokens).toBe(4096);
    const msgs = reqs[1]?.body.messages as { role: string; content: { type: string; tool_use_id?: string; id?: string; is_error?: boolean; cache_control?: unknown }[] }[];
    expect(msgs.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(msgs[1]?.content.map((b) => b.type)).toEqual(['text', 'tool_use', 'tool_use']);
    expect(msgs[2]?.content.map((b) => [b.type, b.tool_use_id])).toEqual([
      ['tool_result', 'toolu_1'],
      ['tool_result', 'toolu_2'],
    ]);
    expect(msgs[2]?.content.at(-1)?.cache_control).toEqual({ type: 'ephemeral' });
  });

  it('treats 529 overloaded as retryable and reports failed tool results with is_error', async () => {
    const model = unique('claude');
    await scenario(model, [
      { status: 529, body: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } },
      anAnswer(model, [{ type: 'tool_use', id: 'toolu_9', name: 'fs_read', input: { path: 'missing.txt' } }], { input_tokens: 10, output_tokens: 5 }),
      anAnswer(model, [{ type: 'text', text: 'no file' }], { input_tokens: 10, output_tokens: 2 }, 'end_turn'),
    ]);
    const { pid } = await spawn({ name: 'an', task: 't', model: { provider: 'anthropic', model } });
    expect((await runUntil(pid, ['terminated'])).exit).toMatchObject({ code: 0, result: 'no file' });
    const reqs = await requests(model);
    expect(reqs).toHaveLength(3);
    const result = (reqs[2]?.body.messages.at(-1)?.content as { type: string; is_error?: boolean; content: string }[])[0];
    expect(result).toMatchObject({ type: 'tool_result', is_error: true });
    expect(JSON.parse(String(result?.content))).toMatchObject({ ok: false, error: { code: 'ENOENT' } });
  });
});

describe('the demo scenario on real wire formats', () => {
  // The same steps the scripted demo takes: write, sleep on the alarm, spawn a child, wait, write, exit.
  const steps = [
    ['fs_write', { path: 'notes/plan.md', content: 'plan' }],
    ['sleep', { seconds: 2 }],
    ['spawn', { name: 'helper', task: 'say hello', image: 'demo-helper' }],
    ['wait', { timeout_seconds: 60 }],
    ['fs_write', { path: 'notes/done.md', content: 'done' }],
    ['exit', { code: 0, result: 'scenario complete' }],
  ] as const;

  for (const provider of ['openai', 'anthropic'] as const) {
    it(`runs end to end on ${provider}`, async () => {
      const model = unique(provider);
      const answers = steps.map(([name, args], i) =>
        provider === 'openai'
          ? oaAnswer(model, { tool_calls: [oaCall(`call_${i}`, name, args)] })
          : anAnswer(model, [{ type: 'tool_use', id: `toolu_${i}`, name, input: args }], { input_tokens: 10, output_tokens: 5 }),
      );
      await scenario(model, answers);
      const { pid } = await spawn({ name: 'demo', task: 'tidy', model: { provider, model } });
      expect((await runUntil(pid, ['sleeping'])).state).toBe('sleeping');
      const done = await runTree(pid);
      const kid = (await api<{ processes: { pid: string }[] }>('GET', `/v1/processes?ppid=${pid}`)).body.processes[0]!.pid;
      expect(done.exit).toMatchObject({ code: 0, result: 'scenario complete' });
      expect(await fileOf(pid, 'notes/done.md')).toBe('done');
      expect(done.usage.llm_calls).toBe(6);
      expect(done.usage.prompt_tokens).toBe(provider === 'openai' ? 600 : 60);
      // The wait result the model received names the child and its exit.
      const waitResult = (await eventsOf(pid)).find((e) => e.type === 'syscall' && e.data.name === 'wait');
      expect(waitResult?.data).toMatchObject({ ok: true, result: { pid: kid, exit: { code: 0, result: 'helper says hello' } } });
    });
  }
});
