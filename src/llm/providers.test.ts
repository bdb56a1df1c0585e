import { describe, expect, it } from 'vitest';
import { classifyHttp, retryAfterMs } from './errors.ts';
import { checkModel, createProvider } from './index.ts';
import type { LlmRequest } from './types.ts';
import { WorkersAiProvider } from './workers-ai.ts';
import { MAX_LLM_ATTEMPTS, llmRetryDelayMs } from '../kernel/timers.ts';

const request: LlmRequest = {
  model: '@cf/meta/llama-4-scout-17b-16e-instruct',
  system: 'sys',
  messages: [
    { role: 'user', content: 'task' },
    { role: 'assistant', content: '', tool_calls: [{ id: 'wai_0', name: 'fs_list', args: { path: '/' } }] },
    { role: 'tool', tool_call_id: 'wai_0', name: 'fs_list', content: '{"ok":true,"value":{}}' },
  ],
  tools: [{ name: 'fs_list', description: 'list', parameters: { type: 'object', properties: { path: { type: 'string' } } } }],
  tool_mode: 'native',
};

describe('provider configuration', () => {
  it('refuses a provider whose key or binding is missing, saying how to set it', () => {
    const openai = checkModel({ provider: 'openai', model: 'gpt' }, {});
    expect(openai.ok).toBe(false);
    if (!openai.ok) expect(openai.error.message).toMatch(/OPENAI_API_KEY.*\.dev\.vars.*wrangler secret put/);
    const anthropic = checkModel({ provider: 'anthropic', model: 'claude' }, { OPENAI_API_KEY: 'k' });
    expect(anthropic.ok).toBe(false);
    const ai = checkModel({ provider: 'workers-ai', model: 'm' }, {});
    expect(!ai.ok && ai.error.message).toMatch(/\[ai\] binding/);
    expect(checkModel({ provider: 'mystery', model: 'm' }, {}).ok).toBe(false);
  });

  it('accepts a keyless OpenAI-compatible server and a per-process base_url, and a configured key', () => {
    expect(checkModel({ provider: 'openai', model: 'llama3' }, { OPENAI_BASE_URL: 'http://127.0.0.1:11434/v1' }).ok).toBe(true);
    expect(checkModel({ provider: 'openai', model: 'qwen', base_url: 'http://127.0.0.1:8000/v1' }, {}).ok).toBe(true);
    expect(checkModel({ provider: 'anthropic', model: 'claude' }, { ANTHROPIC_API_KEY: 'k' }).ok).toBe(true);
    expect(createProvider({ model: { provider: 'openai', model: 'gpt' }, env: { OPENAI_API_KEY: 'k' } }).ok).toBe(true);
  });
});

describe('error classification', () => {
  it('maps statuses to what the kernel should do', () => {
    const now = 0;
    expect(classifyHttp('p', 429, 'slow down', new Headers({ 'retry-after': '3' }), now)).toMatchObject({ kind: 'retryable', code: 'EAGAIN', retryAfterMs: 3000 });
    expect(classifyHttp('p', 503, 'busy', undefined, now)).toMatchObject({ kind: 'retryable', code: 'EIO' });
    expect(classifyHttp('p', 529, 'Overloaded', undefined, now).kind).toBe('retryable');
    expect(classifyHttp('p', undefined, 'ECONNRESET', undefined, now)).toMatchObject({ kind: 'retryable', code: 'EIO' });
    expect(classifyHttp('p', 401, 'bad key', undefined, now)).toMatchObject({ kind: 'fatal', code: 'EPERM' });
    expect(classifyHttp('p', 400, 'prompt is too long: 210000 tokens > 200000 maximum', undefined, now)).toMatchObject({ kind: 'context', code: 'E2BIG' });
    expect(classifyHttp('p', 400, "This model's maximum context length is 8192 tokens", undefined, now).kind).toBe('context');
    expect(classifyHttp('p', 400, 'tools[0] is invalid', undefined, now)).toMatchObject({ kind: 'fatal', code: 'EINVAL' });
  });

  it('reads retry-after-ms, retry-after seconds and HTTP dates', () => {
    expect(retryAfterMs(new Headers({ 'retry-after-ms': '250' }), 0)).toBe(250);
    expect(retryAfterMs(new Headers({ 'retry-after': '2' }), 0)).toBe(2000);
    expect(retryAfterMs(new Headers({ 'retry-after': new Date(10_000).toUTCString() }), 4_000)).toBe(6000);
    expect(retryAfterMs(new Headers({ 'retry-after': 'soon' }), 0)).toBeNull();
    expect(retryAfterMs(undefined, 0)).toBeNull();
  });

  it('never retries sooner than retry-after, backs off otherwise, and is bounded', () => {
    expect(llmRetryDelayMs(1, 7000, () => 0)).toBe(7000);
    expect(llmRetryDelayMs(1, 7000, () => 1)).toBe(8750);
    expect([1, 2, 3, 4].map((a) => llmRetryDelayMs(a, null, () => 0))).toEqual([1000, 2000, 4000, 8000]);
    expect(llmRetryDelayMs(30, null, () => 0)).toBe(300_000);
    expect(MAX_LLM_ATTEMPTS).toBeGreaterThan(1);
  });
});

