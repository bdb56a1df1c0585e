/**
 * The process's state is described once (src/process/schema.ts), and storage holds nothing else:
 * what a checkpoint copies is everything a process has. Migrations are versioned and atomic.
 */
import { env, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { META_KEYS } from '../src/process/meta.ts';
import { EAGER_TABLES, PROCESS_FRESH, PROCESS_MIGRATIONS, PROCESS_TABLES, tableDdl } from '../src/process/schema.ts';
import { ProcessStore } from '../src/process/store.ts';
import { type Migration, migrate, open, schemaVersion } from '../src/storage/migrations.ts';
import { api, runUntil, spawn, stubOf } from './support/helpers.ts';

/** Tables SQLite or the migration runner keep for themselves: not process state. */
const BOOKKEEPING = new Set(['sqlite_sequence', 'schema_version']);

async function tablesOf(pid: string): Promise<string[]> {
  return runInDurableObject(stubOf(pid), (_instance, state) =>
    state.storage.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf_%' ORDER BY name")
      .toArray()
      .map((r) => r.name),
  );
}

describe('the process schema', () => {
  it('a new process has exactly the eager tables, at the latest version; every table it ever creates is described', async () => {
    const { pid } = await spawn({
      name: 'schema',
      task: 't',
      image: 'default',
      model: { provider: 'scripted', model: 'scripted' },
      capabilities: ['fs:/**:rw', 'ipc:send:*'],
      script: [
        { tool_calls: [{ name: 'fs_write', args: { path: 'a.txt', content: 'A' } }] },
        { tool_calls: [{ name: 'exit', args: { code: 0 } }] },
      ],
    });
    expect((await tablesOf(pid)).filter((t) => !BOOKKEEPING.has(t)).sort()).toEqual([...EAGER_TABLES].sort());
    const version = await runInDurableObject(stubOf(pid), (_i, state) => schemaVersion(state.storage.sql));
    expect(version).toBe(PROCESS_MIGRATIONS.length);

    // A message makes the mailbox create its (lazy) tables: they are described too.
    expect((await api('POST', `/v1/processes/${pid}/messages`, { body: { hello: 1 } })).status).toBe(202);
    await runUntil(pid, ['terminated']);
    const described = new Set(PROCESS_TABLES.map((t) => t.name));
    const tables = (await tablesOf(pid)).filter((t) => !BOOKKEEPING.has(t));
    expect(tables).toContain('mailbox');
    expect(tables.filter((t) => !described.has(t))).toEqual([]);
    // So is every key of its meta table (src/process/meta.ts).
    const keys = await runInDurableObject(stubOf(pid), (_i, state) => state.storage.sql.exec<{ key: string }>('SELECT key FROM meta').toArray().map((r) => r.key));
    expect(keys.length).toBeGreaterThan(3);
    const named = new Set(META_KEYS.map((k) => k.name));
    expect(keys.filter((k) => !named.has(k))).toEqual([]);
  });

  it('the platform refuses PRAGMA user_version, which is why the version lives in a table', async () => {
    const stub = env.AGENT_PROCESS.get(env.AGENT_PROCESS.idFromName(`pragma-${crypto.randomUUID()}`));
    const refused = await runInDurableObject(stub, (_i, state) => {
      try {
        state.storage.sql.exec('PRAGMA user_version');
        return null;
      } catch (e) {
        return String(e);
      }
    });
    // If this starts failing, the platform allows the pragma: the migration runner could use it.
    expect(refused).toMatch(/SQLITE_AUTH|not authorized/);
  });
});

describe('migrate', () => {
  // An AuditChain object keeps its head in key/value storage and has no tables of its own: a clean slate.
  const stub = () => env.AUDIT_CHAIN.get(env.AUDIT_CHAIN.idFromName(`migrate-${crypto.randomUUID()}`));
  const step = (version: number, sql: string): Migration => ({ version, description: sql, up: (s) => s.exec(sql) });

  it('applies each migration once, in order, and records the version', async () => {
    const out = await runInDurableObject(stub(), (_i, state) => {
      const list = [step(1, 'CREATE TABLE t1 (a INTEGER)'), step(2, 'ALTER TABLE t1 ADD COLUMN b TEXT')];
      const first = migrate(state.storage, list.slice(0, 1));
      const second = migrate(state.storage, list);
      const again = migrate(state.storage, list);
      const cols = state.storage.sql.exec<{ name: string }>("SELECT name FROM pragma_table_info('t1')").toArray().map((r) => r.name);
      return { first, second, again, cols };
    });
    expect(out).toEqual({ first: 1, second: 2, again: 2, cols: ['a', 'b'] });
  });

  it('rolls a failing migration back whole, version included', async () => {
    const out = await runInDurableObject(stub(), (_i, state) => {
      migrate(state.storage, [step(1, 'CREATE TABLE t1 (a INTEGER)')]);
      let error = '';
      try {
        migrate(state.storage, [step(1, 'CREATE TABLE t1 (a INTEGER)'), step(2, 'CREATE TABLE t2 (x INTEGER)'), step(3, 'THIS IS NOT SQL')]);
      } catch (e) {
        error = String(e);
      }
      const t2 = state.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 't2'").toArray().length;
      return { error: error.length > 0, version: schemaVersion(state.storage.sql), t2 };
    });
    expect(out).toEqual({ error: true, version: 1, t2: 0 });
  });

  it('version 2 moves approvals from two meta entries per request into their own table', async () => {
    const out = await runInDurableObject(stub(), (_i, state) => {
      const sql = state.storage.sql;
      migrate(state.storage, PROCESS_MIGRATIONS.slice(0, 1));
      // As the kernel at 6401ad9 stored a request and its index.
      sql.exec("INSERT INTO meta (key, value) VALUES ('approval:3.1', ?), ('approval_index:ap_x', '\"3.1\"'), ('image', '{}')", JSON.stringify({ id: 'ap_x', status: 'pending', needed: 'net:example.com' }));
      const version = migrate(state.storage, PROCESS_MIGRATIONS);
      return {
        version,
        approvals: sql.exec('SELECT id, step, idx, needed, status FROM approvals').toArray(),
        meta: sql.exec('SELECT key FROM meta ORDER BY key').toArray().map((r) => r.key),
      };
    });
    expect(out).toEqual({ version: PROCESS_MIGRATIONS.length, approvals: [{ id: 'ap_x', step: 3, idx: 1, needed: 'net:example.com', status: 'pending' }], meta: ['image'] });
  });

  it('version 5 keeps events and audit records one row per commit, and pages without their index, losing nothing', async () => {
    const out = await runInDurableObject(stub(), (_i, state) => {
      const sql = state.storage.sql;
      migrate(state.storage, PROCESS_MIGRATIONS.slice(0, 4));
      // As version 4 stored them: one row per event and per record, pages numbered by AUTOINCREMENT.
      sql.exec(`INSERT INTO events (at, type, data) VALUES (10, 'spawned', '{"a":1}'), (11, 'step', '{"n":2}'), (12, 'exit', 'null')`);
      sql.exec(`INSERT INTO pages (step, kind, body, created_at, tokens) VALUES (0, 'task', '{"kind":"task","text":"t"}', 1, 3), (1, 'assistant', '{"kind":"assistant","text":"a"}', 2, 4)`);
      sql.exec(`INSERT INTO audit_log (seq, record) VALUES (7, '{"id":"p:7"}'), (8, '{"id":"p:8"}')`);
      const store = new ProcessStore(state.storage);
      const indexes = sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'pages'").toArray().length;
      const events = store.events(0, 10).map((e) => [e.seq, e.at, e.type, e.data]);
      const later = store.events(1, 1).map((e) => e.seq);
      const backlog = store.deliveries.auditBacklog(10);
      const next = store.appendEvent(13, 'more', { b: 2 }).seq;
      return { version: schemaVersion(sql), indexes, events, later, backlog, next, pages: store.pages.meta().map((p) => [p.seq, p.step, p.tokens]), owed: store.deliveries.owed() };
    });
    expect(out).toEqual({
      version: PROCESS_MIGRATIONS.length,
      indexes: 0,
      events: [[1, 10, 'spawned', { a: 1 }], [2, 11, 'step', { n: 2 }], [3, 12, 'exit', null]],
      later: [2],
      backlog: [{ seq: 7, record: '{"id":"p:7"}' }, { seq: 8, record: '{"id":"p:8"}' }],
      next: 4,
      pages: [[1, 0, 3], [2, 1, 4]],
      owed: 2,
    });
  });

  it('a commit\'s events are one row, read back one by one from any cursor', async () => {
    const out = await runInDurableObject(stub(), (_i, state) => {
      const store = new ProcessStore(state.storage);
      store.transaction(() => {
        for (let i = 0; i < 5; i++) store.appendEvent(100 + i, 'e', { i });
      });
      store.appendEvent(200, 'alone', null);
      const rows = state.storage.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM events').one().n;
      return { rows, from2: store.events(2, 3).map((e) => e.seq), from4: store.events(4, 10).map((e) => [e.seq, e.type]), end: store.events(6, 10).length };
    });
    expect(out).toEqual({ rows: 2, from2: [3, 4, 5], from4: [[5, 'e'], [6, 'alone']], end: 0 });
  });

  it('creates a new object at the latest shape in one step, exactly what the whole history makes; an old object is migrated', async () => {
    // Each table's columns (name, type, constraints, default, key) and indexes: what a shape is, whatever DDL text made it.
    const shape = (sql: SqlStorage) =>
      sql
        .exec<{ type: string; name: string }>("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT IN ('schema_version', 'sqlite_sequence') AND name NOT LIKE '_cf_%' AND name NOT LIKE '__miniflare%' ORDER BY name")
        .toArray()
        .map((o) => ({
          ...o,
          columns: o.type === 'table' ? sql.exec(`SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info('${o.name}')`).toArray() : sql.exec(`SELECT name FROM pragma_index_info('${o.name}')`).toArray(),
        }));
    const created = await runInDurableObject(stub(), (_i, state) => ({ opened: open(state.storage, PROCESS_MIGRATIONS, PROCESS_FRESH), shape: shape(state.storage.sql) }));
    const migrated = await runInDurableObject(stub(), (_i, state) => {
      // Version by version from 1, as an object created at version 1 has lived through every migration since.
      for (let v = 1; v <= PROCESS_MIGRATIONS.length; v++) migrate(state.storage, PROCESS_MIGRATIONS.slice(0, v));
      return { opened: open(state.storage, PROCESS_MIGRATIONS, PROCESS_FRESH), shape: shape(state.storage.sql) };
    });
    expect(created.opened).toEqual({ version: PROCESS_MIGRATIONS.length, created: true });
    expect(migrated.opened).toEqual({ version: PROCESS_MIGRATIONS.length, created: false });
    expect(created.shape).toEqual(migrated.shape);
    expect(created.shape.filter((r) => r.type === 'table').map((r) => r.name).sort()).toEqual([...EAGER_TABLES].sort());

    // Tables without a version (the kernel before versioning): migrated along the history, never "created".
    const old = await runInDurableObject(stub(), (_i, state) => {
      const sql = state.storage.sql;
      sql.exec(tableDdl(['pcb', 'meta', 'outbox']));
      sql.exec("INSERT INTO meta (key, value) VALUES ('approval:1.0', ?)", JSON.stringify({ id: 'ap_old', status: 'denied', needed: 'net:x' }));
      return { opened: open(state.storage, PROCESS_MIGRATIONS, PROCESS_FRESH), approvals: sql.exec('SELECT id, status FROM approvals').toArray() };
    });
    expect(old).toEqual({ opened: { version: PROCESS_MIGRATIONS.length, created: false }, approvals: [{ id: 'ap_old', status: 'denied' }] });
  });

  it('refuses storage written by newer code, and a list that skips a version', async () => {
    const out = await runInDurableObject(stub(), (_i, state) => {
      migrate(state.storage, [step(1, 'CREATE TABLE t1 (a INTEGER)'), step(2, 'CREATE TABLE t2 (a INTEGER)')]);
      const errors: string[] = [];
      for (const list of [[step(1, 'SELECT 1')], [step(1, 'SELECT 1'), step(3, 'SELECT 1')]]) {
        try {
          migrate(state.storage, list);
        } catch (e) {
          errors.push((e as Error).message);
        }
      }
      return errors;
    });
    expect(out[0]).toMatch(/newer than this code's 1/);
    expect(out[1]).toMatch(/versions must run 1, 2, 3/);
  });
});
