/**
 * Workers AI through the `AI` binding, for models with function calling (e.g.
 * `@cf/meta/llama-4-scout-17b-16e-instruct`, `@hf/nousresearch/hermes-2-pro-mistral-7b`).
 *
 * Workers AI has no local simulation: under `wrangler dev` the binding calls the real service
 * (which needs a Cloudflare login), and in tests it is exercised against a fake binding that checks
 * the exact input. Models answer in one of two shapes, both handled: the Workers AI shape
 * `{response, tool_calls: [{name, arguments}], usage}` and the OpenAI shape `{choices: [...]}`.
 * Tool calls without ids get stable synthetic ids so results can be matched to them.
 */
import { LlmError } from './errors.ts';
import { parseArgs, toOpenAiMessages } from './openai.ts';
import type { LlmProvider, LlmRequest, LlmResponse, LlmToolCall } from './types.ts';

/** The part of the `Ai` binding this adapter uses. */
export interface AiBinding {
  run(model: string, input: Record<string, unknown>): Promise<unknown>;
}

type WaiToolCall = { id?: string; name?: string; arguments?: unknown; function?: { name?: string; arguments?: unknown } };
type WaiOutput = {
  response?: string | null;
  tool_calls?: WaiToolCall[];
  usage?: { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } };
  choices?: { message?: { content?: string | null; tool_calls?: WaiToolCall[] }; finish_reason?: string }[];
};

const argsOf = (raw: unknown): unknown => (typeof raw === 'string' ? parseArgs(raw) : (raw ?? {}));

export class WorkersAiProvider implements LlmProvider {
  readonly name = 'workers-ai';
  readonly #ai: AiBinding;
  readonly #maxOutputTokens: number | undefined;

  constructor(ai: AiBinding, maxOutputTokens?: number) {
    this.#ai = ai;
    this.#maxOutputTokens = maxOutputTokens;
  }

  async complete(request: LlmRequest): Promise<LlmResponse> {
    let raw: unknown;
    try {
      raw = await this.#ai.run(request.model, {
        messages: toOpenAiMessages(request.system, request.messages),
        ...(request.tools.length > 0 ? { tools: request.tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters } })) } : {}),
        ...(this.#maxOutputTokens ? { max_tokens: this.#maxOutputTokens } : {}),
      });
    } catch (e) {
      const message = `workers-ai: ${(e as Error).message}`;
      if (/context|too long|too many tokens/i.test(message)) throw new LlmError('context', 'E2BIG', message);
      if (/capacity|rate.?limit|timeout|timed out|unavailable|\b429\b|\b5\d\d\b/i.test(message)) throw new LlmError('retryable', 'EAGAIN', message);
      throw new LlmError('fatal', 'EINVAL', message);
    }
    if (raw === null || typeof raw !== 'object') throw new LlmError('retryable', 'EIO', 'workers-ai: the model returned no output object');
    const out = raw as WaiOutput;
    const message = out.choices?.[0]?.message;
    const calls = message ? (message.tool_calls ?? []) : (out.tool_calls ?? []);
    const toolCalls: LlmToolCall[] = calls.map((c, i) => ({
      id: c.id ?? `wai_${i}`,
      name: c.function?.name ?? c.name ?? '',
      args: argsOf(c.function?.arguments ?? c.arguments),
    }));
    return {
      text: (message ? message.content : out.response) ?? '',
      tool_calls: toolCalls,
      usage: {
        prompt_tokens: out.usage?.prompt_tokens ?? 0,
        completion_tokens: out.usage?.completion_tokens ?? 0,
        cached_tokens: out.usage?.prompt_tokens_details?.cached_tokens ?? 0,
        cache_write_tokens: 0,
      },
      model: request.model,
      stop_reason: out.choices?.[0]?.finish_reason ?? (toolCalls.length > 0 ? 'tool_calls' : 'stop'),
    };
  }
}
