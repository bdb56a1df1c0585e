/**
 * What a checkpoint copies: exactly the tables of the process-state description
 * (`PROCESS_TABLES` in src/process/schema.ts), each under the policy declared there. The copy is
 * driven by that one list, not by what sqlite_master holds, so a table cannot be copied by accident
 * or forgotten: a table a module creates must be described there (with its policy) or
 * test/checkpoints.test.ts and test/schema.test.ts fail.
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
import { type CheckpointPolicy, PROCESS_TABLES, type TableSpec } from '../process/schema.ts';

export type TablePolicy = CheckpointPolicy;

/** Every described table's policy, plus the migration runner's own version table (never a checkpoint's). */
export const TABLE_POLICY: Readonly<Record<string, TablePolicy>> = {
  ...Object.fromEntries(PROCESS_TABLES.map((t) => [t.name, t.checkpoint])),
  schema_version: 'skip',
};

/** The tables a checkpoint copies, in the description's order. */
export const COPIED_TABLES: readonly TableSpec[] = PROCESS_TABLES.filter((t) => t.checkpoint !== 'skip');

/** SQLite's, the platform's and the local simulator's own tables: never copied, never classified. */
export const isInternalTable = (name: string): boolean => name.startsWith('sqlite_') || name.startsWith('_cf_') || name.startsWith('__miniflare');

/** A table's policy; a table the description does not list (one an old checkpoint has and the code dropped) is skipped. */
export const policyOf = (table: string): TablePolicy => TABLE_POLICY[table] ?? 'skip';

/** The CREATE statements of a described table (a fork's fresh object creates its lazy tables from these). */
export const ddlOf = (table: string): readonly string[] => PROCESS_TABLES.find((t) => t.name === table)?.ddl ?? [];

/**
 * Meta keys that record facts of the live timeline and survive a restore unchanged (and do not
 * pass to a fork): the audit sequence (audit ids are never reused), the process-table flag, fault
 * counters, the spawn key and lineage (the process's identity), init's mark, a pending SIGTERM
 * (a restore never cancels one), a pipeline's exit notice, and the LLM scheduler's ticket state.
 */
export const LIVE_META: ReadonlySet<string> = new Set([
  'audit_seq',
  'audit_head',
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

/** Timers the live timeline owns: the outbox's retry and a pending SIGTERM's deadline. A restore keeps the live ones; a checkpoint's are never loaded. */
export const LIVE_TIMERS: readonly string[] = ['outbox', 'term'];

/** Approval state is decided by the live timeline only (./policy.ts). */
export const isApprovalMeta = (key: string): boolean => key.startsWith('approval:') || key.startsWith('approval_index:');

/** Whether a meta key is copied into a checkpoint and rolled back by a restore. */
export const metaRollsBack = (key: string): boolean => !LIVE_META.has(key) && !isApprovalMeta(key);
