/**
 * Bench Worker (scripts/bench/wrangler.bench.toml; driven by run.mjs). Not part of the product.
 *
 * It serves the kernel's real HTTP API (createApp) backed by the real AgentProcess class, and adds:
 *  - BareLoop: the floor. A Durable Object that does only what any LLM loop on this platform must:
 *    call the same LLM (the in-process ScriptedProvider, or the harness's OpenAI-compatible loopback
 *    server through the kernel's OpenAiProvider) with its accumulated messages and INSERT the answer,
 *    driven by its alarm with the kernel's slice size (SLICE_STEPS) and `setAlarm(Date.now())`
 *    between slices, exactly like the kernel's scheduling.
 *  - Kernel variants, subclasses of AgentProcess (src/ is not modified), reached through the same
 *    API under /variant/<name>/v1/…: `count` (counts every SQLite statement, transaction, alarm
 *    call, D1 statement and audit-chain append), and `tune`, which switches off or caches one part
 *    of the kernel's work at a time (flags in the spawn request's name, e.g.
 *    "bench:nodeliver,noaudit"), to price each part. `tune` patches ProcessStore/ProcessRuntime
 *    methods on their prototypes when its first object is built, gated per object (other objects
 *    only pay a property lookup per patched call).
 *  - /bench/* routes: setup (D1 schema), bare (run a BareLoop to completion), bare-spawn (spawn
 *    floor; ?schema=1 also creates the kernel's tables), count (processes in a state), counters
 *    (a `count` process's counters), route-counters (D1 work of the routes for `count` requests),
 *    d1-size, tune-status, spawn-inside (spawns issued by the Worker itself).
 */
import { DurableObject } from 'cloudflare:workers';
import { AgentProcess } from '../../durable/agent-process.ts';
import { createApp } from '../../src/api/app.ts';
import { IMAGES } from '../../src/kernel/images.ts';
import { syscallTools } from '../../src/kernel/syscalls.ts';
import { type Script, ScriptedProvider } from '../../src/llm/scripted.ts';
import { OpenAiProvider } from '../../src/llm/openai.ts';
import type { ChatMessage, LlmProvider, LlmRequest } from '../../src/llm/types.ts';
import { ProcessRuntime } from '../../src/process/runtime.ts';
import { SLICE_STEPS } from '../../src/process/step.ts';
import { type EventRow, ProcessStore } from '../../src/process/store.ts';
import { applySchema } from './schema.ts';

export { AgentProcess };
export { AuditChain } from '../../durable/audit-chain.ts';

interface BenchEnv extends Env {
  readonly BARE_LOOP: DurableObjectNamespace<BareLoop>;
  readonly KP_TUNE: DurableObjectNamespace;
  readonly KP_COUNT: DurableObjectNamespace;
}

// --- the workload, shared by the kernel and the floor ------------------------------------------

/** N turns: N-1 cheap syscalls, then exit. The same script run.mjs sends to the kernel. */
export function benchScript(steps: number): Script {
  const turns: Script = [];
  for (let i = 0; i < steps - 1; i++) turns.push({ tool_calls: [{ name: 'fs_list', args: { path: '/' } }] });
  turns.push({ tool_calls: [{ name: 'exit', args: { code: 0 } }] });
  return turns;
}

// --- the floor ----------------------------------------------------------------------------------

interface BareRun {
  readonly steps: number;
  readonly slice: number;
  readonly provider: LlmProvider;
  readonly messages: ChatMessage[];
  readonly startedAt: number;
  done: number;
  readonly finished: Promise<{ steps: number; ms_inside: number }>;
  readonly resolve: (r: { steps: number; ms_inside: number }) => void;
}

/** What a tool result looks like in the kernel's context for fs_list on an empty root (src/kernel/context.ts renderResult). */
const FS_LIST_RESULT = JSON.stringify({ ok: true, value: { path: '/', entries: [] } });

export class BareLoop extends DurableObject<BenchEnv> {
  #run: BareRun | null = null;

