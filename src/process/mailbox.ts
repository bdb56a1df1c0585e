/**
 * A process's mailbox, in its own SQLite storage: arrivals (deduplicated and put in per-pair order
 * by the rules in src/kernel/ipc.ts), the messages waiting to be received, and the sequence numbers
 * this process has assigned to what it sends.
 *
 * Tables: `mailbox` (every applied message; status queued → received), `ipc_in` (the next seq each
 * sender's channel expects), `ipc_held` (out-of-order arrivals waiting for a gap to fill),
 * `ipc_skipped` (seqs passed over when a gap timed out; a late copy is still applied once) and
 * `ipc_out` (the next seq per recipient). Every write happens inside the caller's transaction, so an
 * arrival is applied with its dedupe record in one commit, and a send commits with its journal entry.
 */
import { type ExitStatus, LIVE_STATES, type Pcb } from '../kernel/pcb.ts';
import { HOLD_TIMEOUT_MS, type RecvFilter, SIGCHLD, type WireMessage, arrival, checkSize, drain, matches, messageId } from '../kernel/ipc.ts';
import type { ProcessCore } from './core.ts';
import type { DeliveryOutcome, DeliveryStatus, MailboxMessage } from '../rpc/contracts.ts';
import { lazyTables, tableDdl } from './schema.ts';

export type { DeliveryOutcome, DeliveryStatus, MailboxMessage };

/** The mailbox's tables, created on first use (./schema.ts). */
const SCHEMA = tableDdl(lazyTables('mailbox'));


type MailRow = { seq: number; id: string; sender: string; topic: string | null; correlation_id: string | null; reply_to: string | null; body: string; bytes: number; sent_at: number; arrived_at: number; status: string; received_at: number | null; late: number };

const view = (r: MailRow): MailboxMessage => ({
  id: r.id,
  from: r.sender,
  topic: r.topic,
  correlation_id: r.correlation_id,
  reply_to: r.reply_to,
  body: JSON.parse(r.body) as unknown,
  sent_at: r.sent_at,
  arrived_at: r.arrived_at,
  ...(r.late ? { late: true } : {}),
});

export class Mailbox {
  readonly #rt: ProcessCore;
  #schemaReady = false;

  constructor(runtime: ProcessCore) {
    this.#rt = runtime;
  }

