/**
 * Provider selection and configuration.
 *
 * A process's model is a {provider, model, base_url?} triple fixed at spawn time from, in order of
 * precedence: the spawn request, the image, and the deployment's LLM_PROVIDER / LLM_MODEL. It is
 * checked at spawn (`checkModel`), so a missing API key or binding is a clear 400 then, not a
 * crash mid-step.
 *
 * API keys are per deployment only (secrets: `.dev.vars` locally, `wrangler secret put` in
 * production). A process may point its model at another OpenAI-compatible or Anthropic server with
 * `base_url`, but the deployment's key is then not sent: it is only ever sent to the base URL the
 * operator configured, so a process cannot exfiltrate it.
 */
import { type Result, fail, ok } from '../kernel/errors.ts';
import type { ModelRef } from '../kernel/pcb.ts';
import { AnthropicProvider } from './anthropic.ts';
import { OpenAiProvider } from './openai.ts';
import { type Script, ScriptedProvider } from './scripted.ts';
import type { LlmProvider } from './types.ts';
import { type AiBinding, WorkersAiProvider } from './workers-ai.ts';

export const PROVIDERS = ['scripted', 'openai', 'anthropic', 'workers-ai'] as const;
export type ProviderName = (typeof PROVIDERS)[number];

/** The deployment's LLM configuration, read from the Worker's env. */
export interface LlmEnv {
  readonly OPENAI_API_KEY?: string;
  readonly OPENAI_BASE_URL?: string;
  readonly ANTHROPIC_API_KEY?: string;
  readonly ANTHROPIC_BASE_URL?: string;
  readonly LLM_TIMEOUT_SECONDS?: string;
  readonly LLM_MAX_OUTPUT_TOKENS?: string;
  readonly AI?: AiBinding;
}

export interface ProviderConfig {
  readonly model: ModelRef;
  readonly script?: Script | null;
  readonly env: LlmEnv;
}

const set = (v: string | undefined): v is string => typeof v === 'string' && v.trim() !== '';

interface Endpoint {
  readonly baseURL?: string;
  readonly apiKey: string | null;
}

/** Which URL to call and which key to send, for an HTTP provider. Null key: none configured. */
function endpoint(ref: ModelRef, envBase: string | undefined, envKey: string | undefined): Endpoint {
  if (ref.base_url && ref.base_url !== envBase) return { baseURL: ref.base_url, apiKey: 'none' };
  return { ...(set(envBase) ? { baseURL: envBase } : {}), apiKey: set(envKey) ? envKey : set(envBase) ? 'none' : null };
}

/** Check that this deployment can serve a model reference. */
export function checkModel(ref: ModelRef, env: LlmEnv): Result<ModelRef> {
  switch (ref.provider as ProviderName) {
    case 'scripted':
      return ok(ref);
    case 'openai':
      if (endpoint(ref, env.OPENAI_BASE_URL, env.OPENAI_API_KEY).apiKey === null) {
        return fail('EINVAL', 'provider "openai" needs OPENAI_API_KEY: put it in .dev.vars locally or run `wrangler secret put OPENAI_API_KEY`; for a keyless OpenAI-compatible server set OPENAI_BASE_URL', { provider: 'openai' });
      }
      return ok(ref);
    case 'anthropic':
      if (endpoint(ref, env.ANTHROPIC_BASE_URL, env.ANTHROPIC_API_KEY).apiKey === null) {
        return fail('EINVAL', 'provider "anthropic" needs ANTHROPIC_API_KEY: put it in .dev.vars locally or run `wrangler secret put ANTHROPIC_API_KEY`', { provider: 'anthropic' });
      }
      return ok(ref);
    case 'workers-ai':
      if (!env.AI) return fail('EINVAL', 'provider "workers-ai" needs the AI binding: add `[ai] binding = "AI"` to wrangler.toml', { provider: 'workers-ai' });
      return ok(ref);
    default:
      return fail('EINVAL', `LLM provider "${ref.provider}" is not available; providers: ${PROVIDERS.join(', ')}`, { provider: ref.provider });
  }
}

function intVar(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return set(value) && Number.isFinite(n) && n > 0 ? Math.floor(n) : fallback;
}

export function createProvider(config: ProviderConfig): Result<LlmProvider> {
  const checked = checkModel(config.model, config.env);
  if (!checked.ok) return checked;
  const { env, model } = config;
  const timeoutMs = intVar(env.LLM_TIMEOUT_SECONDS, 120) * 1000;
  const maxOutputTokens = intVar(env.LLM_MAX_OUTPUT_TOKENS, 4096);
  switch (model.provider as ProviderName) {
    case 'openai': {
      const e = endpoint(model, env.OPENAI_BASE_URL, env.OPENAI_API_KEY);
      return ok(new OpenAiProvider({ apiKey: e.apiKey ?? 'none', ...(e.baseURL ? { baseURL: e.baseURL } : {}), timeoutMs, maxOutputTokens }));
    }
    case 'anthropic': {
      const e = endpoint(model, env.ANTHROPIC_BASE_URL, env.ANTHROPIC_API_KEY);
      return ok(new AnthropicProvider({ apiKey: e.apiKey ?? 'none', ...(e.baseURL ? { baseURL: e.baseURL } : {}), timeoutMs, maxOutputTokens }));
    }
    case 'workers-ai':
      return ok(new WorkersAiProvider(env.AI as AiBinding, maxOutputTokens));
    default:
      return ok(new ScriptedProvider(config.script ?? []));
  }
}
