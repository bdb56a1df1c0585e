import { describe, expect, it } from 'vitest';
import { ScriptSchema, ScriptedProvider, type Script } from './scripted.ts';
import { buildRequest, renderResult } from '../kernel/context.ts';
import type { SyscallResult } from '../kernel/syscalls.ts';
import type { ChatMessage, LlmRequest } from './types.ts';

function request(messages: ChatMessage[], tool_mode: 'native' | 'text' = 'native'): LlmRequest {
  return { model: 'scripted', system: 'sys', messages, tools: [], tool_mode };
}

const SCRIPT: Script = [
  { text: 'first: {{task}}', tool_calls: [{ name: 'fs_write', args: { path: 'a.txt', content: 'task={{task}}' } }] },
  {
    text: 'second',
    tool_calls: [
      { name: 'fs_write', args: { path: 'r.json', content: '{{last_result}}', deep: { list: ['{{task}}', 7, null, { x: '<{{last_result}}>' }] } } },
      { name: 'yield', args: {} },
    ],
  },
  { text: 'third, no calls' },
];

const TASK: ChatMessage = { role: 'user', content: 'tidy $& the {{task}} garden' };
const A0: ChatMessage = { role: 'assistant', content: 'first', tool_calls: [{ id: 'call_0_0', name: 'fs_write', args: {} }] };
const R0: ChatMessage = { role: 'tool', tool_call_id: 'call_0_0', name: 'fs_write', content: '{"ok":true,"value":{"bytes":4}}' };

describe('ScriptedProvider', () => {
  it('turn 0 answers a conversation with no assistant turns, substituting {{task}} literally', async () => {
    const r = await new ScriptedProvider(SCRIPT).complete(request([TASK]));
    expect(r.text).toBe('first: tidy $& the {{task}} garden');
    expect(r.tool_calls).toEqual([{ id: 'call_0_0', name: 'fs_write', args: { path: 'a.txt', content: 'task=tidy $& the {{task}} garden' } }]);
    expect(r.stop_reason).toBe('tool_use');
    expect(r.model).toBe('scripted');
  });

  it('turn n answers the n-th assistant turn; substitutes in nested args', async () => {
    const r = await new ScriptedProvider(SCRIPT).complete(request([TASK, A0, R0, { role: 'user', content: '[kernel] note' }]));
    expect(r.text).toBe('second');
    expect(r.tool_calls).toEqual([
      {
        id: 'call_1_0',
        name: 'fs_write',
        args: {
          path: 'r.json',
          content: R0.content,
          deep: { list: [TASK.content, 7, null, { x: `<${R0.content}>` }] },
        },
      },
      { id: 'call_1_1', name: 'yield', args: {} },
    ]);
  });

  it('{{last_result}} is the most recent tool result', async () => {
    const r1: ChatMessage = { role: 'tool', tool_call_id: 'call_1_0', name: 'x', content: '"latest"' };
    const a1: ChatMessage = { role: 'assistant', content: 's' };
    const script: Script = [{}, {}, { text: '{{last_result}}' }];
    const r = await new ScriptedProvider(script).complete(request([TASK, A0, R0, a1, r1]));
    expect(r.text).toBe('"latest"');
  });

  // In text mode results reach the model as "[SYS_RESULT::<id>] <json>" user messages, not tool messages.
  it('{{last_result}} is the most recent result in text tool mode too', async () => {
    const result: SyscallResult = { ok: true, value: { bytes: 4 } };
    const req = buildRequest({
      system_prompt: 'sys',
      tool_mode: 'text',
      model: 'scripted',
      pages: [
        { kind: 'task', text: 'greet' },
        { kind: 'assistant', text: '[SYS_CALL::{"name":"fs_write","args":{"path":"a","content":"hi!!"}}]', tool_calls: [] },
        { kind: 'result', call_id: 'text-0', name: 'fs_write', via: 'text', result },
      ],
    });
    const r = await new ScriptedProvider([{}, { text: 'got {{last_result}}' }]).complete(req);
    expect(r.text).toBe(`got ${renderResult(result)}`);
  });

  it('a turn with text only ends the turn', async () => {
    const r = await new ScriptedProvider(SCRIPT).complete(request([TASK, A0, R0, { role: 'assistant', content: 'x' }]));
    expect(r).toMatchObject({ text: 'third, no calls', tool_calls: [], stop_reason: 'end_turn' });
  });

  it('past the end it answers with text and no tool calls', async () => {
    const msgs: ChatMessage[] = [TASK, ...Array.from({ length: 5 }, (): ChatMessage => ({ role: 'assistant', content: '.' }))];
    const r = await new ScriptedProvider(SCRIPT).complete(request(msgs));
    expect(r.tool_calls).toEqual([]);
    expect(r.text.length).toBeGreaterThan(0);
    expect(r.stop_reason).toBe('end_turn');
    const empty = await new ScriptedProvider([]).complete(request([TASK]));
    expect(empty.tool_calls).toEqual([]);
  });

  it('is deterministic for identical requests, across provider instances', async () => {
    const msgs = [TASK, A0, R0];
    const a = await new ScriptedProvider(SCRIPT).complete(request(msgs));
    const b = await new ScriptedProvider(SCRIPT).complete(request(structuredClone(msgs)));
    expect(b).toEqual(a);
    expect(a.usage.prompt_tokens).toBeGreaterThan(0);
    expect(a.usage.completion_tokens).toBeGreaterThan(0);
  });

  it('does not modify the script', async () => {
    const script = structuredClone(SCRIPT);
    await new ScriptedProvider(script).complete(request([TASK, A0, R0]));
    expect(script).toEqual(SCRIPT);
  });
});

describe('ScriptSchema', () => {
  it('rejects unknown keys in turns and calls', () => {
    expect(ScriptSchema.safeParse([{ text: 'a', tool_calls: [{ name: 'yield', args: {} }] }]).success).toBe(true);
    expect(ScriptSchema.safeParse([{ txt: 'a' }]).success).toBe(false);
    expect(ScriptSchema.safeParse([{ tool_calls: [{ name: '', args: {} }] }]).success).toBe(false);
  });
});
