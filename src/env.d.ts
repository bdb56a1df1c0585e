/**
 * Bindings `wrangler types` cannot see: secrets (never in wrangler.toml) and the optional Workers AI
 * binding. Generated types for everything in wrangler.toml are in worker-configuration.d.ts.
 */
import type { AiBinding } from './llm/workers-ai.ts';

interface Secrets {
  /** Secret: `wrangler secret put OPENAI_API_KEY` (or .dev.vars locally). */
  OPENAI_API_KEY?: string;
  /** Secret: `wrangler secret put ANTHROPIC_API_KEY` (or .dev.vars locally). */
  ANTHROPIC_API_KEY?: string;
  /** Secret: the bootstrap admin token (tenant "default"). `npm start` sets a development one. */
  AGENTOS_ADMIN_TOKEN?: string;
  /** Workers AI, when `[ai] binding = "AI"` is configured. */
  AI?: AiBinding;
  /** Vectorize (long-term memory in production), when `[[vectorize]] binding = "VECTORIZE"` is configured. */
  VECTORIZE?: Vectorize;
  /** Secret: key for EMBEDDING_BASE_URL when it is not the OpenAI endpoint (default: OPENAI_API_KEY). */
  EMBEDDING_API_KEY?: string;
  /** Secret: the key registered MCP servers' header values are encrypted under (src/mcp/secrets.ts), at least 16 characters. */
  MCP_SECRET_KEY?: string;
}

declare global {
  interface Env extends Secrets {}
  namespace Cloudflare {
    interface Env extends Secrets {}
  }
}
