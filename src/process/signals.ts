/**
 * SIGTERM with a grace period. A terminated process is not cut off mid-thought: it finishes the
 * step it is in (a blocked call is interrupted with EINTR), then gets exactly one more step, which
 * opens with a notice saying it is being terminated, to clean up (save state, tell its peers). At
 * the next step boundary it ends with code SIGTERM, unless it exited by itself first. A `term` timer
 * ends it regardless when the grace period runs out, so a process cannot stall its own termination.
 *
 * The pending termination lives in the process's meta, so it survives restarts.
 */
import type { ProcessCore } from './core.ts';
import { META, type TermState } from './meta.ts';

export const DEFAULT_TERM_GRACE_MS = 30_000;

export type { TermState };

/** Record a SIGTERM (inside the caller's commit). A second SIGTERM changes nothing. */
export function beginTermination(rt: ProcessCore, from: string, graceMs: number): void {
  if (termState(rt)) return;
  const pcb = rt.mustPcb();
  const deadline = rt.now + graceMs;
  rt.store.setMeta(META.termPending, { from, deadline, cleanup: false } satisfies TermState);
  rt.store.setTimer('term', deadline);
  if (pcb.state === 'sleeping' || pcb.state === 'waiting') {
    const entry = rt.store.blockedEntry();
    if (entry) rt.completeEntry(entry, { ok: false, error: { code: 'EINTR', message: `interrupted by SIGTERM from ${from}` } });
    rt.wake();
  } else if (pcb.state === 'ready') {
    rt.store.setTimer('run', rt.now);
  }
}

export function termState(rt: ProcessCore): TermState | null {
  const v = rt.store.getMeta(META.termPending);
  if (v === undefined || v === null) return null;
  // Written by an older kernel as the sender's name: treat it as a termination with no clean-up left.
  if (typeof v === 'string') return { from: v, deadline: rt.now, cleanup: true };
  return v;
}

/**
 * At a step boundary (before a new LLM call): null to go on, or who terminated the process if it
 * must end now. The first boundary after a SIGTERM hands out the clean-up step and its notice.
 */
export function termAtStepBoundary(rt: ProcessCore): string | null {
  const term = termState(rt);
  if (!term) return null;
  if (term.cleanup || rt.now >= term.deadline) return term.from;
  rt.store.transaction(() => {
    rt.store.setMeta(META.termPending, { ...term, cleanup: true } satisfies TermState);
    const step = rt.mustPcb().usage.steps + 1;
    const seconds = Math.max(0, Math.round((term.deadline - rt.now) / 1000));
    rt.addPage(step, { kind: 'notice', text: `SIGTERM from ${term.from}: this process is being terminated. This is your last step: clean up (save what matters, tell whoever depends on you), then exit. It ends after this step, or in ${seconds} s at the latest.` });
    rt.emit('term_cleanup', { from: term.from, deadline: term.deadline });
  });
  return null;
}

/** Whether the grace period is over (checked between syscalls, so a long step cannot outlive it). */
export function termOverdue(rt: ProcessCore): string | null {
  const term = termState(rt);
  return term && rt.now >= term.deadline ? term.from : null;
}
