/**
 * Everything a process has, described once: every table of an AgentProcess's SQLite storage, what
 * it holds, which module writes it, and whether it exists from spawn or is created on first use.
 * A checkpoint copies exactly the tables listed here under their `checkpoint` policy
 * (src/checkpoints/snapshot.ts reads this list, not sqlite_master), so nothing a process holds can
 * be forgotten by it; a new table is added here, with its policy, or it does not exist
 * (test/checkpoints.test.ts fails on a table in storage that is not listed).
 *
 * The history of this description is `PROCESS_MIGRATIONS`, applied by src/storage/migrations.ts.
 * Version 1 is the schema every object opened by the kernel at 6401ad9 already has (that code added
 * the `pages.batch` and `pages.chunks` columns on every start), so existing objects adopt it as is.
 * A new object skips the history (`PROCESS_FRESH`): its eager tables are created at the latest
 * shape in one step, which must be what the whole history makes (test/schema.test.ts compares them);
 * storage at version 0 that has tables (from before versioning) is migrated, never created.
 *
 * Lazy tables (mailbox, IPC sequencing, JIT tools) are created by their module on first use from
 * the DDL here, always at the latest shape: a migration that changes one must handle its absence.
 */
import type { FreshSchema, Migration } from '../storage/migrations.ts';

/**
 * What a checkpoint does with a table (src/checkpoints/tables.ts explains the policies):
 *  - `rollback`: copied; restore replaces the live rows with the checkpoint's; a fork gets them.
 *  - `live`: copied (inspect, diff), but the rows record facts outside the process's own mind, so
 *    restore keeps the live rows and a fork starts without them.
 *  - `skip`: not copied (append-only records never rolled back, caches, the checkpoint index).
 */
export type CheckpointPolicy = 'rollback' | 'live' | 'skip';

export interface TableSpec {
  readonly name: string;
  readonly checkpoint: CheckpointPolicy;
  /** The module that writes it. */
  readonly owner: 'store' | 'fs' | 'mailbox' | 'tools' | 'memory' | 'checkpoints';
  readonly holds: string;
  /** CREATE TABLE (and its indexes), idempotent. */
  readonly ddl: readonly string[];
  /** Created on first use rather than at spawn (most processes never need it). */
  readonly lazy: boolean;
  /** The migration that added it (absent: the baseline, version 1). */
  readonly since?: number;
}