describe('Workers AI (fake binding: there is no local simulation)', () => {
  it('sends OpenAI-shaped messages and tools and reads the Workers AI output shape', async () => {
    const calls: { model: string; input: Record<string, unknown> }[] = [];
    const ai = {
      run: async (model: string, input: Record<string, unknown>) => {
        calls.push({ model, input });
        return { response: null, tool_calls: [{ name: 'fs_write', arguments: { path: 'a', content: 'b' } }, { name: 'exit', arguments: '{"code": 0' }], usage: { prompt_tokens: 42, completion_tokens: 7 } };
      },
    };
    const out = await new WorkersAiProvider(ai, 1000).complete(request);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.model).toBe('@cf/meta/llama-4-scout-17b-16e-instruct');
    expect(calls[0]?.input).toEqual({
      messages: [
        { role: 'system', content: 'sys' },
        { role: 'user', content: 'task' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'wai_0', type: 'function', function: { name: 'fs_list', arguments: '{"path":"/"}' } }] },
        { role: 'tool', tool_call_id: 'wai_0', content: '{"ok":true,"value":{}}' },
      ],
      tools: [{ type: 'function', function: { name: 'fs_list', description: 'list', parameters: request.tools[0]?.parameters } }],
      max_tokens: 1000,
    });
    expect(out.tool_calls).toEqual([
      { id: 'wai_0', name: 'fs_write', args: { path: 'a', content: 'b' } },
      { id: 'wai_1', name: 'exit', args: '{"code": 0' },
    ]);
    expect(out.usage).toEqual({ prompt_tokens: 42, completion_tokens: 7, cached_tokens: 0, cache_write_tokens: 0 });
  });

  it('reads the OpenAI output shape some models return, and classifies binding errors', async () => {
    const openaiShaped = { run: async () => ({ choices: [{ message: { content: 'hi', tool_calls: [{ id: 'x1', function: { name: 'yield', arguments: '{}' } }] }, finish_reason: 'tool_calls' }], usage: { prompt_tokens: 3, completion_tokens: 1 } }) };
    const out = await new WorkersAiProvider(openaiShaped).complete(request);
    expect(out).toMatchObject({ text: 'hi', tool_calls: [{ id: 'x1', name: 'yield', args: {} }], stop_reason: 'tool_calls' });
    const busy = { run: async () => Promise.reject(new Error('3040: Capacity temporarily exceeded, please try again.')) };
    await expect(new WorkersAiProvider(busy).complete(request)).rejects.toMatchObject({ kind: 'retryable' });
    const bad = { run: async () => Promise.reject(new Error('5006: Error: required properties at /messages are missing')) };
    await expect(new WorkersAiProvider(bad).complete(request)).rejects.toMatchObject({ kind: 'fatal', code: 'EINVAL' });
  });
});
