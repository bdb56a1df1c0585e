/**
 * Provider selection. A process's model is a {provider, model} pair fixed at spawn time from, in
 * order of precedence: the spawn request, the image, and the deployment's LLM_PROVIDER / LLM_MODEL.
 * Checking it at spawn means a misconfigured provider is a clear 400 then, not a crash mid-step.
 */
import { type Result, fail, ok } from '../kernel/errors.ts';
import type { ModelRef } from '../kernel/pcb.ts';
import { type Script, ScriptedProvider } from './scripted.ts';
import type { LlmProvider } from './types.ts';

export const PROVIDERS = ['scripted'] as const;

export interface ProviderConfig {
  readonly model: ModelRef;
  readonly script?: Script;
}

/** Check that a model reference can be served by this deployment. */
export function checkModel(ref: ModelRef): Result<ModelRef> {
  if (!(PROVIDERS as readonly string[]).includes(ref.provider)) {
    return fail('EINVAL', `LLM provider "${ref.provider}" is not available; configured providers: ${PROVIDERS.join(', ')}`, { provider: ref.provider });
  }
  return ok(ref);
}

export function createProvider(config: ProviderConfig): Result<LlmProvider> {
  const checked = checkModel(config.model);
  if (!checked.ok) return checked;
  return ok(new ScriptedProvider(config.script ?? []));
}
