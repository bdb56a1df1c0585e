/**
 * Stubs for the kernel's Durable Objects, typed by their contracts (./contracts.ts). Each object's
 * name is decided here, once: a process by its pid, a scheduler shard by `<pool>#<shard>`, an audit
 * chain by its tenant.
 */
import type { AuditChainApi, ProcessApi, SchedulerApi } from './contracts.ts';

/** The process `pid`'s object. */
export function processStub(env: Env, pid: string): ProcessApi {
  return env.AGENT_PROCESS.get(env.AGENT_PROCESS.idFromName(pid)) as unknown as ProcessApi;
}

/** Shard `shard` of the LLM pool `pool`'s scheduler. */
export function schedulerStub(env: Env, pool: string, shard: number): SchedulerApi {
  return env.SCHEDULER.get(env.SCHEDULER.idFromName(`${pool}#${shard}`)) as unknown as SchedulerApi;
}

/** The tenant's audit chain. */
export function auditChain(env: Env, tenant: string): AuditChainApi {
  return env.AUDIT_CHAIN.get(env.AUDIT_CHAIN.idFromName(tenant)) as unknown as AuditChainApi;
}
