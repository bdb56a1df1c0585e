/**
 * The process runtime: one agent process inside its Durable Object. It owns the store and the
 * records every change makes (events, audit records, outbox entries, context pages), and installs
 * the modules that decide what happens, each on the ProcessCore interface (./core.ts):
 *   - ./lifecycle.ts: spawn, signals, exit, children, reaping, wake-ups, a completed syscall;
 *   - ./approvals.ts: human decisions on blocked calls;
 *   - ./alarm.ts: the timer table behind the one alarm, and the alarm run with its fault bound;
 *   - ./outbox.ts: delivery of the effects committed for other objects and D1.
 * The step loop itself (think → journal → dispatch) is in ./step.ts.
 *
 * Invariants this module keeps:
 *  - Every lifecycle change goes through `apply` (src/kernel/state.ts) and is saved together with
 *    its event, its audit record and its process-table update, in one synchronous commit.
 *  - Effects on other objects and on D1 go through the outbox, committed with the change that
 *    caused them and delivered afterwards with retries; receivers are idempotent.
 *  - The alarm always points at the earliest armable timer, and is re-armed on every entry.
 *  - The clock and randomness come from `deps` (injected), never from the platform directly.
 */
import type { AuditKind, AuditOutcome, AuditRecord, Statement } from '../audit/audit.ts';
import { type PageBody, pageText } from '../kernel/context.ts';
import type { Grant } from '../kernel/capabilities.ts';
import { KernelError, type Result } from '../kernel/errors.ts';
import type { ExitStatus, Pcb, Signal } from '../kernel/pcb.ts';
import { INDEX_CHARS, LexicalIndex } from '../kernel/lexical.ts';
import { KIND_IMPORTANCE } from '../kernel/pager.ts';
import { preview } from '../kernel/preview.ts';
import type { SpawnSpec } from '../kernel/spawn.ts';
import { type TransitionEvent, transition } from '../kernel/state.ts';
import type { SyscallResult } from '../kernel/syscalls.ts';
import { countTokens } from '../llm/tokens.ts';
import type { ApprovalDecision } from '../rpc/contracts.ts';
import { ProcessAlarm } from './alarm.ts';
import { addGrant, decideApproval } from './approvals.ts';
import type { OutboxMessage, ProcessCore, RuntimeDeps } from './core.ts';
import { ProcessFs } from './fs.ts';
import * as lifecycle from './lifecycle.ts';
import { Mailbox } from './mailbox.ts';
import { META } from './meta.ts';
import { Outbox } from './outbox.ts';
import { termAtStepBoundary, termOverdue, termState } from './signals.ts';
import { type JournalRow, ProcessStore } from './store.ts';



export class ProcessRuntime implements ProcessCore {
  readonly store: ProcessStore;
  readonly fs: ProcessFs;
  readonly mailbox: Mailbox;
  readonly deps: RuntimeDeps;
  readonly #alarm: ProcessAlarm;
  readonly #outbox: Outbox;
  #index: LexicalIndex | null = null;

  constructor(deps: RuntimeDeps) {
    this.deps = deps;
    this.store = new ProcessStore(deps.storage);
    this.fs = new ProcessFs(this.store.sql, (undo) => this.store.onRollback(undo));
    this.mailbox = new Mailbox(this);
    this.#alarm = new ProcessAlarm(this);
    this.#outbox = new Outbox(this);
  }

  get now(): number {
    return this.deps.now();
  }

  pcb(): Pcb | null {
    return this.store.loadPcb();
  }

  /** Load the PCB of a process that must exist (callers have checked). */
  mustPcb(): Pcb {
    const pcb = this.store.loadPcb();
    if (!pcb) throw new Error('process has no PCB');
    return pcb;
  }

  // --- context pages ------------------------------------------------------------------------------

  /** Append a context page: counted with the tokenizer, scored by kind, and indexed for page faults. */
  addPage(step: number, body: PageBody): void {
    const text = pageText(body);
    const seq = this.store.pages.append(step, body.kind, body, this.now, { tokens: countTokens(text), importance: KIND_IMPORTANCE[body.kind] ?? 0.5, excerpt: text });
    if (body.kind !== 'recall') this.#index?.add(seq, text.slice(0, INDEX_CHARS));
  }

  /**
   * The lexical index over every page but recall pages (copies of pages it already has), built from
   * storage once per object, then kept current.
   */
  index(): LexicalIndex {
    if (!this.#index) {
      const index = new LexicalIndex();
      for (const p of this.store.pages.all()) if (p.kind !== 'recall') index.add(p.seq, pageText(p.body as PageBody).slice(0, INDEX_CHARS));
      this.#index = index;
    }
    return this.#index;
  }

  // --- records ----------------------------------------------------------------------------------------

  emit(type: string, data: unknown): void {
    this.deps.onEvent(this.store.appendEvent(this.now, type, preview(data)));
  }

