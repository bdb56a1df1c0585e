/**
 * Outbox delivery: effects on other objects and on D1 are committed with the change that caused
 * them (`ProcessCore.send`) and delivered here afterwards, in order of kind, with retries on the
 * outbox timer. Receivers are idempotent, so a delivery repeated after a crash is harmless. The
 * process table's row is written from the PCB as it is at delivery, not once per change. Audit
 * records (the store's audit log) are hashed onto the process's own chain here and go to D1 in the
 * same batch as the row and the `d1` statements; the chain's head is anchored in the tenant's
 * chain from time to time (`anchor`), never once per record.
 */
import { ANCHOR_EVERY, type AnchorDetail, type AuditRecord, type Statement, chainHash, processChainContent, processRowStatement } from '../audit/audit.ts';
import { KernelError, toErrorValue } from '../kernel/errors.ts';
import type { WireMessage } from '../kernel/ipc.ts';
import { faultBackoffMs } from '../kernel/timers.ts';
import type { OutboxMessage, ProcessCore } from './core.ts';
import { initPid } from './init.ts';
import { type AuditHead, META } from './meta.ts';
import { upsertProcessRow } from './table.ts';

/** Audit records hashed and written to D1 per round (a D1 batch stays well under its limits). */
const AUDIT_BATCH = 200;

/** Meta key: the process table's row is stale. */

export class Outbox {
  readonly #rt: ProcessCore;
  #flushing: Promise<void> | null = null;

  constructor(rt: ProcessCore) {
    this.#rt = rt;
  }
  /**
   * Deliver the outbox and re-arm: the tail of every entry point that changed something.
   * If a delivery is already under way it is not awaited: it keeps draining until the outbox is
   * empty, so it takes the new rows too, and waiting on it from inside an RPC it is making (a
   * parent's childExited calling back into this child) would deadlock.
   */
  async settle(): Promise<void> {
    if (!this.#flushing) await this.flush();
    await this.#rt.rearm();
  }

  async flush(): Promise<void> {
    if (this.#flushing) return this.#flushing;
    this.#flushing = this.#drain().finally(() => {
      this.#flushing = null;
    });
    return this.#flushing;
  }

  /**
   * Write the process table's row if it is stale, and run `reads` in the same D1 batch: a spawn's
   * one round trip before it answers (its row, and what it must read before its first step).
   * Returns the results of `reads`.
   */
  async flushTable(reads: readonly Statement[] = []): Promise<D1Result[]> {
    const pcb = this.#rt.store.getMeta(META.tableDirty) ? this.#rt.pcb() : null;
    const statements = pcb ? [upsertProcessRow(pcb), ...reads] : reads;
    if (statements.length === 0) return [];
    const db = this.#rt.deps.db;
    const results = await db.batch(statements.map((st) => db.prepare(st.sql).bind(...st.params)));
    // Only clear the flag if nothing changed while the write was in flight.
    if (pcb && this.#rt.pcb() === pcb) this.#rt.store.setMeta(META.tableDirty, false);
    return pcb ? results.slice(1) : results;
  }

  /**
   * One round of D1 writes, in one batch: the process table's row if it is stale, the audit
   * backlog hashed onto the process's chain (src/audit/audit.ts), and the outbox's `d1` rows. Then,
   * in one commit, the delivered records and rows are forgotten and the chain's head moves.
   */
  async #writeD1(sqlRows: readonly { id: number; message: OutboxMessage }[]): Promise<void> {
    const store = this.#rt.store;
    const pcb = store.getMeta(META.tableDirty) ? this.#rt.pcb() : null;
    const backlog = store.deliveries.auditBacklog(AUDIT_BATCH);
    const statements: Statement[] = pcb ? [upsertProcessRow(pcb)] : [];
    const head = store.deliveries.auditHead();
    let next: AuditHead = head;
    for (const row of backlog) {
      const record = JSON.parse(row.record) as AuditRecord;
      const hash = await chainHash(next.hash, processChainContent({ ...record, pid_seq: row.seq }));
      statements.push(processRowStatement(record, row.seq, next.hash, hash));
      next = { ...next, seq: row.seq, hash };
    }
    for (const m of sqlRows) statements.push((m.message as Extract<OutboxMessage, { kind: 'd1' }>).statement);
    if (statements.length === 0) return;
    const db = this.#rt.deps.db;
    await db.batch(statements.map((st) => db.prepare(st.sql).bind(...st.params)));
    store.transaction(() => {
      if (backlog.length > 0) store.deliveries.delivered(next, backlog.length);
      store.deliveries.deleteOutbox(sqlRows.map((m) => m.id));
      // Only clear the flag if nothing changed while the write was in flight.
      if (pcb && this.#rt.pcb() === pcb) store.setMeta(META.tableDirty, false);
    });
  }

  /**
   * Put the chain's head into the tenant's chain when it is due: ANCHOR_EVERY records since the
   * last anchor, or now (`force`: the process has exited, or is being removed).
   */
  async anchor(force: boolean): Promise<boolean> {
    const store = this.#rt.store;
    const head = store.deliveries.auditHead();
    if (head.seq <= head.anchored) return false;
    if (!force && head.seq - head.anchored < ANCHOR_EVERY) return false;
    const pcb = this.#rt.mustPcb();
    const detail: AnchorDetail = { seq: head.seq, hash: head.hash };
    await this.#rt.deps.auditChain(pcb.tenant).append(pcb.tenant, [
      { id: `${pcb.pid}:anchor:${head.seq}`, tenant: pcb.tenant, pid: pcb.pid, at: this.#rt.now, kind: 'audit', action: 'anchor', outcome: 'ok', code: null, detail },
    ]);
    const now = store.deliveries.auditHead();
    store.transaction(() => store.setMeta(META.auditHead, { ...now, anchored: head.seq }));
    return true;
  }

