/**
 * Restore's commit: the rolled-back tables of a checkpoint written over the live ones, in one
 * transaction, with what the live timeline keeps (tables.ts: its meta keys, its timers, messages
 * that arrived since) and the calls the restored process was about to make settled against what
 * the live timeline already decided (an approval is used once; a collected child stays collected).
 * The service (service.ts) loads the checkpoint and checks the step boundary first.
 */
import type { Pcb } from '../kernel/pcb.ts';
import type { ProcessRuntime } from '../process/runtime.ts';
import type { SqlValue } from './chunks.ts';
import { restoredPcb } from './policy.ts';
import { type TableRows, writeTables } from './snapshot.ts';
import type { Manifest } from './store.ts';
import { LIVE_META, LIVE_TIMERS } from './tables.ts';

/**
 * Write the checkpoint's rolled-back `tables` (loaded whole, `atCheckpoint` its PCB) over the live
 * process and record it. Synchronous: nothing may run between the caller's boundary check and this.
 */
export function commitRestore(rt: ProcessRuntime, checkpoint: string, manifest: Manifest, tables: readonly TableRows[], atCheckpoint: Pcb, by: string): void {
  const live = rt.mustPcb();
  const liveDone = new Set(rt.store.sql.exec<{ k: string }>("SELECT step || '.' || idx AS k FROM journal WHERE status = 'done'").toArray().map((r) => r.k));
  const mailboxMax = maxOf(tables.find((t) => t.name === 'mailbox'), 'seq');
  rt.store.transaction(() => {
    writeTables(rt.store.sql, tables, (table) => keepLive(table, mailboxMax));
    if (tables.some((t) => t.name === 'mailbox')) rt.store.sql.exec("UPDATE mailbox SET status = 'queued', received_at = NULL WHERE seq > ?", mailboxMax);
    rt.reload();
    rt.save(restoredPcb(atCheckpoint, live, rt.now));
    settleApprovals(rt, live, liveDone, checkpoint);
    rt.emit('restored', { checkpoint, step: manifest.step, from_version: live.version, version: rt.mustPcb().version, by, digest: manifest.digest });
    rt.audit('lifecycle', 'restore', 'ok', null, { checkpoint, step: manifest.step, from_step: live.usage.steps, from_version: live.version, version: rt.mustPcb().version, by, digest: manifest.digest });
    const pcb = rt.mustPcb();
    if (pcb.state === 'ready') rt.store.setTimer('run', rt.now);
  });
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
      return { where: `kind IN (${LIVE_TIMERS.map(() => '?').join(', ')})`, params: [...LIVE_TIMERS] };
    case 'mailbox':
      // Messages that arrived after the checkpoint stay (queued again: the restored process has not seen them).
      return { where: 'seq > ?', params: [mailboxMax] };
    default:
      return null;
  }
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
      const status = rt.store.approvals.forEntry(blocked.step, blocked.idx)?.status ?? 'decided';
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
    rt.store.approvals.setStatus(liveWaiting, 'expired');
    rt.emit('approval_decided', { id: liveWaiting, status: 'expired', grant: null, note: `withdrawn: restored to ${checkpoint}`, by: 'kernel' });
  }
  // Entries about to run whose approval was already used in the live timeline are not run twice.
  for (const row of rt.store.sql.exec<{ step: number; idx: number }>("SELECT step, idx FROM journal WHERE status = 'pending'").toArray()) {
    const key = `${row.step}.${row.idx}`;
    const approval = rt.store.approvals.forEntry(row.step, row.idx);
    if (approval?.status === 'approved' && liveDone.has(key)) {
      const entry = rt.store.journal(row.step).find((r) => r.idx === row.idx);
      if (entry) rt.completeEntry(entry, { ok: false, error: { code: 'EPERM', message: `approval ${approval.id} was used after checkpoint ${checkpoint} was taken; an approval is used once. Make the call again to ask anew.` } });
    }
  }
}
