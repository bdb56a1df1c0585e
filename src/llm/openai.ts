/**
 * OpenAI Chat Completions through the official `openai` SDK. This is the wire format every
 * OpenAI-compatible server speaks (vLLM, Ollama, llama.cpp, DeepSeek, Qwen, Kimi …): point
 * OPENAI_BASE_URL at it.
 *
 * Syscalls go out as `tools` of type function; several tool calls in one answer come back as
 * `tool_calls`, and their results go back as one `role: "tool"` message each, in order. Arguments
 * that are not valid JSON are passed on as the raw string, which the kernel answers with EINVAL.
 * Prompt caching is automatic on OpenAI for stable prefixes; cached tokens are read from
 * `usage.prompt_tokens_details.cached_tokens`.
 */
import OpenAI from 'openai';
import { LlmError, classifyHttp } from './errors.ts';
import type { ChatMessage, LlmProvider, LlmRequest, LlmResponse, LlmToolCall } from './types.ts';

export interface OpenAiOptions {
  readonly apiKey: string;
  readonly baseURL?: string;
  readonly timeoutMs: number;
  readonly maxOutputTokens?: number;
  readonly fetch?: typeof fetch;
}

type WireMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;

export function parseArgs(raw: string | undefined): unknown {
  if (raw === undefined || raw.trim() === '') return {};
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw; // the kernel turns a string into EINVAL for the model
  }
}

export function toOpenAiMessages(system: string, messages: readonly ChatMessage[]): WireMessage[] {
  const out: WireMessage[] = [{ role: 'system', content: system }];
  for (const m of messages) {
    if (m.role === 'user') out.push({ role: 'user', content: m.content });
    else if (m.role === 'tool') out.push({ role: 'tool', tool_call_id: m.tool_call_id, content: m.content });
    else if (m.tool_calls && m.tool_calls.length > 0) {
      out.push({
        role: 'assistant',
        content: m.content === '' ? null : m.content,
        tool_calls: m.tool_calls.map((c) => ({
          id: c.id,
          type: 'function' as const,
          function: { name: c.name, arguments: typeof c.args === 'string' ? c.args : JSON.stringify(c.args ?? {}) },
        })),
      });
    } else out.push({ role: 'assistant', content: m.content });
  }
  return out;
}

export class OpenAiProvider implements LlmProvider {
  readonly name = 'openai';
  readonly #client: OpenAI;
  readonly #maxOutputTokens: number | undefined;

  constructor(options: OpenAiOptions) {
    this.#client = new OpenAI({
      apiKey: options.apiKey,
      ...(options.baseURL ? { baseURL: options.baseURL } : {}),
      maxRetries: 0,
      timeout: options.timeoutMs,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
    this.#maxOutputTokens = options.maxOutputTokens;
  }

  async complete(request: LlmRequest): Promise<LlmResponse> {
    let completion: OpenAI.Chat.Completions.ChatCompletion;
    try {
      completion = await this.#client.chat.completions.create({
        model: request.model,
        messages: toOpenAiMessages(request.system, request.messages),
        ...(request.tools.length > 0
          ? { tools: request.tools.map((t) => ({ type: 'function' as const, function: { name: t.name, description: t.description, parameters: t.parameters } })) }
          : {}),
        ...(this.#maxOutputTokens ? { max_completion_tokens: this.#maxOutputTokens } : {}),
      });
    } catch (e) {
      throw toLlmError(e);
    }
    const choice = completion.choices[0];
    if (!choice) throw new LlmError('retryable', 'EIO', 'openai: the response has no choices');
    const toolCalls: LlmToolCall[] = [];
    for (const c of choice.message.tool_calls ?? []) {
      if (c.type === 'function') toolCalls.push({ id: c.id, name: c.function.name, args: parseArgs(c.function.arguments) });
    }
    const usage = completion.usage;
    return {
      text: choice.message.content ?? '',
      tool_calls: toolCalls,
      usage: {
        prompt_tokens: usage?.prompt_tokens ?? 0,
        completion_tokens: usage?.completion_tokens ?? 0,
        cached_tokens: usage?.prompt_tokens_details?.cached_tokens ?? 0,
        cache_write_tokens: 0,
      },
      model: completion.model,
      stop_reason: choice.finish_reason,
    };
  }
}

function toLlmError(e: unknown): unknown {
  if (e instanceof OpenAI.APIConnectionTimeoutError) return new LlmError('retryable', 'ETIMEDOUT', `openai: ${e.message}`);
  if (e instanceof OpenAI.APIConnectionError) return new LlmError('retryable', 'EIO', `openai: ${e.message}`);
  if (e instanceof OpenAI.APIError) return classifyHttp('openai', e.status, e.message, e.headers, Date.now());
  return e;
}
