/**
 * A process's tool table, in its own SQLite storage. Code is content-addressed: `tool_code` holds
 * each compiled module once, keyed by the hash of the compiler version and the source, and `tools`
 * maps a name to a hash with its description and JSON Schema. Registering the same source under
 * two names stores it once; re-registering a name replaces its row (the version counts up).
 */
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

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tool_code (hash TEXT PRIMARY KEY, source TEXT NOT NULL, js TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tools (name TEXT PRIMARY KEY, description TEXT NOT NULL, parameters TEXT NOT NULL, hash TEXT NOT NULL, version INTEGER NOT NULL, origin TEXT NOT NULL, updated_at INTEGER NOT NULL);
`;

type Row = { name: string; description: string; parameters: string; hash: string; version: number; origin: string; updated_at: number };

export class ToolStore {
  readonly #sql: SqlStorage;
  #ready = false;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  #db(): SqlStorage {
    if (!this.#ready) {
      this.#sql.exec(SCHEMA);
      this.#ready = true;
    }
    return this.#sql;
  }

  list(): ToolRow[] {
    return this.#db()
      .exec<Row>('SELECT name, description, parameters, hash, version, origin, updated_at FROM tools ORDER BY name')
      .toArray()
      .map((r) => ({ ...r, parameters: JSON.parse(r.parameters) as Record<string, unknown> }));
  }

  get(name: string): ToolRow | null {
    const r = this.#db().exec<Row>('SELECT name, description, parameters, hash, version, origin, updated_at FROM tools WHERE name = ?', name).toArray()[0];
    return r ? { ...r, parameters: JSON.parse(r.parameters) as Record<string, unknown> } : null;
  }

  code(hash: string): ToolCode | null {
    return this.#db().exec<{ hash: string; source: string; js: string }>('SELECT hash, source, js FROM tool_code WHERE hash = ?', hash).toArray()[0] ?? null;
  }

  hasCode(hash: string): boolean {
    return this.#db().exec('SELECT 1 FROM tool_code WHERE hash = ?', hash).toArray().length > 0;
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
    return version;
  }

  /** Every tool with its source, for publishing. */
  definitions(): ToolDefinition[] {
    return this.list().map((t) => ({ name: t.name, description: t.description, parameters: t.parameters, source: this.code(t.hash)?.source ?? '' }));
  }

  count(): number {
    return this.#db().exec<{ n: number }>('SELECT COUNT(*) AS n FROM tools').one().n;
  }
}