export const PROCESS_TABLES: readonly TableSpec[] = [
  { name: 'pcb', checkpoint: 'rollback', owner: 'store', lazy: false, holds: 'the process control block, one row (src/kernel/pcb.ts)', ddl: ['CREATE TABLE IF NOT EXISTS pcb (id INTEGER PRIMARY KEY CHECK (id = 1), data TEXT NOT NULL)'] },
  { name: 'meta', checkpoint: 'rollback', owner: 'store', lazy: false, holds: 'per-process settings and counters by key, every key described with the type of its value in ./meta.ts', ddl: ['CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)'] },
  { name: 'timers', checkpoint: 'rollback', owner: 'store', lazy: false, holds: 'one row per purpose (run, wake, wait_timeout, outbox, fault, term); the alarm points at the earliest', ddl: ['CREATE TABLE IF NOT EXISTS timers (kind TEXT PRIMARY KEY, fire_at INTEGER NOT NULL)'] },
  {
    name: 'events',
    checkpoint: 'skip',
    owner: 'store',
    lazy: false,
    holds: 'the event log served by /events: one row per commit, holding its events numbered seq … last (a JSON array of {at, type, data})',
    ddl: ['CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, last INTEGER NOT NULL, data TEXT NOT NULL)'],
  },
  {
    name: 'pages',
    checkpoint: 'rollback',
    owner: 'store',
    lazy: false,
    holds: 'context pages (task, assistant turns, results, recalls) with their pager metadata; numbered by the store, changed by seq (the store keeps the page table in memory, so no index by step is needed)',
    ddl: [
      `CREATE TABLE IF NOT EXISTS pages (
  seq INTEGER PRIMARY KEY, step INTEGER NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL,
  tokens INTEGER NOT NULL DEFAULT 0, importance REAL NOT NULL DEFAULT 0.5, pinned INTEGER NOT NULL DEFAULT 0, resident INTEGER NOT NULL DEFAULT 1,
  access_count INTEGER NOT NULL DEFAULT 0, last_access INTEGER NOT NULL DEFAULT 0, excerpt TEXT NOT NULL DEFAULT '', batch INTEGER NOT NULL DEFAULT 0,
  chunks INTEGER)`,
    ],
  },
  {
    name: 'steps',
    checkpoint: 'rollback',
    owner: 'store',
    lazy: false,
    holds: "the journal: one row per LLM answer, with the record of the LLM call that gave it (`trace`: request digests and new inputs, the response; src/checkpoints/trace.ts) and, when the step's commit changed only the PCB's counters, those counters (`pcb`: usage, version, updated_at), which the pcb row then lacks (./store.ts)",
    ddl: ['CREATE TABLE IF NOT EXISTS steps (step INTEGER PRIMARY KEY, status TEXT NOT NULL, text TEXT NOT NULL, created_at INTEGER NOT NULL, trace TEXT, pcb TEXT)'],
  },
  {
    name: 'journal',
    checkpoint: 'rollback',
    owner: 'store',
    lazy: false,
    holds: 'the journal: one row per syscall an answer asked for (pending → started → blocked → done); kept in the order of its key (WITHOUT ROWID), so an entry is one row written, not a row and an index entry',
    ddl: [
      `CREATE TABLE IF NOT EXISTS journal (
  step INTEGER NOT NULL, idx INTEGER NOT NULL, call_id TEXT NOT NULL, name TEXT NOT NULL, args TEXT NOT NULL,
  status TEXT NOT NULL, result TEXT, attempts INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (step, idx)) WITHOUT ROWID`,
    ],
  },
  { name: 'children', checkpoint: 'live', owner: 'store', lazy: false, holds: 'spawned children and their exit status (live → exited → reaped)', ddl: ['CREATE TABLE IF NOT EXISTS children (pid TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, exit TEXT, spawn_key TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL)'] },
  {
    name: 'audit_log',
    checkpoint: 'skip',
    owner: 'store',
    lazy: false,
    since: 4,
    holds: "the process's own audit records, numbered by its hash chain (src/audit/audit.ts): one row per commit, holding its records seq … last (a JSON array); append-only like the event log (a row is kept once D1 has it: deleting it would be one more row written per commit), and those past the chain's head (meta audit_head) are owed to D1; not copied by a checkpoint (it grows with the whole run, is never rolled back, and a fork has its own chain)",
    ddl: ['CREATE TABLE IF NOT EXISTS audit_log (seq INTEGER PRIMARY KEY, last INTEGER NOT NULL, records TEXT NOT NULL)'],
  },
  { name: 'outbox', checkpoint: 'live', owner: 'store', lazy: false, holds: 'effects on D1 and other objects, committed with their cause, to be delivered', ddl: ['CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0)'] },
  {
    name: 'approvals',
    checkpoint: 'live',
    owner: 'store',
    lazy: true,
    holds: 'human approvals this process asked for, one per journal entry (pending → approved | denied | expired)',
    ddl: ['CREATE TABLE IF NOT EXISTS approvals (id TEXT PRIMARY KEY, step INTEGER NOT NULL, idx INTEGER NOT NULL, needed TEXT NOT NULL, status TEXT NOT NULL, UNIQUE (step, idx))'],
  },
  { name: 'files', checkpoint: 'rollback', owner: 'fs', lazy: false, holds: 'the filesystem: one row per file', ddl: ['CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, chunks INTEGER NOT NULL, updated_at INTEGER NOT NULL)'] },
  { name: 'file_chunks', checkpoint: 'rollback', owner: 'fs', lazy: false, holds: "files' contents in chunks under the 2 MB row limit", ddl: ['CREATE TABLE IF NOT EXISTS file_chunks (path TEXT NOT NULL, idx INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (path, idx))'] },
  {
    name: 'mailbox',
    checkpoint: 'rollback',
    owner: 'mailbox',
    lazy: true,
    holds: 'received messages (queued → received)',
    ddl: [
      `CREATE TABLE IF NOT EXISTS mailbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, sender TEXT NOT NULL, topic TEXT, correlation_id TEXT, reply_to TEXT,
  body TEXT NOT NULL, bytes INTEGER NOT NULL, sent_at INTEGER NOT NULL, arrived_at INTEGER NOT NULL,
  status TEXT NOT NULL, received_at INTEGER, late INTEGER NOT NULL DEFAULT 0)`,
      'CREATE INDEX IF NOT EXISTS mailbox_by_status ON mailbox (status, seq)',
    ],
  },
  { name: 'ipc_in', checkpoint: 'live', owner: 'mailbox', lazy: true, holds: 'per sender channel: the next sequence number expected', ddl: ['CREATE TABLE IF NOT EXISTS ipc_in (channel TEXT PRIMARY KEY, next INTEGER NOT NULL)'] },
  { name: 'ipc_held', checkpoint: 'live', owner: 'mailbox', lazy: true, holds: 'messages that arrived ahead of their turn', ddl: ['CREATE TABLE IF NOT EXISTS ipc_held (channel TEXT NOT NULL, seq INTEGER NOT NULL, message TEXT NOT NULL, held_at INTEGER NOT NULL, PRIMARY KEY (channel, seq))'] },
  { name: 'ipc_skipped', checkpoint: 'live', owner: 'mailbox', lazy: true, holds: 'sequence numbers given up on (dead-lettered)', ddl: ['CREATE TABLE IF NOT EXISTS ipc_skipped (channel TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (channel, seq))'] },
  { name: 'ipc_out', checkpoint: 'live', owner: 'mailbox', lazy: true, holds: 'per recipient: the next sequence number to send', ddl: ['CREATE TABLE IF NOT EXISTS ipc_out (recipient TEXT PRIMARY KEY, next INTEGER NOT NULL)'] },
  { name: 'tool_code', checkpoint: 'rollback', owner: 'tools', lazy: true, holds: "JIT tools' source and compiled JavaScript, by hash", ddl: ['CREATE TABLE IF NOT EXISTS tool_code (hash TEXT PRIMARY KEY, source TEXT NOT NULL, js TEXT NOT NULL)'] },
  { name: 'tools', checkpoint: 'rollback', owner: 'tools', lazy: true, holds: 'registered JIT tools by name', ddl: ['CREATE TABLE IF NOT EXISTS tools (name TEXT PRIMARY KEY, description TEXT NOT NULL, parameters TEXT NOT NULL, hash TEXT NOT NULL, version INTEGER NOT NULL, origin TEXT NOT NULL, updated_at INTEGER NOT NULL)'] },
  { name: 'mem_embedding_cache', checkpoint: 'skip', owner: 'memory', lazy: true, holds: 'a cache of embeddings (recomputable; a checkpoint may skip its rows)', ddl: ['CREATE TABLE IF NOT EXISTS mem_embedding_cache (key TEXT PRIMARY KEY, vec BLOB NOT NULL, at INTEGER NOT NULL)'] },
  { name: 'llm_trace', checkpoint: 'rollback', owner: 'checkpoints', lazy: true, holds: 'LLM calls recorded before version 6, by step (since then each is in its step row, steps.trace); written by no code now, read by src/checkpoints/trace.ts, and present only in objects that recorded calls then or restored a checkpoint made then', ddl: ['CREATE TABLE IF NOT EXISTS llm_trace (step INTEGER PRIMARY KEY, at INTEGER NOT NULL, latency_ms INTEGER NOT NULL, request TEXT NOT NULL, response TEXT NOT NULL)'] },
  { name: 'replay_steps', checkpoint: 'live', owner: 'checkpoints', lazy: true, holds: 'the trace a replaying process answers from', ddl: ['CREATE TABLE IF NOT EXISTS replay_steps (step INTEGER PRIMARY KEY, request TEXT NOT NULL, response TEXT NOT NULL)'] },
  { name: 'ckpt_index', checkpoint: 'skip', owner: 'checkpoints', lazy: true, holds: "the process's checkpoints (src/checkpoints/store.ts)", ddl: ['CREATE TABLE IF NOT EXISTS ckpt_index (id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, label TEXT, reason TEXT NOT NULL, step INTEGER NOT NULL, state TEXT NOT NULL, created_at INTEGER NOT NULL, raw_bytes INTEGER NOT NULL, stored_bytes INTEGER NOT NULL, new_bytes INTEGER NOT NULL, digest TEXT NOT NULL)'] },
  { name: 'ckpt_pieces', checkpoint: 'skip', owner: 'checkpoints', lazy: true, holds: 'every piece (row chunk or blob) in a stored pack, by SHA-256: the pack, its place there, how many checkpoints reference it', ddl: ['CREATE TABLE IF NOT EXISTS ckpt_pieces (hash TEXT PRIMARY KEY, pack TEXT NOT NULL, idx INTEGER NOT NULL, kind TEXT NOT NULL, raw INTEGER NOT NULL, refs INTEGER NOT NULL)', 'CREATE UNIQUE INDEX IF NOT EXISTS ckpt_pieces_at ON ckpt_pieces (pack, idx)'] },
  { name: 'ckpt_packs', checkpoint: 'skip', owner: 'checkpoints', lazy: true, holds: 'checkpoint packs in R2: sizes and how many checkpoints reference each (deleted at none)', ddl: ['CREATE TABLE IF NOT EXISTS ckpt_packs (sha TEXT PRIMARY KEY, raw INTEGER NOT NULL, stored INTEGER NOT NULL, refs INTEGER NOT NULL)'] },
];