  /** Record in the process's own audit chain, in the caller's commit; the outbox hashes and delivers it (./outbox.ts). */
  audit(kind: AuditKind, action: string, outcome: AuditOutcome, code: string | null, detail: unknown): void {
    const pcb = this.mustPcb();
    const n = this.store.deliveries.nextAuditSeq();
    const record: AuditRecord = { id: `${pcb.pid}:${n}`, tenant: pcb.tenant, pid: pcb.pid, at: this.now, kind, action, outcome, code, detail: preview(detail) ?? null };
    this.store.deliveries.appendAudit(n, JSON.stringify(record));
  }

  send(message: OutboxMessage): void {
    this.store.deliveries.enqueue(message.kind, message);
  }

  /**
   * Save a PCB and mark the process table's row stale. The row is written once per outbox delivery
   * from the PCB as it is then, not once per change: `ps` needs the latest state, not every state.
   */
  save(pcb: Pcb): void {
    this.store.savePcb(pcb);
    this.store.setMeta(META.tableDirty, true);
  }

  /** Apply a lifecycle event, save, and record it. Throws KernelError(ESTATE) if illegal. */
  apply(event: TransitionEvent): Pcb {
    const before = this.mustPcb();
    const r = transition(before, event, this.now);
    if (!r.ok) throw KernelError.fromValue(r.error);
    this.save(r.value);
    this.emit('state', { from: before.state, to: r.value.state, event: event.type });
    return r.value;
  }

  tryApply(event: TransitionEvent): Result<Pcb> {
    const before = this.mustPcb();
    const r = transition(before, event, this.now);
    if (!r.ok) return r;
    this.save(r.value);
    this.emit('state', { from: before.state, to: r.value.state, event: event.type });
    return r;
  }

  // --- lifecycle (./lifecycle.ts) ---------------------------------------------------------------------

  spawn(spec: SpawnSpec): Result<{ pcb: Pcb; created: boolean }> {
    return lifecycle.spawn(this, spec);
  }

  listNew(reads: readonly Statement[]): Promise<D1Result[] | null> {
    return lifecycle.listNew(this, reads);
  }

  signal(sig: Signal, from: string, cascade = false): Result<Pcb> {
    return lifecycle.signal(this, sig, from, cascade);
  }

  /** Who sent a pending SIGTERM, if one is pending. */
  termPending(): string | undefined {
    return termState(this)?.from;
  }

  /** At a step boundary: who terminated the process if it must end now (./signals.ts). */
  termAtStepBoundary(): string | null {
    return termAtStepBoundary(this);
  }

  /** Between syscalls: who terminated the process if its grace period is over. */
  termOverdue(): string | null {
    return termOverdue(this);
  }

  exit(status: ExitStatus): void {
    lifecycle.exit(this, status);
  }

  childExited(childPid: string, exit: ExitStatus): { reap: boolean } {
    return lifecycle.childExited(this, childPid, exit);
  }

  recheckWait(tellChild = true): boolean {
    return lifecycle.recheckWait(this, tellChild);
  }

  reap(by: string): Result<Pcb> {
    return lifecycle.reap(this, by);
  }

  wake(): void {
    lifecycle.wake(this);
  }

  completeEntry(row: JournalRow, result: SyscallResult, refused?: 'refused'): void {
    lifecycle.completeEntry(this, row, result, refused);
  }

  // --- approvals (./approvals.ts) ---------------------------------------------------------------------

  decideApproval(input: ApprovalDecision): Promise<Result<Pcb>> {
    return decideApproval(this, input);
  }

  addGrant(grant: Grant, by: string): void {
    addGrant(this, grant, by);
  }

  /** Forget everything cached from storage (src/checkpoints rewrote it). Part of the caller's commit. */
  reload(): void {
    this.store.reload();
    this.fs.reset();
    this.mailbox.reset();
    this.#index = null;
  }

  /** Release all storage (the process is removed). */
  async destroy(): Promise<void> {
    await this.store.destroy();
    this.fs.reset();
    this.mailbox.reset();
    this.#alarm.forget();
    this.#index = null;
  }

  // --- timers and the alarm (./alarm.ts) --------------------------------------------------------------

  /** A fresh instance starts: resume a step its predecessor left open, and re-arm. */
  recover(): Promise<void> {
    return this.#alarm.recover();
  }

  rearm(): Promise<void> {
    return this.#alarm.rearm();
  }

  fireTimers(): boolean {
    return this.#alarm.fireTimers();
  }

  onAlarm(runSlice: () => Promise<void>): Promise<void> {
    return this.#alarm.onAlarm(runSlice);
  }

  // --- the outbox (./outbox.ts) -----------------------------------------------------------------------

  settle(): Promise<void> {
    return this.#outbox.settle();
  }

  flush(): Promise<void> {
    return this.#outbox.flush();
  }

  flushTable(reads: readonly Statement[] = []): Promise<D1Result[]> {
    return this.#outbox.flushTable(reads);
  }

  deliverNow(kind: OutboxMessage['kind']): Promise<void> {
    return this.#outbox.deliverNow(kind);
  }
}
