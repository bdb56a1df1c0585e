/**
 * Reading a consistent snapshot of a process's storage and writing one back.
 *
 * `readSnapshot` is synchronous: a Durable Object runs one turn at a time and SQLite reads are
 * synchronous, so everything it returns belongs to one instant, however long the upload that
 * follows takes. `writeTables` runs inside the caller's transaction: a restore or a fork applies
 * every table or none.
 */
import { type SqlValue, chunkTable, type Piece, sha256Hex } from './chunks.ts';
import { COPIED_TABLES, type TablePolicy, ddlOf, metaRollsBack } from './tables.ts';

export interface TableSnapshot {
  readonly name: string;
  readonly policy: TablePolicy;
  readonly columns: readonly string[];
  /** Whether rowid is its own column (no INTEGER PRIMARY KEY alias): restored explicitly. */
  readonly explicit_rowid: boolean;
  /** Rows: rowid first (null for a table kept by its key, WITHOUT ROWID), then the columns. */
  readonly rows: readonly (readonly [number | null, ...SqlValue[]])[];
}

export interface Snapshot {
  readonly tables: readonly TableSnapshot[];
  /** The newest event seq at snapshot time (events are never copied or rolled back). */
  readonly events_cursor: number;
}

const quote = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/** A table kept by its primary key (WITHOUT ROWID, per the process-state description): it has no rowid to copy. */
const withoutRowid = (table: string): boolean => ddlOf(table).some((d) => /\bWITHOUT ROWID\s*$/i.test(d));

function rowidAlias(sql: SqlStorage, table: string): boolean {
  const cols = sql.exec<{ name: string; type: string; pk: number }>(`PRAGMA table_info(${quote(table)})`).toArray();
  const pk = cols.filter((c) => c.pk > 0);
  return pk.length === 1 && (pk[0]?.type ?? '').toUpperCase() === 'INTEGER';
}

/**
 * Every table the process-state description says a checkpoint copies (src/process/schema.ts), as
 * it is now; a lazy table its module has not created yet is left out (it has no rows).
 */
export function readSnapshot(sql: SqlStorage): Snapshot {
  const present = new Set(sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'").toArray().map((r) => r.name));
  const tables: TableSnapshot[] = [];
  for (const spec of COPIED_TABLES) {
    const name = spec.name;
    if (!present.has(name)) continue;
    const keyed = withoutRowid(name);
    const cursor = sql.exec(keyed ? `SELECT NULL AS __rowid, * FROM ${quote(name)}` : `SELECT rowid AS __rowid, * FROM ${quote(name)} ORDER BY rowid`);
    const columns = cursor.columnNames.slice(1);
    let rows = [...cursor.raw()] as unknown as [number | null, ...SqlValue[]][];
    if (name === 'meta') rows = rows.filter((r) => metaRollsBack(String(r[1])));
    tables.push({ name, policy: spec.checkpoint, columns, explicit_rowid: !keyed && !rowidAlias(sql, name), rows });
  }
  const events = sql.exec<{ seq: number | null }>('SELECT MAX(last) AS seq FROM events').one().seq ?? 0;
  return { tables, events_cursor: events };
}

/** Chunk every table of a snapshot. */
export async function chunkSnapshot(snap: Snapshot): Promise<{ pieces: Map<string, Piece>; tables: { name: string; chunks: string[] }[] }> {
  const pieces = new Map<string, Piece>();
  const tables: { name: string; chunks: string[] }[] = [];
  for (const t of snap.tables) tables.push({ name: t.name, chunks: await chunkTable(t.rows, pieces) });
  return { pieces, tables };
}

/** PCB fields a restore changes on purpose (forward-only): left out of the state digest. */
const VOLATILE_PCB = ['version', 'updated_at', 'usage'];

/**
 * The digest of what a process acts on: every rolled-back table's rows in order, the PCB without
 * its version, update time and usage counters. Equal digests mean equal state.
 */
export async function stateDigest(tables: readonly { name: string; policy: TablePolicy; columns: readonly string[]; rows: readonly (readonly SqlValue[])[] }[], withRowid = true): Promise<string> {
  const parts: string[] = [];
  for (const t of [...tables].sort((a, b) => a.name.localeCompare(b.name))) {
    if (t.policy !== 'rollback' || t.rows.length === 0) continue;
    const rows = t.rows.map((r) => (withRowid ? r.slice(1) : r).map((v) => (v instanceof ArrayBuffer ? [...new Uint8Array(v)].join(',') : v)));
    if (t.name === 'pcb') {
      const i = t.columns.indexOf('data');
      for (const r of rows) {
        const pcb = JSON.parse(String(r[i])) as Record<string, unknown>;
        for (const k of VOLATILE_PCB) delete pcb[k];
        r[i] = JSON.stringify(pcb);
      }
    }
    parts.push(JSON.stringify([t.name, t.columns, rows]));
  }
  return sha256Hex(new TextEncoder().encode(parts.join('\n')));
}

export interface TableRows {
  readonly name: string;
  readonly columns: readonly string[];
  readonly explicit_rowid: boolean;
  readonly rows: readonly (readonly SqlValue[])[];
}

/**
 * Replace the rows of `tables` with the given ones (rowid first in each row), creating missing
 * tables from the process-state description (the live code's shape). Only columns both sides know are written: a column added since the checkpoint keeps
 * its default, one dropped since is ignored. `keep(table)` names rows to leave in place (a SQL
 * condition): the live meta keys, newer mailbox arrivals.
 */
export function writeTables(sql: SqlStorage, tables: readonly TableRows[], keep: (table: string) => { where: string; params: SqlValue[] } | null): void {
  for (const t of tables) {
    for (const ddl of ddlOf(t.name)) sql.exec(ddl);
    const live = new Set(sql.exec(`SELECT * FROM ${quote(t.name)} LIMIT 0`).columnNames);
    const cols = t.columns.map((c, i) => ({ c, i })).filter(({ c }) => live.has(c));
    const kept = keep(t.name);
    if (kept) sql.exec(`DELETE FROM ${quote(t.name)} WHERE NOT (${kept.where})`, ...kept.params);
    else sql.exec(`DELETE FROM ${quote(t.name)}`);
    // A checkpoint's rowids are written back only where the live table has them (the journal had
    // them before schema 6; it is kept by its key since).
    const rowid = t.explicit_rowid && !withoutRowid(t.name);
    const names = [...(rowid ? ['rowid'] : []), ...cols.map(({ c }) => quote(c))];
    const insert = `INSERT INTO ${quote(t.name)} (${names.join(', ')}) VALUES (${names.map(() => '?').join(', ')})`;
    for (const row of t.rows) {
      const values = cols.map(({ i }) => row[i + 1] ?? null);
      if (rowid) sql.exec(insert, row[0] ?? null, ...values);
      else sql.exec(insert, ...values);
    }
  }
}
