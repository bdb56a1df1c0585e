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
 * How a kind of object is born: its latest shape made at once (`up`), which must be exactly what
 * running every migration from 1 makes (test/schema.test.ts compares the two), and every table the
 * schema may hold (`tables`), so that "storage with none of it yet" is a check, not a guess.
 */
export interface FreshSchema {
  readonly tables: readonly string[];
  readonly up: (sql: SqlStorage) => void;
}

/** Where `open` left storage: its version, and whether it was created just now (every table new and empty). */
export interface Opened {
  readonly version: number;
  readonly created: boolean;
}

/**
 * Bring storage up to the last migration's version. Returns the version reached. Throws if the
 * list is not strictly increasing from 1, or if the storage is at a version this code does not know
 * (written by a newer deployment: running older code over it would corrupt it).
 *
 * `fresh`, if given, creates the latest schema at once in storage that has none of it: a new
 * object is born at the latest version instead of replaying the history meant for old ones.
 */
export function migrate(storage: DurableObjectStorage, migrations: readonly Migration[], fresh?: FreshSchema): number {
  return open(storage, migrations, fresh).version;
}

/**
 * `migrate`, saying whether the storage was created just now. Version 0 alone does not mean new:
 * an object from before versioning has tables and no version, and is migrated along the history
 * (its data needs the history's moves); only storage without any table of the schema is created.
 */
export function open(storage: DurableObjectStorage, migrations: readonly Migration[], fresh?: FreshSchema): Opened {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration ${i} has version ${m.version}; versions must run 1, 2, 3 …`);
  });
  const latest = migrations.length;
  return storage.transactionSync(() => {
    const sql = storage.sql;
    // One look-up says which of three storages this is: versioned (read the version), tables
    // without a version (from before versioning: version 0, migrated), or none of it (new).
    const found = present(sql, fresh?.tables ?? []);
    const at = found === VERSION ? versionOf(sql) : 0;
    if (at > latest) throw new Error(`storage is at schema version ${at}, newer than this code's ${latest}`);
    if (at === latest) return { version: at, created: false };
    const created = found === null && fresh !== undefined;
    if (created) {
      fresh.up(sql);
      // `latest` is a list's length, an integer: the version row goes in the same statement list as its table.
      sql.exec(`${VERSION_TABLE};\nINSERT INTO schema_version (id, version) VALUES (1, ${latest})`);
      return { version: latest, created };
    }
    if (found !== VERSION) sql.exec(VERSION_TABLE);
    for (const m of migrations.slice(at)) m.up(sql);
    sql.exec('INSERT INTO schema_version (id, version) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET version = excluded.version', latest);
    return { version: latest, created };
  });
}

const VERSION = 'schema_version';

function versionOf(sql: SqlStorage): number {
  return sql.exec<{ version: number }>('SELECT version FROM schema_version WHERE id = 1').toArray()[0]?.version ?? 0;
}

/** `schema_version` if storage has it, else the name of one of `names` it has, else null. */
function present(sql: SqlStorage, names: readonly string[]): string | null {
  const all = [VERSION, ...names];
  const row = sql.exec<{ name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (${all.map(() => '?').join(', ')}) ORDER BY name = ? DESC LIMIT 1`, ...all, VERSION).toArray()[0];
  return row?.name ?? null;
}