  constructor(ctx: DurableObjectState, env: BenchEnv) {
    super(ctx, env);
    ctx.storage.sql.exec('CREATE TABLE IF NOT EXISTS answers (step INTEGER PRIMARY KEY, text TEXT NOT NULL, tool_calls TEXT NOT NULL, at INTEGER NOT NULL)');
  }

  /**
   * Arm the loop. With `baseUrl`, the LLM is the harness's OpenAI-compatible loopback server reached
   * through the kernel's own adapter (OpenAiProvider, configured as createProvider does for a
   * process with that base_url); without, the in-process ScriptedProvider.
   */
  async start(steps: number, baseUrl: string | null, slice: number = SLICE_STEPS): Promise<void> {
    const provider = baseUrl ? new OpenAiProvider({ apiKey: 'none', baseURL: baseUrl, timeoutMs: 120_000, maxOutputTokens: 4096 }) : new ScriptedProvider(benchScript(steps));
    let resolve!: BareRun['resolve'];
    const finished = new Promise<{ steps: number; ms_inside: number }>((r) => (resolve = r));
    this.#run = { steps, slice, provider, messages: [{ role: 'user', content: `bench steps=${steps}` }], startedAt: Date.now(), done: 0, finished, resolve };
    await this.ctx.storage.setAlarm(Date.now());
  }

