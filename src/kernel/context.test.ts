import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../llm/types.ts';
import { type ContextInput, type PageBody, buildRequest, renderResult } from './context.ts';
import { syscallTools } from './syscalls.ts';

const PAGES: PageBody[] = [
  { kind: 'task', text: 'count the files' },
  { kind: 'assistant', text: 'listing', tool_calls: [{ id: 'call_0_0', name: 'fs_list', args: { path: '/' } }] },
  { kind: 'result', call_id: 'call_0_0', name: 'fs_list', via: 'native', result: { ok: true, value: { entries: [] } } },
  { kind: 'notice', text: 'SIGSTOP received' },
  { kind: 'assistant', text: 'thinking [SYS_CALL::{"name":"yield"}]', tool_calls: [] },
  { kind: 'result', call_id: 'text-0', name: 'yield', via: 'text', result: { ok: false, error: { code: 'EINVAL', message: 'bad' } } },
];

function input(tool_mode: 'native' | 'text', pages: readonly PageBody[] = PAGES): ContextInput {
  return { system_prompt: 'You are an agent.', tool_mode, model: 'm1', pages };
}

describe('buildRequest (native)', () => {
  const req = buildRequest(input('native'));

  it('uses the system prompt as is and offers the syscall tools', () => {
    expect(req.system).toBe('You are an agent.');
    expect(req.tools).toEqual(syscallTools());
    expect(req.model).toBe('m1');
    expect(req.tool_mode).toBe('native');
  });

  it('renders pages in order as the right message kinds', () => {
    const expected: ChatMessage[] = [
      { role: 'user', content: 'count the files' },
      { role: 'assistant', content: 'listing', tool_calls: [{ id: 'call_0_0', name: 'fs_list', args: { path: '/' } }] },
      { role: 'tool', tool_call_id: 'call_0_0', name: 'fs_list', content: '{"ok":true,"value":{"entries":[]}}' },
      { role: 'user', content: '[kernel] SIGSTOP received' },
      { role: 'assistant', content: 'thinking [SYS_CALL::{"name":"yield"}]' },
      { role: 'user', content: '[SYS_RESULT::text-0] {"ok":false,"error":{"code":"EINVAL","message":"bad"}}' },
    ];
    expect(req.messages).toEqual(expected);
    expect('tool_calls' in (req.messages[4] ?? {})).toBe(false);
  });
});

describe('buildRequest (text)', () => {
  const req = buildRequest(input('text'));

  it('describes the protocol and every syscall in the system prompt, with no tools', () => {
    expect(req.tools).toEqual([]);
    expect(req.tool_mode).toBe('text');
    expect(req.system.startsWith('You are an agent.\n\n')).toBe(true);
    expect(req.system).toContain('[SYS_CALL::{"name": "<syscall>", "args": {...}}]');
    expect(req.system).toContain('[SYS_RESULT::<id>]');
    for (const t of syscallTools()) expect(req.system).toContain(`- ${t.name}: ${t.description}`);
  });

  it('keeps assistant text raw and returns every result as a tagged user message', () => {
    expect(req.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'user', 'assistant', 'user']);
    expect(req.messages[1]).toEqual({ role: 'assistant', content: 'listing' });
    expect(req.messages[2]).toEqual({ role: 'user', content: '[SYS_RESULT::call_0_0] {"ok":true,"value":{"entries":[]}}' });
    expect(req.messages.some((m) => m.role === 'tool')).toBe(false);
  });
});

describe('prefix stability', () => {
  for (const mode of ['native', 'text'] as const) {
    it(`${mode}: the prompt of N+1 pages starts with the prompt of N pages`, () => {
      for (let n = 0; n < PAGES.length; n++) {
        const a = buildRequest(input(mode, PAGES.slice(0, n)));
        const b = buildRequest(input(mode, PAGES.slice(0, n + 1)));
        expect(b.system).toBe(a.system);
        expect(JSON.stringify(b.tools)).toBe(JSON.stringify(a.tools));
        expect(b.messages.slice(0, a.messages.length)).toEqual(a.messages);
        expect(b.messages.length).toBe(a.messages.length + 1);
      }
    });
  }
});

describe('renderResult', () => {
  it('is compact JSON of ok/value or ok/error', () => {
    expect(renderResult({ ok: true, value: 1 })).toBe('{"ok":true,"value":1}');
    expect(renderResult({ ok: false, error: { code: 'ENOENT', message: 'no', details: { p: '/a' } } })).toBe(
      '{"ok":false,"error":{"code":"ENOENT","message":"no","details":{"p":"/a"}}}',
    );
  });
});

describe('recall pages', () => {
  it('come after every result of their step, whenever they were written, and keep untrusted content labelled', () => {
    const pages: (PageBody & { step: number })[] = [
      { kind: 'task', text: 't', step: 0 },
      { kind: 'assistant', text: '', tool_calls: [{ id: 'a', name: 'page_in', args: { step: 1 } }, { id: 'b', name: 'fs_list', args: { path: '/' } }], step: 5 },
      { kind: 'recall', from_step: 1, text: 'net_fetch {"ok":true,"value":"the secret plan"}', untrusted: true, source: 'https://example.com', step: 5 },
      { kind: 'result', call_id: 'a', name: 'page_in', via: 'native', result: { ok: true, value: { recalled_steps: [1] } }, step: 5 },
      { kind: 'result', call_id: 'b', name: 'fs_list', via: 'native', result: { ok: true, value: { entries: [] } }, step: 5 },
    ];
    const req = buildRequest({ system_prompt: 's', tool_mode: 'native', model: 'm', pages });
    expect(req.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'tool', 'user']);
    const last = req.messages.at(-1);
    expect(last?.role === 'user' && last.content).toMatch(/^\[untrusted content from https:\/\/example\.com.*\[kernel\] page fault: step 1.*the secret plan/s);
  });
});
