/**
 * The scripted provider: a deterministic LLM for tests, demos and benchmarks.
 *
 * A script is a list of turns. Turn n answers step n+1 of the process (or, without a step number,
 * the n-th assistant turn of the conversation), so the answer depends only on the request: re-issuing a call after a crash yields the same answer, as
 * the journal's replay rules assume. Strings in a turn may use substitutions, the whole of its
 * "policy": {{task}} (the first user message), {{last_result}} (the most recent syscall result, as
 * JSON) and {{result:N.path}} (a field of the N-th result so far, e.g. {{result:0.value.pid}}). When the script runs out the provider answers with text and no calls, which ends the
 * process with code 0 like any model that stops calling tools.
 *
 * Token usage is an estimate (characters / 4) and is reported as such in the docs: there is no
 * real model whose tokenizer to use.
 */
import { z } from 'zod';
import type { ChatMessage, LlmProvider, LlmRequest, LlmResponse } from './types.ts';

export const ScriptTurnSchema = z
  .object({
    text: z.string().max(64 * 1024).optional().describe('assistant text; may contain [SYS_CALL::…] blocks'),
    tool_calls: z
      .array(z.object({ name: z.string().min(1).max(128), args: z.unknown() }).strict())
      .max(32)
      .optional()
      .describe('native tool calls, dispatched in order'),
  })
  .strict();
export type ScriptTurn = z.infer<typeof ScriptTurnSchema>;
export const ScriptSchema = z.array(ScriptTurnSchema).max(10_000);
export type Script = z.infer<typeof ScriptSchema>;

export const estimateTokens = (chars: number): number => Math.ceil(chars / 4);

/** `{{result:N.path}}`: a field of the N-th syscall result so far (0-based), e.g. {{result:0.value.pid}}. */
const RESULT_REF = /\{\{result:(\d+)((?:\.[A-Za-z0-9_]+)*)\}\}/g;

function pick(json: string | undefined, path: string): string {
  if (json === undefined) return '';
  let value: unknown;
  try {
    value = JSON.parse(json.replace(/^\[untrusted content[^\]]*\] /, ''));
  } catch {
    return '';
  }
  for (const key of path.split('.').filter(Boolean)) value = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
  return typeof value === 'string' ? value : value === undefined ? '' : JSON.stringify(value);
}

function substitute(value: unknown, vars: Readonly<Record<string, string>>, results: readonly string[] = []): unknown {
  if (typeof value === 'string') {
    return value.replace(/\{\{(task|last_result)\}\}/g, (_, k: string) => vars[k] ?? '').replace(RESULT_REF, (_, n: string, path: string) => pick(results[Number(n)], path));
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, vars, results));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, vars, results)]));
  }
  return value;
}

const TEXT_RESULT = /^\[SYS_RESULT::[^\]]*\] /;

/** The newest syscall result: a tool message (native mode) or a [SYS_RESULT::…] user message (text mode). */
function allResults(messages: readonly ChatMessage[]): string[] {
  const out: string[] = [];
  for (const m of messages) {
    if (m.role === 'tool') out.push(m.content);
    else if (m.role === 'user' && TEXT_RESULT.test(m.content)) out.push(m.content.replace(TEXT_RESULT, ''));
  }
  return out;
}

function lastResult(messages: readonly ChatMessage[]): string {
  return allResults(messages).at(-1) ?? '';
}

function promptChars(request: LlmRequest): number {
  let n = request.system.length;
  for (const m of request.messages) n += m.content.length;
  return n;
}

export class ScriptedProvider implements LlmProvider {
  readonly name = 'scripted';
  readonly #script: Script;

  constructor(script: Script) {
    this.#script = script;
  }

  async complete(request: LlmRequest): Promise<LlmResponse> {
    // The step number when the kernel gives it (paging may have evicted earlier turns from the
    // prompt); otherwise the count of assistant turns in the conversation.
    const turn = request.step !== undefined ? request.step - 1 : request.messages.filter((m) => m.role === 'assistant').length;
    const step = this.#script[turn];
    const promptTokens = estimateTokens(promptChars(request));
    if (step === undefined) {
      return { text: 'Script finished.', tool_calls: [], usage: { prompt_tokens: promptTokens, completion_tokens: 4, cached_tokens: 0, cache_write_tokens: 0 }, model: request.model, stop_reason: 'end_turn' };
    }
    const firstUser = request.messages.find((m): m is Extract<ChatMessage, { role: 'user' }> => m.role === 'user');
    const vars = { task: firstUser?.content ?? '', last_result: lastResult(request.messages) };
    const results = allResults(request.messages);
    const text = (substitute(step.text ?? '', vars, results) as string) ?? '';
    const tool_calls = (step.tool_calls ?? []).map((c, i) => ({ id: `call_${turn}_${i}`, name: c.name, args: substitute(c.args ?? {}, vars, results) }));
    const completionChars = text.length + tool_calls.reduce((n, c) => n + c.name.length + JSON.stringify(c.args).length, 0);
    return {
      text,
      tool_calls,
      usage: { prompt_tokens: promptTokens, completion_tokens: estimateTokens(completionChars), cached_tokens: 0, cache_write_tokens: 0 },
      model: request.model,
      stop_reason: tool_calls.length > 0 ? 'tool_use' : 'end_turn',
    };
  }
}