  get #sql(): SqlStorage {
    if (!this.#schemaReady) {
      this.#rt.store.sql.exec(SCHEMA);
      this.#schemaReady = true;
    }
    return this.#rt.store.sql;
  }

  /** Storage was released (the process was removed): recreate tables on next use. */
  reset(): void {
    this.#schemaReady = false;
  }

  // --- sending -------------------------------------------------------------------------------------

  /**
   * Build the next message on the channel to `to`, checked for size (E2BIG). Nothing is written:
   * `commit` (run in the journal's transaction) advances the pair's seq and queues the message in
   * the outbox, so the send and its journal entry commit together.
   */
  prepare(pcb: Pcb, to: string, body: unknown, opts: { correlation_id?: string | undefined; reply_to?: string | undefined; topic?: string | undefined }, reserved = 0): { message: WireMessage; commit: () => void } {
    const row = this.#sql.exec<{ next: number }>('SELECT next FROM ipc_out WHERE recipient = ?', to).toArray()[0];
    const seq = (row?.next ?? 1) + reserved;
    const message: WireMessage = {
      id: messageId(pcb.pid, to, seq),
      tenant: pcb.tenant,
      from: pcb.pid,
      to,
      channel: pcb.pid,
      seq,
      topic: opts.topic ?? null,
      correlation_id: opts.correlation_id ?? null,
      reply_to: opts.reply_to ?? null,
      body: body ?? null,
      sent_at: this.#rt.now,
    };
    checkSize(message);
    return {
      message,
      commit: () => {
        this.#sql.exec('INSERT INTO ipc_out (recipient, next) VALUES (?, ?) ON CONFLICT(recipient) DO UPDATE SET next = excluded.next', to, seq + 1);
        // A message to oneself is applied here and now; anything else leaves through the outbox.
        if (to === pcb.pid) this.apply([message]);
        else this.#rt.send({ kind: 'ipc', message });
      },
    };
  }

  /** A write to the topic registry in D1, queued in the caller's commit. */
  registry(sql: string, params: (string | number)[]): void {
    this.#rt.send({ kind: 'd1', statement: { sql, params } });
  }

  // --- arrivals ------------------------------------------------------------------------------------

  /**
   * Messages arrive (from the outbox of another process, the Queue consumer, or the API). Applies
   * them in one commit and wakes a recv they satisfy. Safe to call with duplicates and out of order.
   */
  deliver(messages: readonly WireMessage[]): DeliveryOutcome[] {
    const pcb = this.#rt.pcb();
    const dead = (code: 'ENOENT' | 'ESTATE', reason: string) => messages.map((m) => ({ id: m.id, status: 'dead' as const, code, reason }));
    if (!pcb) return dead('ENOENT', 'no such process');
    const foreign = messages.filter((m) => m.tenant !== pcb.tenant || m.to !== pcb.pid);
    const own = messages.filter((m) => m.tenant === pcb.tenant && m.to === pcb.pid);
    const out: DeliveryOutcome[] = foreign.map((m) => ({ id: m.id, status: 'dead', code: 'ENOENT', reason: 'no such process' }));
    if (!LIVE_STATES.has(pcb.state)) {
      // A copy of a message it took before it exited (its sender delivering again after a crash) was
      // delivered: a duplicate, not a dead letter.
      return [...out, ...own.map((m) => (this.#applied(m.id) ? { id: m.id, status: 'duplicate' as const } : { id: m.id, status: 'dead' as const, code: 'ESTATE' as const, reason: `the recipient has exited (${pcb.state})` }))];
    }
    if (own.length === 0) return out;
    this.#rt.store.transaction(() => {
      out.push(...this.apply(own));
    });
    return out;
  }

  /** Apply arrivals inside the caller's transaction. */
  apply(messages: readonly WireMessage[]): DeliveryOutcome[] {
    const now = this.#rt.now;
    const out: DeliveryOutcome[] = [];
    let applied = 0;
    for (const m of messages) {
      if (m.channel === null || m.seq === null) {
        const fresh = this.#insert(m, now, false);
        out.push({ id: m.id, status: fresh ? 'applied' : 'duplicate' });
        if (fresh) applied++;
        continue;
      }
      const channel = m.channel;
      const next = this.#sql.exec<{ next: number }>('SELECT next FROM ipc_in WHERE channel = ?', channel).toArray()[0]?.next ?? 1;
      const heldRows = this.#sql.exec<{ seq: number; held_at: number }>('SELECT seq, held_at FROM ipc_held WHERE channel = ?', channel).toArray();
      const skipped = new Set(this.#sql.exec<{ seq: number }>('SELECT seq FROM ipc_skipped WHERE channel = ?', channel).toArray().map((r) => r.seq));
      const decision = arrival({ next, held: new Set(heldRows.map((r) => r.seq)), skipped }, m.seq);
      switch (decision) {
        case 'duplicate':
        case 'retry':
          out.push({ id: m.id, status: decision });
          continue;
        case 'apply_late':
          this.#sql.exec('DELETE FROM ipc_skipped WHERE channel = ? AND seq = ?', channel, m.seq);
          if (this.#insert(m, now, true)) applied++;
          out.push({ id: m.id, status: 'applied' });
          continue;
        case 'hold': {
          this.#sql.exec('INSERT OR IGNORE INTO ipc_held (channel, seq, message, held_at) VALUES (?, ?, ?, ?)', channel, m.seq, JSON.stringify(m), now);
          out.push({ id: m.id, status: 'held' });
          const oldest = Math.min(now, ...heldRows.map((r) => r.held_at));
          if (now - oldest < HOLD_TIMEOUT_MS) continue;
          // The gap has stalled this pair too long: skip it and apply what is held.
          applied += this.#drainHeld(channel, next, now, true);
          continue;
        }
        case 'apply':
          if (this.#insert(m, now, false)) applied++;
          out.push({ id: m.id, status: 'applied' });
          applied += this.#drainHeld(channel, next + 1, now, false);
          continue;
      }
    }
    if (applied > 0) {
      this.#rt.emit('mail', { applied, from: [...new Set(messages.map((m) => m.from))].slice(0, 20) });
      this.recheck();
    }
    return out;
  }

  /** Apply held messages that now follow in order; store the channel's new `next`. */
  #drainHeld(channel: string, next: number, now: number, skipGap: boolean): number {
    const held = this.#sql.exec<{ seq: number }>('SELECT seq FROM ipc_held WHERE channel = ?', channel).toArray().map((r) => r.seq);
    const d = drain(next, held, skipGap);
    for (const s of d.skipped) this.#sql.exec('INSERT OR IGNORE INTO ipc_skipped (channel, seq) VALUES (?, ?)', channel, s);
    if (d.skipped.length > 0) this.#rt.emit('mail_gap_skipped', { channel, seqs: d.skipped.slice(0, 100), count: d.skipped.length });
    let applied = 0;
    for (const s of d.apply) {
      const row = this.#sql.exec<{ message: string }>('DELETE FROM ipc_held WHERE channel = ? AND seq = ? RETURNING message', channel, s).toArray()[0];
      if (row && this.#insert(JSON.parse(row.message) as WireMessage, now, false)) applied++;
    }
    this.#sql.exec('INSERT INTO ipc_in (channel, next) VALUES (?, ?) ON CONFLICT(channel) DO UPDATE SET next = excluded.next', channel, d.next);
    return applied;
  }

  /** Whether a message with this id was applied (the mailbox keeps every applied message). */
  #applied(id: string): boolean {
    return this.#sql.exec('SELECT 1 FROM mailbox WHERE id = ?', id).toArray().length > 0;
  }

  #insert(m: WireMessage, now: number, late: boolean): boolean {
    const body = JSON.stringify(m.body ?? null);
    const rows = this.#sql
      .exec(
        "INSERT INTO mailbox (id, sender, topic, correlation_id, reply_to, body, bytes, sent_at, arrived_at, status, late) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?) ON CONFLICT(id) DO NOTHING RETURNING seq",
        m.id,
        m.from,
        m.topic,
        m.correlation_id,
        m.reply_to,
        body,
        body.length,
        m.sent_at,
        now,
        late ? 1 : 0,
      )
      .toArray();
    return rows.length > 0;
  }

  /** SIGCHLD: a child's exit lands in the parent's mailbox, so a recv can learn of it. Inside the caller's commit. */
  sigchld(pcb: Pcb, child: string, exit: ExitStatus): void {
    this.apply([
      {
        id: `${SIGCHLD}:${child}`,
        tenant: pcb.tenant,
        from: child,
        to: pcb.pid,
        channel: null,
        seq: null,
        topic: null,
        correlation_id: null,
        reply_to: null,
        body: { signal: SIGCHLD, pid: child, exit },
        sent_at: this.#rt.now,
      },
    ]);
  }

  // --- receiving -----------------------------------------------------------------------------------

  /** The oldest queued message that passes the filter, or null. */
  peek(filter: RecvFilter): (MailboxMessage & { seq: number }) | null {
    const row = this.#sql
      .exec<MailRow>(
        `SELECT * FROM mailbox WHERE status = 'queued' AND (?1 IS NULL OR sender = ?1) AND (?2 IS NULL OR correlation_id = ?2) AND (?3 IS NULL OR topic = ?3) ORDER BY seq LIMIT 1`,
        filter.from ?? null,
        filter.correlation_id ?? null,
        filter.topic ?? null,
      )
      .toArray()[0];
    return row ? { ...view(row), seq: row.seq } : null;
  }

  /** Mark a message received (inside the caller's commit). */
  take(seq: number): void {
    this.#sql.exec("UPDATE mailbox SET status = 'received', received_at = ? WHERE seq = ?", this.#rt.now, seq);
  }

  /** If the process is blocked in recv and a queued message now matches, complete the recv and wake it. */
  recheck(): boolean {
    const rt = this.#rt;
    const pcb = rt.mustPcb();
    if (pcb.state !== 'waiting' || pcb.wait?.reason !== 'message') return false;
    const found = this.peek(pcb.wait);
    if (!found || !matches(pcb.wait, found)) return false;
    const entry = rt.store.blockedEntry();
    this.take(found.seq);
    const { seq: _seq, ...message } = found;
    if (entry) rt.completeEntry(entry, { ok: true, value: message });
    rt.wake();
    return true;
  }

  /** The mailbox for inspection: newest first. */
  list(status: 'queued' | 'received' | 'all', limit: number, before: number | null): { messages: (MailboxMessage & { seq: number; status: string; received_at: number | null })[]; next_before: number | null } {
    const rows = this.#sql
      .exec<MailRow>('SELECT * FROM mailbox WHERE (?1 = \'all\' OR status = ?1) AND (?2 IS NULL OR seq < ?2) ORDER BY seq DESC LIMIT ?3', status, before, limit + 1)
      .toArray();
    const page = rows.slice(0, limit);
    return {
      messages: page.map((r) => ({ seq: r.seq, status: r.status, received_at: r.received_at, ...view(r) })),
      next_before: rows.length > limit ? (page.at(-1)?.seq ?? null) : null,
    };
  }

  /** Counts for the mailbox header: queued, held out of order. */
  counts(): { queued: number; held: number } {
    const queued = this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM mailbox WHERE status = 'queued'").one().n;
    const held = this.#sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM ipc_held').one().n;
    return { queued, held };
  }
}

export function recvFilterOf(args: { from?: string | undefined; correlation_id?: string | undefined; topic?: string | undefined }): RecvFilter {
  return { from: args.from ?? null, correlation_id: args.correlation_id ?? null, topic: args.topic ?? null };
}