/** The DDL of some tables, in the order `PROCESS_TABLES` lists them. */
export function tableDdl(names: readonly string[]): string {
  return PROCESS_TABLES.filter((t) => names.includes(t.name))
    .flatMap((t) => t.ddl)
    .join(';\n');
}

/** Tables created at spawn. */
export const EAGER_TABLES: readonly string[] = PROCESS_TABLES.filter((t) => !t.lazy).map((t) => t.name);

/** Tables a module creates on first use. */
export function lazyTables(owner: TableSpec['owner']): readonly string[] {
  return PROCESS_TABLES.filter((t) => t.lazy && t.owner === owner).map((t) => t.name);
}

export const PROCESS_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'baseline: the tables created at spawn, as of 6401ad9 (pages with batch and chunks)',
    up: (sql) => {
      const later = Object.keys(V1_DDL);
      sql.exec([...Object.values(V1_DDL), tableDdl(PROCESS_TABLES.filter((t) => !t.lazy && t.since === undefined && !later.includes(t.name)).map((t) => t.name))].join(';\n'));
    },
  },
  {
    version: 2,
    description: 'approvals move from two meta entries per request (approval:<step>.<idx>, approval_index:<id>) to their own table',
    up: (sql) => {
      const rows = sql.exec<{ key: string; value: string }>("SELECT key, value FROM meta WHERE key LIKE 'approval:%'").toArray();
      if (rows.length > 0) sql.exec(tableDdl(['approvals']));
      for (const { key, value } of rows) {
        const [step, idx] = key.slice('approval:'.length).split('.').map(Number);
        const v = JSON.parse(value) as { id: string; status: string; needed?: string };
        sql.exec('INSERT OR IGNORE INTO approvals (id, step, idx, needed, status) VALUES (?, ?, ?, ?, ?)', v.id, step ?? 0, idx ?? 0, v.needed ?? '', v.status);
      }
      sql.exec("DELETE FROM meta WHERE key LIKE 'approval:%' OR key LIKE 'approval_index:%'");
    },
  },
  {
    version: 3,
    description: 'checkpoints are stored as packs (src/checkpoints/store.ts): the per-chunk reference counts of format 1 go',
    up: (sql) => sql.exec('DROP TABLE IF EXISTS ckpt_chunks'),
  },
  {
    version: 4,
    description: "audit records move from the outbox (one row each, sent to the tenant's chain) to the process's own chain: audit_log",
    up: (sql) => {
      sql.exec(V4_AUDIT_LOG);
      // Records still owed from before: into the log under the numbers they already have (their ids).
      const owed = sql.exec<{ id: number; payload: string }>("SELECT id, payload FROM outbox WHERE kind = 'audit' ORDER BY id").toArray();
      for (const { id, payload } of owed) {
        const record = (JSON.parse(payload) as { record: { id: string } }).record;
        const n = Number(record.id.slice(record.id.lastIndexOf(':') + 1));
        if (Number.isSafeInteger(n) && n > 0) sql.exec('INSERT OR IGNORE INTO audit_log (seq, record) VALUES (?, ?)', n, JSON.stringify(record));
        sql.exec('DELETE FROM outbox WHERE id = ?', id);
      }
    },
  },
  {
    version: 5,
    description:
      'fewer rows written per step: events and audit records are kept one row per commit; pages and events lose AUTOINCREMENT (the store numbers them) and pages lose their index by step',
    up: (sql) => {
      sql.exec(`${tableDdl(['events']).replace('events (', 'events_v5 (')};
INSERT INTO events_v5 (seq, last, data) SELECT seq, seq, json_array(json_object('at', at, 'type', type, 'data', json(data))) FROM events;
DROP TABLE events; ALTER TABLE events_v5 RENAME TO events`);
      sql.exec(`${tableDdl(['pages']).replace('pages (', 'pages_v5 (')};
INSERT INTO pages_v5 SELECT seq, step, kind, body, created_at, tokens, importance, pinned, resident, access_count, last_access, excerpt, batch, chunks FROM pages;
DROP TABLE pages; ALTER TABLE pages_v5 RENAME TO pages`);
      sql.exec(`${tableDdl(['audit_log']).replace('audit_log (', 'audit_log_v5 (')};
INSERT INTO audit_log_v5 (seq, last, records) SELECT seq, seq, json_array(json(record)) FROM audit_log;
DROP TABLE audit_log; ALTER TABLE audit_log_v5 RENAME TO audit_log`);
    },
  },
  {
    version: 6,
    description:
      "the record of each LLM call moves into its step's row (steps.trace), and so do the PCB's counters when a step changed nothing else (steps.pcb); the journal is kept by its key (WITHOUT ROWID): three rows and two statements fewer per step; llm_trace keeps the calls recorded before",
    up: (sql) => {
      sql.exec('ALTER TABLE steps ADD COLUMN trace TEXT; ALTER TABLE steps ADD COLUMN pcb TEXT');
      sql.exec(`${tableDdl(['journal']).replace('journal (', 'journal_v6 (')};
INSERT INTO journal_v6 (step, idx, call_id, name, args, status, result, attempts) SELECT step, idx, call_id, name, args, status, result, attempts FROM journal;
DROP TABLE journal; ALTER TABLE journal_v6 RENAME TO journal`);
    },
  },
];

