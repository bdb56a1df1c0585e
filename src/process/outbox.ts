/**
 * Outbox delivery: effects on other objects and on D1 are committed with the change that caused
 * them (`ProcessCore.send`) and delivered here afterwards, in order of kind, with retries on the
 * outbox timer. Receivers are idempotent, so a delivery repeated after a crash is harmless. The
 * process table's row is written from the PCB as it is at delivery, not once per change.
 */
import type { AuditRecord } from '../audit/audit.ts';
import { KernelError, toErrorValue } from '../kernel/errors.ts';
import type { WireMessage } from '../kernel/ipc.ts';
import { faultBackoffMs } from '../kernel/timers.ts';
import type { OutboxMessage, ProcessCore } from './core.ts';
import { initPid } from './init.ts';
import { upsertProcessRow } from './table.ts';

/** Meta key: the process table's row is stale. */
export const TABLE_DIRTY = 'table_dirty';

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

  /** Write the process table's row if it is stale (spawn does only this before answering). */
  async flushTable(): Promise<void> {
    if (!this.#rt.store.getMeta<boolean>(TABLE_DIRTY)) return;
    const pcb = this.#rt.pcb();
    if (!pcb) return;
    const s = upsertProcessRow(pcb);
    await this.#rt.deps.db.prepare(s.sql).bind(...s.params).run();
    // Only clear the flag if nothing changed while the write was in flight.
    if (this.#rt.pcb() === pcb) this.#rt.store.setMeta(TABLE_DIRTY, false);
  }

  async #drain(): Promise<void> {
    // A pipeline waiting on this process hears of its exit before anything else is written, the
    // process table's row included (a failed delivery stays in the outbox for the loop below).
    await this.deliverNow('exit_notify');
    for (;;) {
      if (this.#rt.store.getMeta<boolean>(TABLE_DIRTY)) {
        try {
          await this.flushTable();
        } catch (e) {
          this.#rt.emit('outbox_retry', { attempts: 1, error: toErrorValue(e) });
          this.#rt.store.setTimer('outbox', this.#rt.now + faultBackoffMs(1, this.#rt.deps.random));
          return;
        }
      }
      const rows = this.#rt.store.outbox(200);
      if (rows.length === 0) {
        if (this.#rt.store.getMeta<boolean>(TABLE_DIRTY)) continue;
        this.#rt.store.clearTimer('outbox');
        return;
      }
      const messages = rows.map((r) => ({ id: r.id, attempts: r.attempts, message: JSON.parse(r.payload) as OutboxMessage }));
      const sql = messages.filter((m) => m.message.kind === 'd1');
      const audits = messages.filter((m) => m.message.kind === 'audit');
      const mail = messages.filter((m) => m.message.kind === 'ipc');
      try {
        // A retried exit notice goes before the bookkeeping too.
        for (const m of messages.filter((x) => x.message.kind === 'exit_notify')) {
          await this.#deliver(m.message);
          this.#rt.store.deleteOutbox([m.id]);
        }
        if (audits.length > 0) {
          const byTenant = new Map<string, AuditRecord[]>();
          for (const m of audits) {
            const r = (m.message as Extract<OutboxMessage, { kind: 'audit' }>).record;
            byTenant.set(r.tenant, [...(byTenant.get(r.tenant) ?? []), r]);
          }
          for (const [tenant, records] of byTenant) await this.#rt.deps.auditChain(tenant).append(tenant, records);
          this.#rt.store.deleteOutbox(audits.map((m) => m.id));
        }
        if (sql.length > 0) {
          const stmts = sql.map((m) => {
            const s = (m.message as Extract<OutboxMessage, { kind: 'd1' }>).statement;
            return this.#rt.deps.db.prepare(s.sql).bind(...s.params);
          });
          await this.#rt.deps.db.batch(stmts);
          this.#rt.store.deleteOutbox(sql.map((m) => m.id));
        }
        if (mail.length > 0) {
          const wire = mail.map((m) => (m.message as Extract<OutboxMessage, { kind: 'ipc' }>).message);
          if (this.#rt.deps.ipc) await this.#rt.deps.ipc.deliver(wire);
          else await this.#deliverDirect(wire);
          this.#rt.store.deleteOutbox(mail.map((m) => m.id));
        }
        for (const m of messages) {
          if (m.message.kind === 'd1' || m.message.kind === 'audit' || m.message.kind === 'ipc' || m.message.kind === 'exit_notify') continue;
          await this.#deliver(m.message);
          this.#rt.store.deleteOutbox([m.id]);
        }
      } catch (e) {
        const pending = this.#rt.store.outbox(1)[0];
        const attempts = (pending?.attempts ?? 0) + 1;
        if (pending) this.#rt.store.bumpOutbox([pending.id]);
        this.#rt.emit('outbox_retry', { attempts, error: toErrorValue(e) });
        this.#rt.store.setTimer('outbox', this.#rt.now + faultBackoffMs(attempts, this.#rt.deps.random));
        return;
      }
    }
  }

  /**
   * Deliver the outbox rows of one kind now, without waiting for the end of the alarm run. A failure
   * leaves the row for the regular delivery and its retries (receivers are idempotent).
   */
  async deliverNow(kind: OutboxMessage['kind']): Promise<void> {
    for (const row of this.#rt.store.outboxOfKind(kind, 20)) {
      try {
        await this.#deliver(JSON.parse(row.payload) as OutboxMessage);
        this.#rt.store.deleteOutbox([row.id]);
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
      case 'audit':
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
