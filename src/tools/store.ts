/**
 * A process's tool table, in its own SQLite storage. Code is content-addressed: `tool_code` holds
 * each compiled module once, keyed by the hash of the compiler version and the source, and `tools`
 * maps a name to a hash with its description and JSON Schema. Registering the same source under
 * two names stores it once; re-registering a name replaces its row (the version counts up).
 */
import { lazyTables, tableDdl } from '../process/schema.ts';

export interface ToolRow {
  readonly name: string;
  readonly description: string;
  readonly parameters: Record<string, unknown>;
  readonly hash: string;
  readonly version: number;
  /** Where it came from: "register", "builtin" or "image:<name>@<version>". */
  readonly origin: string;
  readonly updated_at: number;
}

export interface ToolCode {
  readonly hash: string;
  readonly source: string;
  readonly js: string;
}

/** A tool with its source: what is published into an image. */
export interface ToolDefinition {
  readonly name: string;
  readonly description: string;
  readonly parameters: Record<string, unknown>;
  readonly source: string;
}

/** The tool tables, created on first use (src/process/schema.ts). */
const SCHEMA = tableDdl(lazyTables('tools'));

type Row = { name: string; description: string; parameters: string; hash: string; version: number; origin: string; updated_at: number };

/**
 * Most processes never register a tool, so the tables are created by the first write, not at spawn.
 * This object is its storage's only writer, so the tool list is kept in memory once read: the step
 * loop asks for it every step and it changes only here.
 */
export class ToolStore {
  readonly #sql: SqlStorage;
  /** Whether the tables exist (undefined: not looked yet). */
  #present: boolean | undefined;
  /** Every tool, by name order (undefined: not read yet). */
  #list: ToolRow[] | undefined;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  /**
   * The tables, created if they are not there yet (for writes, which are rare). What reads know is
   * forgotten, since the write's transaction may still roll the creation back.
   */
  #db(): SqlStorage {
    this.#sql.exec(SCHEMA);
    this.#present = undefined;
    this.#list = undefined;
    return this.#sql;
  }

  /** The tables for reading, or null if none was ever written. */
  #readable(): SqlStorage | null {
    this.#present ??= this.#sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tools'").toArray().length > 0;
    return this.#present ? this.#sql : null;
  }

  /** The process's storage was released. */
  reset(): void {
    this.#present = undefined;
    this.#list = undefined;
  }

  list(): ToolRow[] {
    this.#list ??=
      this.#readable()
        ?.exec<Row>('SELECT name, description, parameters, hash, version, origin, updated_at FROM tools ORDER BY name')
        .toArray()
        .map((r) => ({ ...r, parameters: JSON.parse(r.parameters) as Record<string, unknown> })) ?? [];
    return this.#list;
  }

  get(name: string): ToolRow | null {
    return this.list().find((t) => t.name === name) ?? null;
  }

  code(hash: string): ToolCode | null {
    return this.#readable()?.exec<{ hash: string; source: string; js: string }>('SELECT hash, source, js FROM tool_code WHERE hash = ?', hash).toArray()[0] ?? null;
  }

  hasCode(hash: string): boolean {
    return (this.#readable()?.exec('SELECT 1 FROM tool_code WHERE hash = ?', hash).toArray().length ?? 0) > 0;
  }

  /** Store code (once per hash) and point `name` at it. Returns the name's new version. */
  put(def: Omit<ToolRow, 'version' | 'updated_at'>, code: ToolCode, now: number): number {
    const db = this.#db();
    db.exec('INSERT OR IGNORE INTO tool_code (hash, source, js) VALUES (?, ?, ?)', code.hash, code.source, code.js);
    const prev = this.get(def.name);
    const version = (prev?.version ?? 0) + 1;
    db.exec(
      'INSERT OR REPLACE INTO tools (name, description, parameters, hash, version, origin, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      def.name,
      def.description,
      JSON.stringify(def.parameters),
      def.hash,
      version,
      def.origin,
      now,
    );
    this.#list = undefined;
    this.#present = undefined;
    return version;
  }

  /** Every tool with its source, for publishing. */
  definitions(): ToolDefinition[] {
    return this.list().map((t) => ({ name: t.name, description: t.description, parameters: t.parameters, source: this.code(t.hash)?.source ?? '' }));
  }

  count(): number {
    return this.list().length;
  }
}
