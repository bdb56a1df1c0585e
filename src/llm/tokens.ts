/**
 * Token counting with a real BPE tokenizer that runs in Workers: gpt-tokenizer's o200k_base (the
 * encoding of GPT-4o, GPT-4.1, GPT-5 and o-series). Counts are exact for those models. Anthropic
 * publishes no tokenizer, and Workers AI models use their own, so for them the same count is an
 * estimate (typically within ~10–20%); providers' reported usage, not this count, is what quotas charge.
 * Only this one encoding is imported, which keeps the bundle to its ~2.4 MB of ranks (see docs/BENCHMARKS.md).
 */
import { countTokens as o200kCount } from 'gpt-tokenizer/encoding/o200k_base';

export function countTokens(text: string): number {
  if (text.length === 0) return 0;
  return o200kCount(text);
}