  async #drain(): Promise<void> {
    const store = this.#rt.store;
    // A pipeline waiting on this process hears of its exit before anything else is written, the
    // process table's row included (a failed delivery stays in the outbox for the loop below).
    await this.deliverNow('exit_notify');
    for (;;) {
      const rows = store.deliveries.outbox(200);
      const more = store.getMeta(META.tableDirty) === true || store.deliveries.auditOwed();
      try {
        if (rows.length === 0 && !more) {
          const state = this.#rt.pcb()?.state;
          // A change committed while the anchor was in flight found this delivery running and left
          // its rows to it (settle): look again before stopping.
          if (await this.anchor(state === 'zombie' || state === 'terminated')) continue;
          store.clearTimer('outbox');
          return;
        }
        const messages = rows.map((r) => ({ id: r.id, attempts: r.attempts, message: JSON.parse(r.payload) as OutboxMessage }));
        // A retried exit notice goes before the bookkeeping too.
        for (const m of messages.filter((x) => x.message.kind === 'exit_notify')) {
          await this.#deliver(m.message);
          store.deliveries.deleteOutbox([m.id]);
        }
        await this.#writeD1(messages.filter((m) => m.message.kind === 'd1'));
        await this.anchor(false);
        const mail = messages.filter((m) => m.message.kind === 'ipc');
        if (mail.length > 0) {
          const wire = mail.map((m) => (m.message as Extract<OutboxMessage, { kind: 'ipc' }>).message);
          if (this.#rt.deps.ipc) await this.#rt.deps.ipc.deliver(wire);
          else await this.#deliverDirect(wire);
          store.deliveries.deleteOutbox(mail.map((m) => m.id));
        }
        for (const m of messages) {
          if (m.message.kind === 'd1' || m.message.kind === 'ipc' || m.message.kind === 'exit_notify') continue;
          await this.#deliver(m.message);
          store.deliveries.deleteOutbox([m.id]);
        }
      } catch (e) {
        const pending = store.deliveries.outbox(1)[0];
        const attempts = (pending?.attempts ?? 0) + 1;
        if (pending) store.deliveries.bumpOutbox([pending.id]);
        this.#rt.emit('outbox_retry', { attempts, error: toErrorValue(e) });
        store.setTimer('outbox', this.#rt.now + faultBackoffMs(attempts, this.#rt.deps.random));
        return;
      }
    }
  }

  /**
   * Deliver the outbox rows of one kind now, without waiting for the end of the alarm run. A failure
   * leaves the row for the regular delivery and its retries (receivers are idempotent).
   */
  async deliverNow(kind: OutboxMessage['kind']): Promise<void> {
    for (const row of this.#rt.store.deliveries.outboxOfKind(kind, 20)) {
      try {
        await this.#deliver(JSON.parse(row.payload) as OutboxMessage);
        this.#rt.store.deliveries.deleteOutbox([row.id]);
      } catch (e) {
        this.#rt.store.setTimer('outbox', this.#rt.now);
        this.#rt.emit('outbox_retry', { attempts: row.attempts + 1, error: toErrorValue(e) });
        return;
      }
    }
  }

  async #deliver(message: OutboxMessage): Promise<void> {
    switch (message.kind) {
      case 'child_exited': {
        const { reap } = await this.#rt.deps.process(message.parent).childExited(message.child, message.exit);
        if (reap) this.#rt.reap(message.parent);
        return;
      }
      case 'reap':
        await this.#rt.deps.process(message.child).reap(message.by);
        return;
      case 'sched_release':
        if (this.#rt.deps.scheduler) await this.#rt.deps.scheduler(message.pool, message.shard).release(message);
        return;
      case 'signal': {
        const r = await this.#rt.deps.process(message.pid).signal(message.signal, message.from, null, message.cascade);
        // A member of the group that has exited or is gone needs no signal; anything else is retried.
        if (!r.ok && r.error.code !== 'ESTATE' && r.error.code !== 'ENOENT') throw KernelError.fromValue(r.error);
        return;
      }
      case 'orphan': {
        const init = await initPid(message.tenant);
        const adopted = await this.#rt.deps.process(init).adopt(message.tenant, message.child, message.name, message.parent);
        if (!adopted.ok) throw KernelError.fromValue(adopted.error);
        await this.#rt.deps.process(message.child).reparent(init, message.parent);
        return;
      }
      case 'exit_notify':
        await this.#rt.deps.notifyExit?.(message);
        return;
      case 'd1':
      case 'ipc':
        return;
    }
  }

  /** Without a transport: one RPC per recipient, in order. A refused message throws, so the outbox retries. */
  async #deliverDirect(messages: readonly WireMessage[]): Promise<void> {
    const byRecipient = new Map<string, WireMessage[]>();
    for (const m of messages) byRecipient.set(m.to, [...(byRecipient.get(m.to) ?? []), m]);
    for (const [to, batch] of byRecipient) {
      const outcomes = await this.#rt.deps.process(to).deliverMessages(batch);
      const stuck = outcomes.find((o) => o.status === 'retry' || o.status === 'dead');
      if (stuck) throw new KernelError('EAGAIN', `message ${stuck.id} to ${to} was not accepted (${stuck.status}${stuck.reason ? `: ${stuck.reason}` : ''})`);
    }
  }
}
