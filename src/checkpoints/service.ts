/**
 * Checkpoints of one process, run inside its Durable Object: take, list, inspect, diff, delete and
 * restore, plus the automatic ones (every K steps, on SIGSTOP) with retention.
 *
 * Operations on one process's checkpoints run one at a time (a promise chain), so chunk reference
 * counts never race. A checkpoint is only taken at a step boundary: not while a slice is running
 * in this object, and not while a syscall is marked started (EAGAIN: try again when it ends).
 */
import { pageOf } from '../api/paging.ts';
import { KernelError } from '../kernel/errors.ts';
import type { Pcb } from '../kernel/pcb.ts';
import type { ProcessRuntime } from '../process/runtime.ts';
import { PACK_BYTES, type Piece, type SqlValue, blobText, decodeRows, deflate, encodePack, sha256Hex, unpackVerified } from './chunks.ts';
import { type AutoPolicy, DEFAULT_AUTO, autoDue, checkpointable, diffTables, restoredPcb, retention } from './policy.ts';
import { chunkSnapshot, readSnapshot, stateDigest, type TableRows, writeTables } from './snapshot.ts';
import { CheckpointIndex, type IndexRow, type Manifest, type ManifestTable, type NewPiece, type PieceAt, type Reason, type SchemaPiece, SchemaPieceSchema, bucketOrFail, chunkNames, manifestKey, packKey, prefixOf, readManifest } from './store.ts';
import { LIVE_META, policyOf } from './tables.ts';
import { META } from '../process/meta.ts';

/** Meta keys (live: they survive restores). */

export type CheckpointSummary = IndexRow & { readonly name: string };

/** Timers the live timeline owns: the outbox's retry and a pending SIGTERM's deadline. */
const LIVE_TIMERS = ['outbox', 'term'];

export class CheckpointService {
  readonly #rt: ProcessRuntime;
  readonly #bucket: () => R2Bucket | undefined;
  readonly index: CheckpointIndex;
  #chain: Promise<unknown> = Promise.resolve();
  #slices = 0;

  constructor(rt: ProcessRuntime, bucket: () => R2Bucket | undefined) {
    this.#rt = rt;
    this.#bucket = bucket;
    this.index = new CheckpointIndex(rt.store.sql);
  }

  /** Run a slice of the step loop, marked as such: no checkpoint or restore lands in the middle of it. */
  async slice<T>(run: () => Promise<T>): Promise<T> {
    this.#slices++;
    try {
      return await run();
    } finally {
      this.#slices--;
    }
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#chain.then(fn, fn);
    this.#chain = next.catch(() => undefined);
    return next;
  }

  #atBoundary(pcb: Pcb): void {
    const started = this.#rt.store.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM journal WHERE status = 'started'").one().n;
    const c = checkpointable(this.#slices > 0 ? { ...pcb, state: 'running' } : pcb, started);
    if (!c.ok) throw new KernelError('EAGAIN', c.why, { retry_after_ms: 1000 });
  }

