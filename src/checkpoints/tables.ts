/**
 * What a checkpoint copies: every table of the process's SQLite storage, enumerated from
 * sqlite_master at checkpoint time, each under an explicit policy. A table that exists but has no
 * policy is still copied (as `rollback`): a checkpoint never silently forgets state, and
 * test/checkpoints.test.ts fails until the new table is classified here.
 *
 * Policies:
 *  - `rollback`: copied; restore replaces the live rows with the checkpoint's; a fork gets them.
 *  - `live`: copied (inspect, diff), but the rows record facts outside the process's own mind (its
 *    children exist, deliveries are owed, sequence numbers were used), so restore keeps the live
 *    rows and a fork starts without them.
 *  - `skip`: not copied. Append-only records that are never rolled back (events: the checkpoint
 *    keeps their cursor), caches that rebuild themselves, and the checkpoint index itself.
 *
 * Meta keys are classified the same way (the key/value bag holds both kinds): the keys in
 * LIVE_META and the approval keys are kept from the live process, everything else rolls back.
 */

export type TablePolicy = 'rollback' | 'live' | 'skip';

export const TABLE_POLICY: Readonly<Record<string, TablePolicy>> = {
  // The PCB: restored with the forward-only rules of ./policy.ts (version, usage, capabilities).
  pcb: 'rollback',
  meta: 'rollback',
  timers: 'rollback',
  pages: 'rollback',
  steps: 'rollback',
  journal: 'rollback',
  files: 'rollback',
  file_chunks: 'rollback',
  tools: 'rollback',
  tool_code: 'rollback',
  // Messages: rolled back, but arrivals newer than the checkpoint are kept queued (./service.ts).
  mailbox: 'rollback',
  // Recorded LLM calls: the trace follows the process's timeline.
  llm_trace: 'rollback',
  // The trace a replaying process answers from: its input, never rolled back, not passed to a fork.
  replay_steps: 'live',
  // Approvals are decided by the live timeline only (./service.ts settles the restored journal against them).
  approvals: 'live',
  // Children are real processes; restore must not forget them, a fork must not duplicate them.
  children: 'live',
  // Deliveries the live timeline owes (audit records, messages, notices): never re-sent, never dropped.
  outbox: 'live',
  // IPC sequence numbers: rolling them back would make receivers drop new messages as duplicates.
  ipc_in: 'live',
  ipc_out: 'live',
  ipc_held: 'live',
  ipc_skipped: 'live',
  // Append-only: the event log is never rolled back; the manifest records its cursor.
  events: 'skip',
  // The storage's schema version (src/process/schema.ts): the live code's, never a checkpoint's.
  schema_version: 'skip',
  // A cache of embeddings, rebuilt on demand.
  mem_embedding_cache: 'skip',
  // The checkpoint index and its chunk reference counts.
  ckpt_index: 'skip',
  ckpt_chunks: 'skip',
  ckpt_config: 'skip',
};

/** SQLite's and the platform's own tables: never copied, never classified. */
export const isInternalTable = (name: string): boolean => name.startsWith('sqlite_') || name.startsWith('_cf_');

/** A table's policy; unknown tables roll back (copied, so nothing is lost) until classified. */
export const policyOf = (table: string): TablePolicy => TABLE_POLICY[table] ?? 'rollback';

/**
 * Meta keys that record facts of the live timeline and survive a restore unchanged (and do not
 * pass to a fork): the audit sequence (audit ids are never reused), the process-table flag, fault
 * counters, the spawn key and lineage (the process's identity), init's mark, a pending SIGTERM
 * (a restore never cancels one), a pipeline's exit notice, and the LLM scheduler's ticket state.
 */
export const LIVE_META: ReadonlySet<string> = new Set([
  'audit_seq',
  'table_dirty',
  'faults',
  'last_fault',
  'spawn_key',
  'lineage',
  'init',
  // A pipeline waiting for this process's exit: a fork must not notify it, a restore must not lose it.
  'exit_notify',
  'term_pending',
  'sched_ticket',
  'sched_seq',
  'sched_woken',
  'sched_last',
  'ckpt_auto',
  'ckpt_auto_last',
  'ckpt_sigstop_pending',
  'ckpt_requested',
]);

/** Approval state is decided by the live timeline only (./policy.ts). */
export const isApprovalMeta = (key: string): boolean => key.startsWith('approval:') || key.startsWith('approval_index:');

/** Whether a meta key is copied into a checkpoint and rolled back by a restore. */
export const metaRollsBack = (key: string): boolean => !LIVE_META.has(key) && !isApprovalMeta(key);

/** The tables of a process's storage, in a stable order. */
export function listTables(sql: SqlStorage): string[] {
  return sql
    .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    .toArray()
    .map((r) => r.name)
    .filter((n) => !isInternalTable(n));
}
