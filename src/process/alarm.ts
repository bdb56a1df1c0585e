/**
 * The timer interrupt: one alarm per object, pointed at the earliest timer the process's state can
 * act on (src/kernel/timers.ts), re-armed on every entry, and the alarm run itself, whose faults are
 * counted before the work starts and retried with backoff, bounded by MAX_FAULTS.
 */
import { type ErrorValue, toErrorValue } from '../kernel/errors.ts';
import { LIVE_STATES } from '../kernel/pcb.ts';
import { MAX_FAULTS, armable, due, earliest, faultBackoffMs } from '../kernel/timers.ts';
import { settleApproval } from './approvals.ts';
import type { ProcessCore } from './core.ts';
import { termState } from './signals.ts';
import { META } from './meta.ts';

/** Meta key: consecutive faulted alarm runs. */

export class ProcessAlarm {
  readonly #rt: ProcessCore;
  /** The alarm as last set (undefined: not read yet). This object is its storage's only writer. */
  #armedAt: number | null | undefined;

  constructor(rt: ProcessCore) {
    this.#rt = rt;
  }

  /** The process's storage was released. */
  forget(): void {
    this.#armedAt = null;
  }
  /**
   * A fresh instance of this object starts. A Durable Object runs in one place at a time, so a new
   * instance proves its predecessor is gone: a step it left `running` is dead, and resumes now (the
   * next alarm yields it and dispatches the journal's open entries), not when its `run` lease
   * would have expired. Exactly-once still comes from the journal. A delivery it left undone is
   * due now too: rows are committed to the outbox without a timer (the entry point that commits
   * them delivers them before it returns), so a predecessor that died in between leaves messages,
   * a child's exit or audit records that nothing else would deliver while the process is blocked
   * or has exited. Then the alarm is re-armed, so a restart never loses a schedule.
   */
  async recover(): Promise<void> {
    const pcb = this.#rt.pcb();
    // No process, nothing to arm: a new object (about to be spawned) has no alarm either, so it is
    // not read. (An alarm left over without a PCB would only fire into onAlarm, which ignores it.)
    if (!pcb) {
      this.#armedAt ??= null;
      return;
    }
    if (pcb.state === 'running') {
      const run = this.#rt.store.timers().find((t) => t.kind === 'run');
      if (!run || run.fire_at > this.#rt.now) this.#rt.store.setTimer('run', this.#rt.now);
    }
    const store = this.#rt.store;
    if (pcb && !store.timers().some((t) => t.kind === 'outbox') && (store.deliveries.owed() > 0 || store.getMeta(META.tableDirty) === true)) store.setTimer('outbox', this.#rt.now);
    await this.rearm();
  }

  /** Point the alarm at the earliest timer the current state can act on. */
  async rearm(): Promise<void> {
    const pcb = this.#rt.pcb();
    const next = pcb ? earliest(armable(pcb.state, this.#rt.store.timers())) : null;
    const at = next?.fire_at ?? null;
    if (this.#armedAt === undefined) this.#armedAt = await this.#rt.deps.storage.getAlarm();
    if (at === this.#armedAt) return;
    if (at === null) await this.#rt.deps.storage.deleteAlarm();
    else await this.#rt.deps.storage.setAlarm(at);
    this.#armedAt = at;
  }

  /**
   * Fire due timers. Returns true when the process is ready to run a slice.
   *
   * The alarm is the timer interrupt: when it fires, the earliest armed timer is due by definition,
   * even if the clock reads a little earlier (the platform never fires early; a test that drives the
   * alarm with runDurableObjectAlarm is a time jump). Later timers fire only once the clock reaches them.
   */
  fireTimers(): boolean {
    const pcb = this.#rt.mustPcb();
    const armed = armable(pcb.state, this.#rt.store.timers());
    const now = Math.max(this.#rt.now, earliest(armed)?.fire_at ?? 0);
    for (const timer of due(armed, now)) {
      this.#rt.store.transaction(() => {
        this.#rt.store.clearTimer(timer.kind);
        const current = this.#rt.mustPcb();
        if (timer.kind === 'wake' && current.state === 'sleeping') {
          const entry = this.#rt.store.blockedEntry();
          if (entry) this.#rt.completeEntry(entry, { ok: true, value: { slept_seconds: (JSON.parse(entry.args) as { args: { seconds: number } }).args.seconds } });
          this.#rt.wake();
        } else if (timer.kind === 'wait_timeout' && current.state === 'waiting') {
          const entry = this.#rt.store.blockedEntry();
          if (current.wait?.reason === 'approval' && current.wait.approval_id) {
            settleApproval(this.#rt, current.wait.approval_id, 'expired', null, 'the approval request expired before anyone decided', 'kernel');
            if (entry) this.#rt.completeEntry(entry, { ok: false, error: { code: 'EPERM', message: 'the approval request expired before an operator decided; the call was not made' } });
          } else if (entry) {
            const what = current.wait?.reason === 'message' ? 'no matching message arrived before the timeout' : 'wait timed out before a child exited';
            this.#rt.completeEntry(entry, { ok: false, error: { code: 'ETIMEDOUT', message: what } });
          }
          this.#rt.wake();
        } else if (timer.kind === 'term' && LIVE_STATES.has(current.state)) {
          const term = termState(this.#rt);
          this.#rt.exit({ code: 'SIGTERM', reason: `terminated by ${term?.from ?? 'a signal'}; the grace period ran out` });
        }
      });
    }
    return this.#rt.mustPcb().state === 'ready';
  }

  /**
   * One alarm run. `runSlice` is the step loop. Faults are caught, counted and retried with backoff;
   * the count is written first, so a run that dies without reaching the catch is counted too.
   */
  async onAlarm(runSlice: () => Promise<void>): Promise<void> {
    this.#armedAt = null; // the alarm that woke us is spent
    const pcb = this.#rt.pcb();
    if (!pcb) return;
    const faults = (this.#rt.store.getMeta(META.faults) ?? 0) + 1;
    this.#rt.store.setMeta(META.faults, faults);
    try {
      if (LIVE_STATES.has(pcb.state)) {
        if (faults > MAX_FAULTS) {
          const last = this.#rt.store.getMeta(META.lastFault);
          this.#rt.store.transaction(() => this.#rt.exit({ code: 'EFAULT', reason: `the process faulted ${MAX_FAULTS} times in a row${last ? `; last: ${last.message}` : ''}` }));
        } else {
          // A PCB left `running` means the previous run died mid-step: resume from the journal.
          if (pcb.state === 'running') this.#rt.store.transaction(() => this.#rt.apply({ type: 'yield' }));
          if (this.fireTimers()) await runSlice();
        }
      }
      this.#rt.store.setMeta(META.faults, 0);
    } catch (e) {
      const error = toErrorValue(e);
      this.#rt.store.transaction(() => {
        this.#rt.store.setMeta(META.lastFault, error);
        this.#rt.emit('fault', { attempt: faults, max: MAX_FAULTS, error });
        if (this.#rt.mustPcb().state === 'running') this.#rt.apply({ type: 'yield' });
        this.#rt.store.setTimer('fault', this.#rt.now + faultBackoffMs(faults, this.#rt.deps.random));
      });
    }
    await this.#rt.settle();
  }
}