/** A new object is created at the latest version directly: the eager tables as described above. */
export function createProcessSchema(sql: SqlStorage): void {
  sql.exec(tableDdl(EAGER_TABLES));
}

/**
 * How a new process object is born (src/storage/migrations.ts `open`): storage without any table
 * the history ever had (ckpt_chunks too, dropped by version 3) gets createProcessSchema; any other
 * is migrated along PROCESS_MIGRATIONS, version 0 included (an object from before versioning).
 */
export const PROCESS_FRESH: FreshSchema = { tables: [...PROCESS_TABLES.map((t) => t.name), 'ckpt_chunks'], up: createProcessSchema };

/** The DDL version 1 created for tables whose shape changed later (history does not change with the description). */
const V1_DDL = {
  journal: `CREATE TABLE IF NOT EXISTS journal (
  step INTEGER NOT NULL, idx INTEGER NOT NULL, call_id TEXT NOT NULL, name TEXT NOT NULL, args TEXT NOT NULL,
  status TEXT NOT NULL, result TEXT, attempts INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (step, idx))`,
  steps: 'CREATE TABLE IF NOT EXISTS steps (step INTEGER PRIMARY KEY, status TEXT NOT NULL, text TEXT NOT NULL, created_at INTEGER NOT NULL)',
  events: 'CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL)',
  pages: `CREATE TABLE IF NOT EXISTS pages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, step INTEGER NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL,
  tokens INTEGER NOT NULL DEFAULT 0, importance REAL NOT NULL DEFAULT 0.5, pinned INTEGER NOT NULL DEFAULT 0, resident INTEGER NOT NULL DEFAULT 1,
  access_count INTEGER NOT NULL DEFAULT 0, last_access INTEGER NOT NULL DEFAULT 0, excerpt TEXT NOT NULL DEFAULT '', batch INTEGER NOT NULL DEFAULT 0,
  chunks INTEGER);
CREATE INDEX IF NOT EXISTS pages_by_step ON pages (step)`,
} as const;

/** audit_log as version 4 created it. */
const V4_AUDIT_LOG = 'CREATE TABLE IF NOT EXISTS audit_log (seq INTEGER PRIMARY KEY, record TEXT NOT NULL)';
