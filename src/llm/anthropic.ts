/**
 * Anthropic Messages through the official `@anthropic-ai/sdk`.
 *
 * Syscalls go out as `tools` (name, description, input_schema); the model answers with `tool_use`
 * blocks, and their results go back as `tool_result` blocks, all results of one turn in a single
 * user message, in order (consecutive user content is merged, as the API expects alternating turns).
 *
 * Prompt caching: `cache_control` breakpoints at the end of the stable prefix — the system prompt
 * and the tool table — and at the end of the conversation so far, so each step reads the previous
 * step's prefix from cache. Cached tokens come from `cache_read_input_tokens`, cache writes from
 * `cache_creation_input_tokens`; prompt tokens are input + cache reads + cache writes.
 */
import Anthropic from '@anthropic-ai/sdk';
import { LlmError, classifyHttp } from './errors.ts';
import type { ChatMessage, LlmProvider, LlmRequest, LlmResponse, LlmToolCall } from './types.ts';

export interface AnthropicOptions {
  readonly apiKey: string;
  readonly baseURL?: string;
  readonly timeoutMs: number;
  readonly maxOutputTokens: number;
  readonly fetch?: typeof fetch;
}

type Block = Anthropic.Messages.ContentBlockParam;
type WireMessage = Anthropic.Messages.MessageParam;
const EPHEMERAL = { type: 'ephemeral' } as const;

export function toAnthropicMessages(messages: readonly ChatMessage[]): WireMessage[] {
  const out: { role: 'user' | 'assistant'; content: Block[] }[] = [];
  const push = (role: 'user' | 'assistant', block: Block) => {
    const last = out.at(-1);
    if (last && last.role === role) last.content.push(block);
    else out.push({ role, content: [block] });
  };
  for (const m of messages) {
    if (m.role === 'user') push('user', { type: 'text', text: m.content });
    else if (m.role === 'tool') {
      const failed = m.content.startsWith('{"ok":false');
      push('user', { type: 'tool_result', tool_use_id: m.tool_call_id, content: m.content, ...(failed ? { is_error: true } : {}) });
    } else {
      if (m.content !== '') push('assistant', { type: 'text', text: m.content });
      for (const c of m.tool_calls ?? []) {
        const input = c.args !== null && typeof c.args === 'object' && !Array.isArray(c.args) ? (c.args as Record<string, unknown>) : {};
        push('assistant', { type: 'tool_use', id: c.id, name: c.name, input });
      }
      if (m.content === '' && (m.tool_calls ?? []).length === 0) push('assistant', { type: 'text', text: '(no answer)' });
    }
  }
  // Breakpoint at the end of the conversation so far: the next step reads all of it from cache.
  const lastBlock = out.at(-1)?.content.at(-1);
  if (lastBlock && lastBlock.type !== 'thinking' && lastBlock.type !== 'redacted_thinking') {
    (lastBlock as { cache_control?: typeof EPHEMERAL }).cache_control = EPHEMERAL;
  }
  return out;
}

export class AnthropicProvider implements LlmProvider {
  readonly name = 'anthropic';
  readonly #client: Anthropic;
  readonly #maxOutputTokens: number;

  constructor(options: AnthropicOptions) {
    this.#client = new Anthropic({
      apiKey: options.apiKey,
      ...(options.baseURL ? { baseURL: options.baseURL } : {}),
      maxRetries: 0,
      timeout: options.timeoutMs,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
    this.#maxOutputTokens = options.maxOutputTokens;
  }

  async complete(request: LlmRequest): Promise<LlmResponse> {
    const tools = request.tools.map((t, i) => ({
      name: t.name,
      description: t.description,
      input_schema: t.parameters as Anthropic.Messages.Tool.InputSchema,
      ...(i === request.tools.length - 1 ? { cache_control: EPHEMERAL } : {}),
    }));
    let message: Anthropic.Messages.Message;
    try {
      message = await this.#client.messages.create({
        model: request.model,
        max_tokens: this.#maxOutputTokens,
        system: [{ type: 'text', text: request.system, cache_control: EPHEMERAL }],
        messages: toAnthropicMessages(request.messages),
        ...(tools.length > 0 ? { tools } : {}),
      });
    } catch (e) {
      throw toLlmError(e);
    }
    let text = '';
    const toolCalls: LlmToolCall[] = [];
    for (const block of message.content) {
      if (block.type === 'text') text += block.text;
      else if (block.type === 'tool_use') toolCalls.push({ id: block.id, name: block.name, args: block.input });
    }
    const u = message.usage;
    const cacheRead = u.cache_read_input_tokens ?? 0;
    const cacheWrite = u.cache_creation_input_tokens ?? 0;
    return {
      text,
      tool_calls: toolCalls,
      usage: { prompt_tokens: u.input_tokens + cacheRead + cacheWrite, completion_tokens: u.output_tokens, cached_tokens: cacheRead, cache_write_tokens: cacheWrite },
      model: message.model,
      stop_reason: message.stop_reason ?? 'unknown',
    };
  }
}

function toLlmError(e: unknown): unknown {
  if (e instanceof Anthropic.APIConnectionTimeoutError) return new LlmError('retryable', 'ETIMEDOUT', `anthropic: ${e.message}`);
  if (e instanceof Anthropic.APIConnectionError) return new LlmError('retryable', 'EIO', `anthropic: ${e.message}`);
  if (e instanceof Anthropic.APIError) return classifyHttp('anthropic', e.status, e.message, e.headers, Date.now());
  return e;
}
