/**
 * Checkpoints of one process, run inside its Durable Object: take, list, inspect, diff, delete and
 * restore, plus the automatic ones (every K steps, on SIGSTOP) with retention.
 *
 * Operations on one process's checkpoints run one at a time (a promise chain), so chunk reference
 * counts never race. A checkpoint is only taken at a step boundary: not while a slice is running
 * in this object, and not while a syscall is marked started (EAGAIN: try again when it ends).
 *
 * This class is the sequencing and the bookkeeping (the index, events, audit records, the policy);
 * putting a checkpoint in R2 is writer.ts, reading one back reader.ts, restore's commit restore.ts.
 */
import { pageOf } from '../api/paging.ts';
import { KernelError } from '../kernel/errors.ts';
import type { Pcb } from '../kernel/pcb.ts';
import { META } from '../process/meta.ts';
import type { ProcessRuntime } from '../process/runtime.ts';
import { type AutoPolicy, DEFAULT_AUTO, autoDue, checkpointable, diffTables, retention } from './policy.ts';
import { filesOf, loadTables, pcbOf } from './reader.ts';
import { commitRestore } from './restore.ts';
import { readSnapshot, stateDigest, type TableRows } from './snapshot.ts';
import { CheckpointIndex, type IndexRow, type Manifest, type Reason, bucketOrFail, chunkNames, manifestKey, packKey, prefixOf, readManifest } from './store.ts';
import { policyOf } from './tables.ts';
import { writeCheckpoint } from './writer.ts';

export type CheckpointSummary = IndexRow & { readonly name: string };

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
    rt.store.flushPcb();
    const snap = readSnapshot(rt.store.sql);
    const seq = this.index.nextSeq();
    const id = `ck${String(seq).padStart(4, '0')}-${crypto.randomUUID().slice(0, 8)}`;
    const created_at = rt.now;
    const { manifest, written } = await writeCheckpoint(bucket, this.index, this.#prefix(pcb), snap, {
      id,
      pid: pcb.pid,
      tenant: pcb.tenant,
      label,
      reason,
      created_at,
      step: pcb.usage.steps,
      version: pcb.version,
      state: pcb.state,
      forked_from: pcb.forked_from,
    });
    const digest = manifest.digest;
    const row: IndexRow = { id, seq, label, reason, step: manifest.step, state: manifest.state, created_at, raw_bytes: manifest.sizes.raw_bytes, stored_bytes: manifest.sizes.stored_bytes, new_bytes: manifest.sizes.new_bytes, digest };
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
    const bucket = bucketOrFail(this.#bucket());
    const [fx, fy] = [await filesOf(bucket, x), await filesOf(bucket, y)];
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
    const atCheckpoint = pcbOf(tables);
    if (!atCheckpoint) throw new KernelError('EIO', `checkpoint ${id} holds no PCB`);
    // Everything is loaded; from here on nothing awaits until the commit.
    this.#atBoundary(rt.mustPcb());
    commitRestore(rt, id, manifest, tables, atCheckpoint, by);
    await rt.settle();
    return rt.mustPcb();
  }

  /** The digest of the process's state now (what a checkpoint taken now would record). */
  digestNow(): Promise<string> {
    this.#rt.store.flushPcb();
    return stateDigest(readSnapshot(this.#rt.store.sql).tables);
  }
}

/** A checkpoint's tables by chunk names, for diffTables. */
const named = (m: Manifest) => m.tables.map((t) => ({ name: t.name, rows: t.rows, chunks: chunkNames(m, t) }));