  #prefix(pcb: Pcb): string {
    return prefixOf(pcb.tenant, pcb.pid);
  }

  // --- taking one ----------------------------------------------------------------------------------

  create(label: string | null, reason: Reason): Promise<CheckpointSummary> {
    return this.#serial(() => this.#create(label, reason));
  }

  async #create(label: string | null, reason: Reason): Promise<CheckpointSummary> {
    const rt = this.#rt;
    const bucket = bucketOrFail(this.#bucket());
    const pcb = rt.mustPcb();
    this.#atBoundary(pcb);
    // Synchronous from here to the end of readSnapshot: one instant of the process.
    const snap = readSnapshot(rt.store.sql);
    const seq = this.index.nextSeq();
    const id = `ck${String(seq).padStart(4, '0')}-${crypto.randomUUID().slice(0, 8)}`;
    const created_at = rt.now;
    const { pieces, tables } = await chunkSnapshot(snap);
    // The tables' shapes travel as one piece, shared by every checkpoint taken under the same schema.
    const shape: SchemaPiece = Object.fromEntries(snap.tables.map((t) => [t.name, { columns: [...t.columns], explicit_rowid: t.explicit_rowid }]));
    const shapeBytes = new TextEncoder().encode(JSON.stringify(shape));
    const shapeHash = await sha256Hex(shapeBytes);
    if (!pieces.has(shapeHash)) pieces.set(shapeHash, { hash: shapeHash, bytes: shapeBytes, kind: 'schema' });
    const digest = await stateDigest(snap.tables);
    const prefix = this.#prefix(pcb);
    // Pieces an earlier checkpoint stored are reused where they are; the rest go into new packs.
    const at = this.index.find(pieces.keys());
    const fresh = [...pieces.values()].filter((p) => !at.has(p.hash));
    const written: { sha: string; raw: number; stored: number; pieces: NewPiece[] }[] = [];
    for (let i = 0; i < fresh.length; ) {
      const group: Piece[] = [];
      let size = 0;
      while (i < fresh.length && (group.length === 0 || size + (fresh[i]?.bytes.byteLength ?? 0) <= PACK_BYTES)) {
        const p = fresh[i++] as Piece;
        group.push(p);
        size += p.bytes.byteLength;
      }
      const raw = encodePack(group.map((p) => p.bytes));
      const sha = await sha256Hex(raw);
      const body = await deflate(raw);
      await bucket.put(packKey(prefix, sha), body);
      const placed = group.map((p, idx): NewPiece => ({ hash: p.hash, kind: p.kind, raw: p.bytes.byteLength, pack: sha, idx }));
      for (const x of placed) at.set(x.hash, x);
      written.push({ sha, raw: raw.byteLength, stored: body.byteLength, pieces: placed });
    }
    // The packs this checkpoint reads, numbered in order of first use.
    const packs: Manifest['packs'] = [];
    const packNo = new Map<string, number>();
    const place = (hash: string): [number, number] => {
      const where = at.get(hash) as PieceAt;
      let n = packNo.get(where.pack);
      if (n === undefined) {
        n = packs.length;
        packNo.set(where.pack, n);
        const w = written.find((x) => x.sha === where.pack);
        const known = w ?? this.index.pack(where.pack);
        packs.push({ sha: where.pack, raw: known?.raw ?? 0, stored: known?.stored ?? 0 });
      }
      return [n, where.idx];
    };
    const manifestTables: ManifestTable[] = snap.tables.map((t, i) => {
      const runs: ManifestTable['chunks'] = [];
      for (const hash of tables[i]?.chunks ?? []) {
        const [p, idx] = place(hash);
        const last = runs.at(-1);
        if (last && last[0] === p && last[1] + last[2] === idx) last[2]++;
        else runs.push([p, idx, 1]);
      }
      return { name: t.name, policy: t.policy, rows: t.rows.length, chunks: runs };
    });
    const blobs: Manifest['blobs'] = {};
    for (const p of pieces.values()) if (p.kind === 'blob') blobs[p.hash] = place(p.hash);
    const rawBytes = [...pieces.values()].reduce((n, p) => n + p.bytes.byteLength, 0);
    const packBytes = packs.reduce((n, p) => n + p.stored, 0);
    const newBytes = written.reduce((n, p) => n + p.stored, 0);
    const manifestBase = {
      format: 2 as const,
      id,
      pid: pcb.pid,
      tenant: pcb.tenant,
      label,
      reason,
      created_at,
      step: pcb.usage.steps,
      version: pcb.version,
      state: pcb.state,
      events_cursor: snap.events_cursor,
      digest,
      packs,
      schema: place(shapeHash),
      tables: manifestTables,
      blobs,
      ...(pcb.forked_from ? { forked_from: pcb.forked_from } : {}),
    };
    const counts = { chunks: pieces.size, new_chunks: fresh.length };
    const draft = await deflate(new TextEncoder().encode(JSON.stringify({ ...manifestBase, sizes: { raw_bytes: rawBytes, stored_bytes: packBytes, new_bytes: newBytes, ...counts } })));
    // The manifest counts in what this checkpoint added (it is never shared); sizes are of the draft (±a few bytes).
    const manifestBytes = draft.byteLength;
    const manifest: Manifest = { ...manifestBase, sizes: { raw_bytes: rawBytes, stored_bytes: packBytes + manifestBytes, new_bytes: newBytes + manifestBytes, ...counts } };
    await bucket.put(manifestKey(prefix, id), await deflate(new TextEncoder().encode(JSON.stringify(manifest))), { httpMetadata: { contentType: 'application/json' } });
    const row: IndexRow = { id, seq, label, reason, step: manifest.step, state: manifest.state, created_at, raw_bytes: rawBytes, stored_bytes: manifest.sizes.stored_bytes, new_bytes: manifest.sizes.new_bytes, digest };
    rt.store.transaction(() => {
      this.index.add(row, manifest, written);
      if (reason === 'auto') rt.store.setMeta(META.ckptAutoLast, manifest.step);
      rt.emit('checkpoint', { id, label, reason, step: manifest.step, stored_bytes: row.stored_bytes, new_bytes: row.new_bytes, digest });
      rt.audit('lifecycle', 'checkpoint', 'ok', null, { id, label, reason, step: manifest.step, version: manifest.version, digest });
    });
    if (reason === 'auto' || reason === 'sigstop') await this.#retain();
    await rt.settle();
    return { ...row, name: `${pcb.pid}@${id}` };
  }

  /** Retention: keep the newest `keep` automatic checkpoints; taken-by-hand ones are never removed automatically. */
  async #retain(): Promise<void> {
    const auto = this.index.list().filter((r) => r.reason === 'auto' || r.reason === 'sigstop');
    for (const old of retention(auto, this.autoPolicy().keep)) await this.#delete(old.id);
  }

  // --- automatic checkpoints ------------------------------------------------------------------------

  autoPolicy(): AutoPolicy {
    return this.#rt.store.getMeta(META.ckptAuto) ?? DEFAULT_AUTO;
  }

  setAutoPolicy(policy: AutoPolicy): void {
    this.#rt.store.transaction(() => {
      this.#rt.store.setMeta(META.ckptAuto, policy);
      if (this.#rt.store.getMeta(META.ckptAutoLast) === undefined) this.#rt.store.setMeta(META.ckptAutoLast, this.#rt.mustPcb().usage.steps);
      this.#rt.emit('checkpoint_policy', policy);
    });
  }

  /** A SIGSTOP arrived: a checkpoint is due at the next step boundary (now, if the process is at one). */
  onSigstop(): Promise<void> {
    if (!this.autoPolicy().on_sigstop) return Promise.resolve();
    this.#rt.store.setMeta(META.ckptSigstopPending, true);
    return this.afterSlice();
  }

  /** The checkpoint syscall: taken when the current step ends (the syscall ends the slice). */
  request(label: string | null): void {
    this.#rt.store.setMeta(META.ckptRequested, { label });
  }

  /** A checkpoint by id, or the newest with that label, or (null) the newest of all. */
  resolve(ref: string | null): IndexRow {
    const all = this.index.list();
    const found = ref === null ? all.at(-1) : (all.find((r) => r.id === ref) ?? all.filter((r) => r.label === ref).at(-1));
    if (!found) throw new KernelError('ENOENT', ref === null ? 'this process has no checkpoint yet; take one with the checkpoint syscall first' : `no checkpoint with id or label "${ref.slice(0, 64)}"`);
    return found;
  }

  /** After an alarm run or a signal: take the checkpoint that is due (requested, on SIGSTOP, every K steps), if the process is at a boundary. */
  async afterSlice(): Promise<void> {
    const rt = this.#rt;
    const pcb = rt.pcb();
    if (!pcb || this.#slices > 0 || !this.#bucket()) return;
    const requested = rt.store.getMeta(META.ckptRequested);
    if (requested) {
      try {
        await this.create(requested.label, 'syscall');
        rt.store.setMeta(META.ckptRequested, null);
      } catch (e) {
        if (!(e instanceof KernelError && e.code === 'EAGAIN')) throw e;
      }
    }
    const policy = this.autoPolicy();
    const sigstop = rt.store.getMeta(META.ckptSigstopPending) === true && pcb.state === 'stopped';
    const due = autoDue(policy, pcb.usage.steps, rt.store.getMeta(META.ckptAutoLast) ?? 0) && pcb.state !== 'zombie' && pcb.state !== 'terminated';
    if (!sigstop && !due) return;
    try {
      await this.create(null, sigstop ? 'sigstop' : 'auto');
      if (sigstop) rt.store.setMeta(META.ckptSigstopPending, false);
      if (!sigstop || due) rt.store.setMeta(META.ckptAutoLast, pcb.usage.steps);
    } catch (e) {
      // Not at a boundary after all (a syscall under way): the next run tries again.
      if (!(e instanceof KernelError && e.code === 'EAGAIN')) throw e;
    }
  }

  // --- reading ---------------------------------------------------------------------------------------

  /** A page of checkpoints, oldest first, after the one numbered `after`; next_cursor is the last one's seq. */
  list(limit: number, after: number | null): { checkpoints: CheckpointSummary[]; next_cursor: string | null } {
    const pid = this.#rt.mustPcb().pid;
    const page = pageOf(this.index.page(after ?? 0, limit + 1), limit, (r) => String(r.seq));
    return { checkpoints: page.rows.map((r) => ({ ...r, name: `${pid}@${r.id}` })), next_cursor: page.next_cursor };
  }

  async manifest(id: string): Promise<Manifest> {
    const pcb = this.#rt.mustPcb();
    if (!this.index.get(id)) throw new KernelError('ENOENT', `process ${pcb.pid} has no checkpoint "${id.slice(0, 64)}"`, { checkpoint: id.slice(0, 64) });
    return readManifest(bucketOrFail(this.#bucket()), manifestKey(this.#prefix(pcb), id));
  }

  async diff(a: string, b: string): Promise<{ from: string; to: string; steps: number; same_state: boolean; tables: ReturnType<typeof diffTables>; changed_files: string[] }> {
    const [x, y] = [await this.manifest(a), await this.manifest(b)];
    const files = async (m: Manifest) => {
      const t = m.tables.find((t) => t.name === 'files');
      if (!t) return new Map<string, string>();
      const reader = new PieceReader(bucketOrFail(this.#bucket()), m);
      const rows = await reader.rows(t);
      const path = (await reader.shape(t.name)).columns.indexOf('path');
      const out = new Map<string, string>();
      for (const r of rows) out.set(String(r[path + 1]), JSON.stringify(r.slice(1)));
      return out;
    };
    const [fx, fy] = [await files(x), await files(y)];
    const changed = [...new Set([...fx.keys(), ...fy.keys()])].filter((p) => fx.get(p) !== fy.get(p)).sort();
    return { from: a, to: b, steps: y.step - x.step, same_state: x.digest === y.digest, tables: diffTables(named(x), named(y)), changed_files: changed };
  }

  delete(id: string): Promise<{ deleted: string; chunks_freed: number }> {
    return this.#serial(() => this.#delete(id));
  }

  async #delete(id: string): Promise<{ deleted: string; chunks_freed: number }> {
    const rt = this.#rt;
    const pcb = rt.mustPcb();
    const bucket = bucketOrFail(this.#bucket());
    // One that cannot be read (format 1, or damaged) can still be deleted; what it referenced goes with the process.
    let manifest: Manifest | null = null;
    try {
      manifest = await this.manifest(id);
    } catch (e) {
      if (!(e instanceof KernelError && e.code === 'EIO')) throw e;
    }
    const gone = rt.store.transaction(() => {
      const removed = this.index.remove(id, manifest);
      rt.emit('checkpoint_deleted', { id, chunks_freed: removed.freed, packs_deleted: removed.packs.length });
      rt.audit('lifecycle', 'checkpoint_delete', 'ok', null, { id });
      return removed;
    });
    const prefix = this.#prefix(pcb);
    const key = manifestKey(prefix, id);
    await bucket.delete([key, ...(manifest ? [] : [`${key}.json.gz`]), ...gone.packs.map((sha) => packKey(prefix, sha))]);
    return { deleted: id, chunks_freed: gone.freed };
  }

  /**
   * The process is being removed: every object under its prefix goes (manifests, packs, and packs
   * an interrupted checkpoint left behind). Forks are not affected: a fork copied what it needed.
   */
  purge(): Promise<number> {
    return this.#serial(async () => {
      const bucket = this.#bucket();
      const pcb = this.#rt.pcb();
      if (!bucket || !pcb) return 0;
      const prefix = `${this.#prefix(pcb)}/`;
      let removed = 0;
      let cursor: string | undefined;
      do {
        const page = await bucket.list({ prefix, ...(cursor ? { cursor } : {}) });
        if (page.objects.length > 0) await bucket.delete(page.objects.map((o) => o.key));
        removed += page.objects.length;
        cursor = page.truncated ? page.cursor : undefined;
      } while (cursor);
      return removed;
    });
  }

  // --- loading ---------------------------------------------------------------------------------------

  /** Every table of a checkpoint, loaded (before anything is written). */
  async load(m: Manifest): Promise<TableRows[]> {
    const bucket = bucketOrFail(this.#bucket());
    return loadTables(bucket, m);
  }

  // --- restore ---------------------------------------------------------------------------------------

  restore(id: string, by: string): Promise<Pcb> {
    return this.#serial(() => this.#restore(id, by));
  }

  async #restore(id: string, by: string): Promise<Pcb> {
    const rt = this.#rt;
    const before = rt.mustPcb();
    if (before.state === 'zombie' || before.state === 'terminated') {
      throw new KernelError('ESTATE', `process ${before.pid} has exited (${before.state}); fork its checkpoint instead`, { state: before.state });
    }
    const manifest = await this.manifest(id);
    const tables = (await this.load(manifest)).filter((t) => policyOf(t.name) === 'rollback');
    const pcbTable = tables.find((t) => t.name === 'pcb');
    const atCheckpoint = pcbTable ? (JSON.parse(String(pcbTable.rows[0]?.[pcbTable.columns.indexOf('data') + 1])) as Pcb) : null;
    if (!atCheckpoint) throw new KernelError('EIO', `checkpoint ${id} holds no PCB`);
    // Everything is loaded; from here on nothing awaits until the commit.
    const live = rt.mustPcb();
    this.#atBoundary(live);
    const liveDone = new Set(rt.store.sql.exec<{ k: string }>("SELECT step || '.' || idx AS k FROM journal WHERE status = 'done'").toArray().map((r) => r.k));
    const mailboxMax = maxOf(tables.find((t) => t.name === 'mailbox'), 'seq');
    rt.store.transaction(() => {
      writeTables(rt.store.sql, tables, (table) => keepLive(table, mailboxMax));
      if (tables.some((t) => t.name === 'mailbox')) rt.store.sql.exec("UPDATE mailbox SET status = 'queued', received_at = NULL WHERE seq > ?", mailboxMax);
      rt.reload();
      rt.save(restoredPcb(atCheckpoint, live, rt.now));
      settleApprovals(rt, live, liveDone, id);
      rt.emit('restored', { checkpoint: id, step: manifest.step, from_version: live.version, version: rt.mustPcb().version, by, digest: manifest.digest });
      rt.audit('lifecycle', 'restore', 'ok', null, { checkpoint: id, step: manifest.step, from_step: live.usage.steps, from_version: live.version, version: rt.mustPcb().version, by, digest: manifest.digest });
      const pcb = rt.mustPcb();
      if (pcb.state === 'ready') rt.store.setTimer('run', rt.now);
    });
    await rt.settle();
    return rt.mustPcb();
  }

  /** The digest of the process's state now (what a checkpoint taken now would record). */
  digestNow(): Promise<string> {
    return stateDigest(readSnapshot(this.#rt.store.sql).tables);
  }
}

function maxOf(t: TableRows | undefined, column: string): number {
  if (!t) return 0;
  const i = t.columns.indexOf(column);
  let max = 0;
  for (const r of t.rows) max = Math.max(max, Number(r[i + 1] ?? 0));
  return max;
}

/** The live rows a restore keeps in a rolled-back table. */
function keepLive(table: string, mailboxMax: number): { where: string; params: SqlValue[] } | null {
  switch (table) {
    case 'meta': {
      const keys = [...LIVE_META];
      return { where: `key IN (${keys.map(() => '?').join(', ')}) OR key LIKE 'approval:%' OR key LIKE 'approval_index:%'`, params: keys };
    }
    case 'timers':
      return { where: `kind IN (${LIVE_TIMERS.map(() => '?').join(', ')})`, params: LIVE_TIMERS };
    case 'mailbox':
      // Messages that arrived after the checkpoint stay (queued again: the restored process has not seen them).
      return { where: 'seq > ?', params: [mailboxMax] };
    default:
      return null;
  }
}

/** A checkpoint's tables by chunk names, for diffTables. */
const named = (m: Manifest) => m.tables.map((t) => ({ name: t.name, rows: t.rows, chunks: chunkNames(m, t) }));

/** Reads a manifest's pieces: each pack fetched, checked and unpacked once. */
class PieceReader {
  readonly #packs = new Map<number, Promise<Uint8Array[]>>();
  constructor(
    readonly bucket: R2Bucket,
    readonly m: Manifest,
  ) {}

  piece(p: number, idx: number): Promise<Uint8Array> {
    let pack = this.#packs.get(p);
    if (!pack) {
      pack = this.#load(p);
      this.#packs.set(p, pack);
    }
    return pack.then((pieces) => {
      const piece = pieces[idx];
      if (!piece) throw new KernelError('EIO', `checkpoint ${this.m.id} names piece ${idx} of a pack that has ${pieces.length}`);
      return piece;
    });
  }

  async #load(p: number): Promise<Uint8Array[]> {
    const sha = this.m.packs[p]?.sha;
    if (!sha) throw new KernelError('EIO', `checkpoint ${this.m.id} names pack ${p}, which its manifest does not list`);
    const obj = await this.bucket.get(packKey(prefixOf(this.m.tenant, this.m.pid), sha));
    if (!obj) throw new KernelError('EIO', `checkpoint ${this.m.id} is missing pack ${sha.slice(0, 12)}`, { pack: sha });
    return unpackVerified(new Uint8Array(await obj.arrayBuffer()), sha);
  }

  #schema: Promise<SchemaPiece> | undefined;

  /** A table's columns, and whether rowid is its own column. */
  async shape(table: string): Promise<SchemaPiece[string]> {
    this.#schema ??= this.piece(...this.m.schema).then((bytes) => {
      const parsed = SchemaPieceSchema.safeParse(JSON.parse(blobText(bytes)));
      if (!parsed.success) throw new KernelError('EIO', `checkpoint ${this.m.id} has a malformed schema piece`);
      return parsed.data;
    });
    const s = (await this.#schema)[table];
    if (!s) throw new KernelError('EIO', `checkpoint ${this.m.id} has no columns for table ${table}`);
    return s;
  }

  /** A table's rows (rowid first), blobs resolved. */
  async rows(t: ManifestTable): Promise<SqlValue[][]> {
    const rows: SqlValue[][] = [];
    for (const [p, first, count] of t.chunks) {
      for (let i = first; i < first + count; i++) {
        const bytes = await this.piece(p, i);
        const refs = new Map<string, string>();
        for (const match of new TextDecoder().decode(bytes).matchAll(/\{"\$ref":"([0-9a-f]{64})"\}/g)) {
          const h = match[1] ?? '';
          const at = this.m.blobs[h];
          if (!at) throw new KernelError('EIO', `checkpoint ${this.m.id} references a blob ${h.slice(0, 12)} its manifest does not place`);
          if (!refs.has(h)) refs.set(h, blobText(await this.piece(at[0], at[1])));
        }
        rows.push(...decodeRows(bytes, (h) => refs.get(h) ?? ''));
      }
    }
    return rows;
  }
}

/** Rows of every table of a manifest, in manifest order. Live timers are left out (the live ones stay). */
export async function loadTables(bucket: R2Bucket, m: Manifest): Promise<TableRows[]> {
  const reader = new PieceReader(bucket, m);
  const out: TableRows[] = [];
  for (const t of m.tables) {
    let rows = await reader.rows(t);
    if (t.name === 'timers') {
      const kind = (await reader.shape(t.name)).columns.indexOf('kind');
      rows = rows.filter((r) => !LIVE_TIMERS.includes(String(r[kind + 1])));
    }
    const { columns, explicit_rowid } = await reader.shape(t.name);
    out.push({ name: t.name, columns, explicit_rowid, rows });
  }
  return out;
}

/**
 * Approvals after a restore. The live timeline decides them: a call the restored process is
 * blocked on, or is about to run, whose approval was decided (or used) since the checkpoint fails
 * with EPERM and is not repeated; one still pending in both timelines stays pending; an approval
 * the live process was waiting for and the restored one is not is withdrawn.
 */
function settleApprovals(rt: ProcessRuntime, live: Pcb, liveDone: ReadonlySet<string>, checkpoint: string): void {
  const pcb = rt.mustPcb();
  const blocked = rt.store.blockedEntry();
  const liveWaiting = live.state === 'waiting' && live.wait?.reason === 'approval' ? (live.wait.approval_id ?? null) : null;
  if (pcb.state === 'waiting' && pcb.wait?.reason === 'approval' && blocked) {
    const id = pcb.wait.approval_id ?? '';
    if (id !== liveWaiting) {
      const status = rt.store.approvalFor(blocked.step, blocked.idx)?.status ?? 'decided';
      rt.completeEntry(blocked, { ok: false, error: { code: 'EPERM', message: `approval ${id} was ${status} after checkpoint ${checkpoint} was taken; the restored process does not repeat the call. Make the call again to ask anew.` } });
      rt.wake();
    }
  } else if (pcb.state === 'waiting' && pcb.wait?.reason === 'child') {
    const want = pcb.wait.pid ?? null;
    const kids = rt.store.children.all().filter((c) => (want === null || c.pid === want) && c.status !== 'reaped');
    if (kids.length === 0 && blocked) {
      rt.completeEntry(blocked, { ok: false, error: { code: 'ECHILD', message: `the child this wait was for was collected after checkpoint ${checkpoint}` } });
      rt.wake();
    } else {
      rt.recheckWait();
    }
  }
  if (liveWaiting && !(pcb.state === 'waiting' && pcb.wait?.approval_id === liveWaiting)) {
    rt.send({
      kind: 'd1',
      statement: { sql: "UPDATE approvals SET status = 'expired', note = ?, decided_at = ?, decided_by = 'kernel' WHERE id = ? AND status = 'pending'", params: [`withdrawn: the process was restored to ${checkpoint}`, rt.now, liveWaiting] },
    });
    rt.store.setApprovalStatus(liveWaiting, 'expired');
    rt.emit('approval_decided', { id: liveWaiting, status: 'expired', grant: null, note: `withdrawn: restored to ${checkpoint}`, by: 'kernel' });
  }
  // Entries about to run whose approval was already used in the live timeline are not run twice.
  for (const row of rt.store.sql.exec<{ step: number; idx: number }>("SELECT step, idx FROM journal WHERE status = 'pending'").toArray()) {
    const key = `${row.step}.${row.idx}`;
    const approval = rt.store.approvalFor(row.step, row.idx);
    if (approval?.status === 'approved' && liveDone.has(key)) {
      const entry = rt.store.journal(row.step).find((r) => r.idx === row.idx);
      if (entry) rt.completeEntry(entry, { ok: false, error: { code: 'EPERM', message: `approval ${approval.id} was used after checkpoint ${checkpoint} was taken; an approval is used once. Make the call again to ask anew.` } });
    }
  }
}
