/**
 * The provider interface: the kernel's view of an LLM, independent of any wire format.
 *
 * A provider takes the process's context as neutral messages plus the syscall table as tools, and
 * returns text, tool calls and token usage. Adapters (scripted here; OpenAI, Anthropic, Workers AI
 * in src/llm/<name>.ts) translate to and from their wire formats. Tool-call arguments arrive as
 * parsed JSON, or as the raw string when the model sent JSON that does not parse, so a malformed
 * call is an EINVAL result for the model rather than an exception in the kernel.
 */
import type { ToolSpec } from '../kernel/syscalls.ts';

export type ChatMessage =
  | { readonly role: 'user'; readonly content: string }
  | { readonly role: 'assistant'; readonly content: string; readonly tool_calls?: readonly LlmToolCall[] }
  | { readonly role: 'tool'; readonly tool_call_id: string; readonly name: string; readonly content: string };

export interface LlmToolCall {
  readonly id: string;
  readonly name: string;
  /** Parsed JSON arguments, or the raw string if they were not valid JSON. */
  readonly args: unknown;
}

/** How syscalls reach the model: as native tools, or described in the prompt as [SYS_CALL::…] text. */
export type ToolMode = 'native' | 'text';

export interface LlmRequest {
  readonly model: string;
  readonly system: string;
  readonly messages: readonly ChatMessage[];
  readonly tools: readonly ToolSpec[];
  readonly tool_mode: ToolMode;
  readonly max_output_tokens?: number;
  /** The process's step this call is for (1-based). Providers ignore it; the scripted one answers by it. */
  readonly step?: number;
}

export interface LlmUsage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  /** Prompt tokens served from the provider's cache. */
  readonly cached_tokens: number;
  /** Prompt tokens written to the provider's cache (Anthropic cache_creation_input_tokens). */
  readonly cache_write_tokens: number;
}

export interface LlmResponse {
  readonly text: string;
  readonly tool_calls: readonly LlmToolCall[];
  readonly usage: LlmUsage;
  readonly model: string;
  readonly stop_reason: string;
}

export interface LlmProvider {
  readonly name: string;
  complete(request: LlmRequest, options?: { readonly signal?: AbortSignal }): Promise<LlmResponse>;
}
