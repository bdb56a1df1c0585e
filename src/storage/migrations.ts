/**
 * Versioned schema migrations for a Durable Object's SQLite storage: one ordered list per kind of
 * object, applied once, in order, inside one `transactionSync` with the version bump, so an object
 * is always at exactly one version and never half-migrated.
 *
 * The version lives in a one-row table, `schema_version`, not in `PRAGMA user_version`: the
 * platform's SQLite refuses that pragma (`SQLITE_AUTH`; test/schema.test.ts asserts it, so the day
 * it is allowed the test says so). No column is ever probed: what an object has is what its
 * version says it has.
 */

/** One step of a schema's history. `up` runs inside the migration's transaction. */
export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly up: (sql: SqlStorage) => void;
}

const VERSION_TABLE = 'CREATE TABLE IF NOT EXISTS schema_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)';

/** The version an object's storage is at (0: nothing applied yet). */
export function schemaVersion(sql: SqlStorage): number {
  sql.exec(VERSION_TABLE);
  return sql.exec<{ version: number }>('SELECT version FROM schema_version WHERE id = 1').toArray()[0]?.version ?? 0;
}

/**
 * Bring storage up to the last migration's version. Returns the version reached. Throws if the
 * list is not strictly increasing from 1, or if the storage is at a version this code does not know
 * (written by a newer deployment: running older code over it would corrupt it).
 *
 * `fresh`, if given, creates the latest schema at once in storage that has none (version 0): a new
 * object is born at the latest version instead of replaying the history meant for old ones.
 */
export function migrate(storage: DurableObjectStorage, migrations: readonly Migration[], fresh?: (sql: SqlStorage) => void): number {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration ${i} has version ${m.version}; versions must run 1, 2, 3 …`);
  });
  const latest = migrations.length;
  return storage.transactionSync(() => {
    const sql = storage.sql;
    const at = schemaVersion(sql);
    if (at > latest) throw new Error(`storage is at schema version ${at}, newer than this code's ${latest}`);
    if (at === latest) return at;
    if (at === 0 && fresh) fresh(sql);
    else for (const m of migrations.slice(at)) m.up(sql);
    sql.exec('INSERT INTO schema_version (id, version) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET version = excluded.version', latest);
    return latest;
  });
}
