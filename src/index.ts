/**
 * The Worker entry: the HTTP API, and the Durable Object classes the runtime instantiates.
 */
import { createApp } from './api/app.ts';

export { AgentProcess } from '../durable/agent-process.ts';
export { AuditChain } from '../durable/audit-chain.ts';
export { MemoryIndex } from '../durable/memory-index.ts';

const app = createApp();

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
