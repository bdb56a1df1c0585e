/**
 * The Worker entry: the HTTP API, and the Durable Object classes the runtime instantiates.
 */
import { createApp } from './api/app.ts';

export { AgentProcess } from '../durable/agent-process.ts';
export { AuditChain } from '../durable/audit-chain.ts';
// JIT tools: the syscall broker and the egress proxy a tool isolate is bound to (src/tools/broker.ts).
export { ToolBroker, ToolEgress } from './tools/broker.ts';

const app = createApp();

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
