/**
 * Fork: a new process, in its own Durable Object, created from a checkpoint of another.
 *
 * The fork reads the checkpoint from R2 itself and copies the rolled-back tables (what the process
 * knew and held: PCB, pages, journal, files, tools, received messages). What belongs to the
 * original's live timeline stays behind: its children (never duplicated), its outbox, its IPC
 * sequence numbers, its queued messages, its events, its approvals. A call the original was blocked
 * on is settled for the fork: an approval is asked again under the fork's own pid (never carried
 * over, decided or pending), a wait for a child fails with ECHILD; sleeps and message waits stay.
 */
import { KernelError } from '../kernel/errors.ts';
import type { Pcb } from '../kernel/pcb.ts';
import type { ForkInput } from './contract.ts';
export type { ForkInput } from './contract.ts';
import type { ProcessRuntime } from '../process/runtime.ts';
import { loadTables, pcbOf } from './reader.ts';
import { writeTables } from './snapshot.ts';
import { readManifest } from './store.ts';
import { policyOf } from './tables.ts';
import { META } from '../process/meta.ts';

export async function adoptFork(rt: ProcessRuntime, bucket: R2Bucket, input: ForkInput): Promise<Pcb> {
  const existing = rt.pcb();
  if (existing) {
    if (rt.store.getMeta(META.spawnKey) === input.spawn_key) return existing;
    throw new KernelError('EEXIST', `process ${input.pid} already exists`, { pid: input.pid });
  }
  const manifest = await readManifest(bucket, input.manifest_key);
  if (manifest.tenant !== input.tenant) throw new KernelError('ENOENT', 'no such checkpoint');
  const tables = (await loadTables(bucket, manifest))
    .filter((t) => policyOf(t.name) === 'rollback')
    .map((t) => {
      if (t.name !== 'mailbox') return t;
      // Messages already received are part of what the process knows; queued ones belong to the original.
      const status = t.columns.indexOf('status');
      return { ...t, rows: t.rows.filter((r) => r[status + 1] === 'received') };
    });
  const source = pcbOf(tables);
  if (!source) throw new KernelError('EIO', `checkpoint ${manifest.id} holds no PCB`);
  if (source.state === 'zombie' || source.state === 'terminated') throw new KernelError('ESTATE', `checkpoint ${manifest.id} is of a process that had exited; there is nothing to run`, { state: source.state });
  const now = rt.now;
  rt.store.transaction(() => {
    writeTables(rt.store.sql, tables, () => null);
    rt.reload();
    const base = source.state === 'stopped' ? (source.stopped_from ?? 'ready') : source.state;
    const blocked = rt.store.blockedEntry();
    let state: Pcb['state'] = base === 'running' ? 'ready' : base;
    let wait = state === 'waiting' || state === 'sleeping' ? source.wait : null;
    if (state === 'waiting' && wait?.reason === 'approval') {
      // Asked again by the fork's own dispatcher, under the fork's pid: a new approval request.
      if (blocked) rt.store.markPending(blocked.step, blocked.idx);
      rt.store.clearTimer('wait_timeout');
      state = 'ready';
      wait = null;
    }
    const childWait = state === 'waiting' && wait?.reason === 'child';
    if (childWait) {
      state = 'ready';
      wait = null;
      rt.store.clearTimer('wait_timeout');
    }
    const pcb: Pcb = {
      ...source,
      pid: input.pid,
      tenant: input.tenant,
      ppid: input.ppid,
      name: input.name ?? source.name,
      task: input.task ?? source.task,
      model: input.model ?? source.model,
      priority: input.priority ?? source.priority,
      capabilities: input.capabilities,
      quotas: input.quotas,
      state,
      wait,
      stopped_from: null,
      exit: null,
      created_at: now,
      updated_at: now,
      version: 1,
      forked_from: input.forked_from,
    };
    rt.save(pcb);
    rt.store.setMeta(META.spawnKey, input.spawn_key);
    if (input.lineage) rt.store.setMeta(META.lineage, input.lineage);
    if (childWait && blocked) rt.completeEntry(blocked, { ok: false, error: { code: 'ECHILD', message: `this process is a fork of ${input.forked_from}; the original's children were not duplicated` } });
    if (input.task !== undefined && input.task !== source.task) rt.addPage(pcb.usage.steps, { kind: 'notice', text: `This process was forked from ${input.forked_from}. Its task is now: ${input.task}` });
    rt.emit('spawned', { pid: pcb.pid, ppid: pcb.ppid, name: pcb.name, image: pcb.image, model: pcb.model, priority: pcb.priority, quotas: pcb.quotas, forked_from: input.forked_from });
    rt.audit('lifecycle', 'fork', 'ok', null, { forked_from: input.forked_from, ppid: pcb.ppid, capabilities: pcb.capabilities, task_changed: input.task !== undefined && input.task !== source.task });
    if (state === 'ready') rt.store.setTimer('run', now);
  });
  await rt.settle();
  return rt.mustPcb();
}