  /** Resolves when the loop has run all its iterations. */
  async waitDone(): Promise<{ steps: number; ms_inside: number }> {
    if (!this.#run) throw new Error('not started');
    return this.#run.finished;
  }

  /**
   * The spawn floor: a fresh object that writes one row (and, with `schema`, creates the kernel's
   * tables first; with `listed` too, also writes its process-table row in D1 and awaits it, the
   * one round trip a spawn needs for `ps` to list it when it answers).
   */
  async touch(schema = false, listed = false): Promise<{ ok: true }> {
    if (schema) new ProcessStore(this.ctx.storage);
    const now = Date.now();
    this.ctx.storage.sql.exec('INSERT INTO answers (step, text, tool_calls, at) VALUES (0, ?, ?, ?)', 'spawned', '[]', now);
    if (listed) {
      await this.env.DB.prepare('INSERT INTO processes (pid, tenant, ppid, name, image, state, priority, exit_code, created_at, updated_at, version) VALUES (?, ?, NULL, ?, ?, ?, 50, NULL, ?, ?, 1)')
        .bind(`floor-${this.ctx.id.toString()}`, 'bench-floor', 'floor', 'default', 'ready', now, now)
        .run();
    }
    return { ok: true };
  }

  override async alarm(): Promise<void> {
    const run = this.#run;
    if (!run) return;
    const image = IMAGES.default!;
    for (let i = 0; i < run.slice && run.done < run.steps; i++) {
      const request: LlmRequest = { model: 'bench', system: image.system_prompt, messages: run.messages, tools: syscallTools(), tool_mode: 'native' };
      const response = await run.provider.complete(request);
      run.done++;
      this.ctx.storage.sql.exec('INSERT INTO answers (step, text, tool_calls, at) VALUES (?, ?, ?, ?)', run.done, response.text, JSON.stringify(response.tool_calls), Date.now());
      // Grow the prompt as the kernel's context does: the assistant turn and one tool result per call.
      run.messages.push({ role: 'assistant', content: response.text, tool_calls: response.tool_calls });
      for (const c of response.tool_calls) run.messages.push({ role: 'tool', tool_call_id: c.id, name: c.name, content: FS_LIST_RESULT });
    }
    if (run.done < run.steps) await this.ctx.storage.setAlarm(Date.now());
    else run.resolve({ steps: run.done, ms_inside: Date.now() - run.startedAt });
  }
}

// --- kernel variants ----------------------------------------------------------------------------

/**
 * Flags of a `tune` process, parsed from its name ("bench:nodeliver,noaudit"):
 *  nodeliver outbox delivery is a no-op: D1 batches and audit-chain appends resolve at once
 *            (outbox rows are still written and deleted)
 *  nooutbox  nothing is queued for delivery (no outbox rows, no audit records, no D1, no audit chain)
 *  noaudit   no audit records are kept (the process-table mirror is still written)
 *  noevents  events are broadcast to live streams but not stored
 *  nostep    the process's alarm runs do nothing: a spawn burst of these prices the spawn alone,
 *            without the first step that otherwise runs as soon as the spawn commits
 */
interface Tune {
  nodeliver: boolean;
  nooutbox: boolean;
  noaudit: boolean;
  noevents: boolean;
  nostep: boolean;
  eventSeq: number;
}

const TUNE = Symbol('bench.tune');
const tuneOf = (sql: SqlStorage): Tune | undefined => (sql as unknown as { [TUNE]?: Tune })[TUNE];

/** Kernel methods `tune` could not find (renamed in src/): its flags that use them have no effect; reported by /bench/tune-status. */
const missingPatches: string[] = [];

/** Replace a prototype method with a wrapper that may divert calls for `tune` objects. */
function patch<P extends object, K extends keyof P>(proto: P, name: K, wrap: (original: P[K]) => P[K]): void {
  if (typeof proto[name] !== 'function') missingPatches.push(String(name));
  else proto[name] = wrap(proto[name]);
}

/**
 * Install the `tune` diversions, once, when the first TunableAgentProcess is built; until then the
 * kernel's classes are untouched (run.mjs measures the headline arms before any `tune` process exists).
 */
let patched = false;
function patchKernelOnce(): void {
  if (patched) return;
  patched = true;
  type Store = ProcessStore;
  const S = ProcessStore.prototype;
  patch(S, 'appendEvent', (orig) => function (this: Store, at: number, type: string, data: unknown): EventRow {
    const t = tuneOf(this.sql);
    if (!t?.noevents) return orig.call(this, at, type, data);
    return { seq: ++t.eventSeq, at, type, data };
  });
  const R = ProcessRuntime.prototype;
  patch(R, 'send', (orig) => function (this: ProcessRuntime, message) {
    if (tuneOf(this.store.sql)?.nooutbox) return;
    orig.call(this, message);
  });
  patch(R, 'audit', (orig) => function (this: ProcessRuntime, ...args) {
    const t = tuneOf(this.store.sql);
    if (t?.nooutbox || t?.noaudit) return;
    orig.apply(this, args);
  });
}

/** A D1 stand-in that accepts everything and does nothing. */
function noopD1(): D1Database {
  const result = { success: true, results: [], meta: {} };
  const stmt = { bind: () => stmt, run: async () => result, all: async () => result, first: async () => null, raw: async () => [] };
  return { prepare: () => stmt, batch: async (s: unknown[]) => s.map(() => result), exec: async () => ({ count: 0, duration: 0 }) } as unknown as D1Database;
}

/** An audit-chain namespace whose appends succeed at once without running. */
function noopAuditChain(real: DurableObjectNamespace): DurableObjectNamespace {
  const stub = { append: async (_tenant: string, records: unknown[]) => ({ appended: records.length }), verify: async () => ({ ok: true }) };
  return { idFromName: (n: string) => real.idFromName(n), get: () => stub } as unknown as DurableObjectNamespace;
}

/** `real` or `fake`, chosen at each property access by `useFake()`. */
function switchable<T extends object>(real: T, fake: T, useFake: () => boolean): T {
  return new Proxy(real, {
    get(_, prop) {
      const target = useFake() ? fake : real;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** Alarm runs completed by `tune` objects in this isolate (run.mjs waits on it for spawned processes to park). */
let tuneAlarmsDone = 0;

export class TunableAgentProcess extends AgentProcess {
  #tune!: Tune;

  override async alarm(): Promise<void> {
    if (!this.#tune.nostep) await super.alarm();
    tuneAlarmsDone++;
  }

  constructor(ctx: DurableObjectState, env: Env) {
    patchKernelOnce();
    const tune: Tune = { nodeliver: false, nooutbox: false, noaudit: false, noevents: false, nostep: false, eventSeq: 1_000_000 };
    (ctx.storage.sql as unknown as { [TUNE]: Tune })[TUNE] = tune;
    const off = () => tune.nodeliver;
    super(ctx, { ...env, DB: switchable(env.DB, noopD1(), off), AUDIT_CHAIN: switchable(env.AUDIT_CHAIN, noopAuditChain(env.AUDIT_CHAIN) as Env['AUDIT_CHAIN'], off) });
    this.#tune = tune;
  }

  override async spawn(spec: Parameters<AgentProcess['spawn']>[0]): ReturnType<AgentProcess['spawn']> {
    const flags = /^bench:(.*)$/.exec(spec.name)?.[1]?.split(',') ?? [];
    for (const f of flags) if (typeof (this.#tune as unknown as Record<string, unknown>)[f] === 'boolean') (this.#tune as unknown as Record<string, boolean>)[f] = true;
    return super.spawn(spec);
  }
}

export interface Counters {
  /** SQLite statements by "VERB table". */
  sql: Record<string, number>;
  /** Characters of string parameters bound to writes (rows serialized as JSON). */
  write_chars: number;
  /** Rows returned to the kernel by SELECT/RETURNING, and the characters of their string columns (JSON it then parses). */
  rows_read: number;
  read_chars: number;
  /** Rows SQLite itself read (cursor.rowsRead, summed over every statement: what the platform bills), and wrote. */
  rows_scanned: number;
  rows_written: number;
  transactions: number;
  alarm_ops: Record<string, number>;
  alarms: number;
  d1_batches: number;
  d1_statements: number;
  /** Rows D1 read and wrote for these statements (its result's meta: what D1 bills), and its size in bytes after the last one. */
  d1_rows_read: number;
  d1_rows_written: number;
  d1_size_after: number | null;
  /** RPCs to the tenant's AuditChain object, and the records they carried. */
  audit_appends: number;
  audit_records: number;
  /** Wall time inside this object's spawn and alarm handlers (Date.now at entry and exit: it includes awaited I/O and misses the CPU after the last I/O). */
  active_ms: number;
  /** The object's SQLite database size in bytes when the counters were read (what storage billing charges). */
  database_size: number;
}

/** Fresh counters (everything zero). */
function newCounters(): Counters {
  return { sql: {}, write_chars: 0, rows_read: 0, read_chars: 0, rows_scanned: 0, rows_written: 0, transactions: 0, alarm_ops: {}, alarms: 0, d1_batches: 0, d1_statements: 0, d1_rows_read: 0, d1_rows_written: 0, d1_size_after: null, audit_appends: 0, audit_records: 0, active_ms: 0, database_size: 0 };
}

function statementKey(sql: string): string {
  const s = sql.trim();
  const verb = s.split(/\s+/, 1)[0]!.toUpperCase();
  if (verb === 'CREATE') return `CREATE ${/\b(?:TABLE|INDEX)\s+(?:IF NOT EXISTS\s+)?(\w+)/i.exec(s)?.[1] ?? '(schema)'}`;
  const table = verb === 'UPDATE' ? /^UPDATE\s+(\w+)/i.exec(s)?.[1] : /\b(?:FROM|INTO)\s+(\w+)/i.exec(s)?.[1];
  return `${verb} ${table ?? '?'}`;
}

function countRows(rows: Record<string, SqlStorageValue>[], c: Counters): void {
  c.rows_read += rows.length;
  for (const row of rows) for (const v of Object.values(row)) if (typeof v === 'string') c.read_chars += v.length;
}

/** The kernel reads cursors with toArray() and one(); count what they return. */
function countingCursor<T extends Record<string, SqlStorageValue>>(cursor: SqlStorageCursor<T>, c: Counters): SqlStorageCursor<T> {
  return new Proxy(cursor, {
    get(t, prop) {
      if (prop === 'toArray') return () => { const rows = t.toArray(); countRows(rows, c); return rows; };
      if (prop === 'one') return () => { const row = t.one(); countRows([row], c); return row; };
      const v = Reflect.get(t, prop, t) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

/**
 * Count storage.sql.exec, transactionSync and alarm calls of one object. The runtime only accepts a
 * real DurableObjectState, so the object's own storage instances are patched (this object only).
 */
type Cursors = SqlStorageCursor<Record<string, SqlStorageValue>>[];

/**
 * Counters per object, kept across its instances: workerd evicts an idle object (a parked process)
 * and the next call builds a new instance, which goes on counting where the last one stopped.
 */
const countersById = new Map<string, { c: Counters; cursors: Cursors }>();
function countersOf(id: string): { c: Counters; cursors: Cursors } {
  let r = countersById.get(id);
  if (!r) {
    const c = newCounters();
    const cursors: Cursors = [];
    // rowsRead/rowsWritten grow as a cursor is consumed: sum them when the counters are read.
    Object.defineProperty(c, 'rows_scanned', { enumerable: true, get: () => cursors.reduce((n, k) => n + k.rowsRead, 0) });
    Object.defineProperty(c, 'rows_written', { enumerable: true, get: () => cursors.reduce((n, k) => n + k.rowsWritten, 0) });
    r = { c, cursors };
    countersById.set(id, r);
  }
  return r;
}

function instrumentStorage(ctx: DurableObjectState, c: Counters, cursors: Cursors): void {
  const storage = ctx.storage;
  const sql = storage.sql;
  if (ctx.storage !== storage || storage.sql !== sql) throw new Error('storage objects are not stable; cannot instrument');
  const exec = sql.exec.bind(sql);
  Object.defineProperty(sql, 'exec', {
    value: (query: string, ...params: SqlStorageValue[]) => {
      const key = statementKey(query);
      c.sql[key] = (c.sql[key] ?? 0) + 1;
      if (!key.startsWith('SELECT')) for (const p of params) if (typeof p === 'string') c.write_chars += p.length;
      const cursor = exec(query, ...params);
      cursors.push(cursor);
      return countingCursor(cursor, c);
    },
  });
  const transactionSync = storage.transactionSync.bind(storage);
  Object.defineProperty(storage, 'transactionSync', {
    value: <T>(fn: () => T): T => {
      c.transactions++;
      return transactionSync(fn);
    },
  });
  for (const name of ['getAlarm', 'setAlarm', 'deleteAlarm'] as const) {
    const original = (storage[name] as (...a: unknown[]) => unknown).bind(storage);
    Object.defineProperty(storage, name, {
      value: (...a: unknown[]) => {
        c.alarm_ops[name] = (c.alarm_ops[name] ?? 0) + 1;
        return original(...a);
      },
    });
  }
}

type D1Counts = Pick<Counters, 'd1_batches' | 'd1_statements' | 'd1_rows_read' | 'd1_rows_written' | 'd1_size_after'>;

/**
 * Count D1 statements prepared (however they are then run) and batches, and the rows D1 read and
 * wrote for them (each result's meta). Statements are wrapped so their results are seen; `first()`
 * runs as `all()` and takes the first row (D1's first() does not add a LIMIT, so D1 reads the same
 * rows either way); a batch is given the real statements back.
 */
function countingD1(db: D1Database, c: D1Counts): D1Database {
  const real = new WeakMap<object, D1PreparedStatement>();
  const seen = (meta: D1Meta | undefined): void => {
    c.d1_rows_read += meta?.rows_read ?? 0;
    c.d1_rows_written += meta?.rows_written ?? 0;
    if (typeof meta?.size_after === 'number') c.d1_size_after = meta.size_after;
  };
  const wrap = (st: D1PreparedStatement): D1PreparedStatement => {
    const proxy = new Proxy(st, {
      get(t, prop) {
        if (prop === 'bind') return (...values: unknown[]) => wrap(t.bind(...values));
        if (prop === 'run' || prop === 'all') return async () => { const r = await t.all(); seen(r.meta); return r; };
        if (prop === 'first') {
          return async (column?: string) => {
            const r = await t.all<Record<string, unknown>>();
            seen(r.meta);
            const row = r.results[0] ?? null;
            return column === undefined || row === null ? row : (row[column] ?? null);
          };
        }
        const v = Reflect.get(t, prop, t) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
    real.set(proxy, st);
    return proxy;
  };
  return new Proxy(db, {
    get(t, prop) {
      if (prop === 'prepare') {
        return (query: string) => {
          c.d1_statements++;
          return wrap(t.prepare(query));
        };
      }
      if (prop === 'batch') {
        return async (stmts: D1PreparedStatement[]) => {
          c.d1_batches++;
          const results = await t.batch(stmts.map((st) => real.get(st) ?? st));
          for (const r of results) seen(r.meta);
          return results;
        };
      }
      const v = Reflect.get(t, prop, t) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

function countingAuditChain(ns: DurableObjectNamespace, c: Counters): DurableObjectNamespace {
  return new Proxy(ns, {
    get(t, prop) {
      if (prop === 'get') {
        return (id: DurableObjectId) => {
          const stub = t.get(id) as unknown as { append(tenant: string, records: unknown[]): Promise<unknown> };
          return new Proxy(stub, {
            get(s, p) {
              if (p === 'append') return (tenant: string, records: unknown[]) => { c.audit_appends++; c.audit_records += records.length; return s.append(tenant, records); };
              return Reflect.get(s, p) as unknown;
            },
          });
        };
      }
      const v = Reflect.get(t, prop, t) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

export class CountingAgentProcess extends AgentProcess {
  readonly #c: Counters;

  constructor(ctx: DurableObjectState, env: Env) {
    const { c, cursors } = countersOf(ctx.id.toString());
    instrumentStorage(ctx, c, cursors);
    super(ctx, { ...env, DB: countingD1(env.DB, c), AUDIT_CHAIN: countingAuditChain(env.AUDIT_CHAIN, c) as Env['AUDIT_CHAIN'] });
    this.#c = c;
  }

  override async alarm(): Promise<void> {
    this.#c.alarms++;
    const t0 = Date.now();
    try {
      await super.alarm();
    } finally {
      this.#c.active_ms += Date.now() - t0;
    }
  }

  override async spawn(spec: Parameters<AgentProcess['spawn']>[0]): ReturnType<AgentProcess['spawn']> {
    const t0 = Date.now();
    try {
      return await super.spawn(spec);
    } finally {
      this.#c.active_ms += Date.now() - t0;
    }
  }

  benchCounters(): Counters {
    // A plain copy (rows_scanned and rows_written are getters), with the database's size now.
    return { ...this.#c, database_size: this.ctx.storage.sql.databaseSize };
  }
}

// --- routes -------------------------------------------------------------------------------------

const app = createApp();

const VARIANTS: Readonly<Record<string, keyof BenchEnv>> = { tune: 'KP_TUNE', count: 'KP_COUNT' };

/** D1 work of the Worker's own routes (token checks, listings) for requests to the `count` variant; read and reset by /bench/route-counters. */
const routeD1: D1Counts = { d1_batches: 0, d1_statements: 0, d1_rows_read: 0, d1_rows_written: 0, d1_size_after: null };

/** The API with AGENT_PROCESS pointing at a variant class (for `count`, with the routes' D1 counted too). */
function variantEnv(env: BenchEnv, name: string): BenchEnv | null {
  const binding = VARIANTS[name];
  if (!binding) return null;
  const e: BenchEnv = { ...env, AGENT_PROCESS: env[binding] as Env['AGENT_PROCESS'] };
  return name === 'count' ? { ...e, DB: countingD1(env.DB, routeD1) } : e;
}

const int = (v: string | null, def: number): number => (v !== null && /^\d+$/.test(v) ? Number(v) : def);

async function spawnInside(env: BenchEnv, ctx: ExecutionContext, n: number, concurrency: number, body: string, authorization: string): Promise<number> {
  let next = 0;
  const t0 = Date.now();
  const lane = async () => {
    while (next < n) {
      next++;
      const r = await app.fetch(new Request('http://bench/v1/processes', { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body }), env, ctx);
      if (r.status !== 201) throw new Error(`spawn failed: ${r.status} ${await r.text()}`);
      await r.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return Date.now() - t0;
}

async function bench(request: Request, env: BenchEnv, ctx: ExecutionContext, url: URL): Promise<Response> {
  const q = url.searchParams;
  switch (url.pathname) {
    case '/bench/setup': {
      // The body: the project's migrations/*.sql, concatenated in order by run.mjs.
      return applySchema(env.DB, request);
    }
    case '/bench/bare': {
      const stub = env.BARE_LOOP.get(env.BARE_LOOP.newUniqueId());
      await stub.start(int(q.get('steps'), 200), q.get('llm'), int(q.get('slice'), SLICE_STEPS));
      return Response.json(await stub.waitDone());
    }
    case '/bench/bare-spawn': {
      const stub = env.BARE_LOOP.get(env.BARE_LOOP.newUniqueId());
      return Response.json(await stub.touch(q.get('schema') === '1', q.get('listed') === '1'), { status: 201 });
    }
    case '/bench/count': {
      // Processes in a state, from the process table (run.mjs waits for spawned processes to park).
      const row = await env.DB.prepare('SELECT COUNT(*) AS n FROM processes WHERE state = ?').bind(q.get('state') ?? 'sleeping').first<{ n: number }>();
      return Response.json({ n: row?.n ?? 0 });
    }
    case '/bench/route-counters': {
      // The routes' D1 counts for `count` requests since the last reset (?reset=1 starts again).
      const out = { ...routeD1 };
      if (q.get('reset') === '1') Object.assign(routeD1, { d1_batches: 0, d1_statements: 0, d1_rows_read: 0, d1_rows_written: 0, d1_size_after: null });
      return Response.json(out);
    }
    case '/bench/d1-size': {
      // D1's size in bytes now (a statement's meta.size_after): run.mjs takes the difference over a counted run.
      const r = await env.DB.prepare('SELECT 1').run();
      return Response.json({ size: r.meta.size_after ?? null });
    }
    case '/bench/tune-status':
      return Response.json({ patched, missing: missingPatches, alarms_done: tuneAlarmsDone });
    case '/bench/counters': {
      const ns = env.KP_COUNT;
      const stub = ns.get(ns.idFromName(q.get('pid') ?? '')) as unknown as { benchCounters(): Promise<Counters> };
      return Response.json(await stub.benchCounters());
    }
    case '/bench/spawn-inside': {
      const e = q.get('variant') ? variantEnv(env, q.get('variant')!) : env;
      if (!e) return Response.json({ error: 'unknown variant' }, { status: 400 });
      const n = int(q.get('n'), 1000);
      const ms = await spawnInside(e, ctx, n, int(q.get('c'), 32), await request.text(), request.headers.get('authorization') ?? '');
      return Response.json({ n, ms });
    }
  }
  return Response.json({ error: `no bench route ${url.pathname}` }, { status: 404 });
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname.startsWith('/bench/')) return bench(request, env, ctx, url);
    const m = /^\/variant\/([a-z0-9]+)(\/.*)$/.exec(url.pathname);
    if (m) {
      const e = variantEnv(env, m[1]!);
      if (!e) return Response.json({ error: `unknown variant ${m[1]}` }, { status: 404 });
      url.pathname = m[2]!;
      return app.fetch(new Request(url, request), e, ctx);
    }
    return app.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<BenchEnv>;
