/**
 * The Worker entry: the HTTP API, the IPC Queue's consumer, and the classes the runtime
 * instantiates (the Durable Objects of durable/, the tool broker's entrypoints). The one module
 * that binds src/ and durable/ together; src/ itself never imports durable/ (docs/architecture.md).
 */
import { processStub } from '../src/rpc/stubs.ts';
import { createApp } from '../src/api/app.ts';
import { consumeIpcBatch } from '../src/ipc/consumer.ts';

export { AgentProcess } from '../durable/agent-process.ts';
export { AuditChain } from '../durable/audit-chain.ts';
export { LlmScheduler } from '../durable/scheduler.ts';
export { MemoryIndex } from '../durable/memory-index.ts';
// Pipelines: a Workflow per run, spawning processes stage by stage (workflows/pipeline.ts).
export { PipelineWorkflow } from '../workflows/pipeline.ts';
// JIT tools: the syscall broker and the egress proxy a tool isolate is bound to (src/tools/broker.ts).
export { ToolBroker, ToolEgress } from '../src/tools/broker.ts';

const app = createApp();

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
  queue: (batch, env) => consumeIpcBatch(batch, { rpc: (to, messages) => processStub(env, to).deliverMessages(messages), db: env.DB, now: () => Date.now() }),
} satisfies ExportedHandler<Env>;
