/**
 * The process state machine. Pure: it takes a PCB and an event and returns the next PCB or a typed
 * ESTATE error, so every lifecycle rule is in one table and unit-tested exhaustively.
 *
 *   ready ──dispatch──▶ running ──yield──▶ ready
 *                         │ sleep ▶ sleeping ─wake─▶ ready
 *                         │ block ▶ waiting  ─wake─▶ ready
 *   any live ──stop──▶ stopped ──cont──▶ (the state it was stopped from; running resumes as ready)
 *   any live ──exit──▶ zombie ──reap──▶ terminated
 */
import { KernelError, type Result, fail, ok } from './errors.ts';
import type { ExitStatus, Pcb, ProcessState, Wait } from './pcb.ts';

export type TransitionEvent =
  | { readonly type: 'dispatch' }
  | { readonly type: 'yield' }
  | { readonly type: 'sleep' }
  | { readonly type: 'block'; readonly wait: Wait }
  | { readonly type: 'wake' }
  | { readonly type: 'stop' }
  | { readonly type: 'cont' }
  | { readonly type: 'exit'; readonly status: ExitStatus }
  | { readonly type: 'reap' };

export type TransitionType = TransitionEvent['type'];

/** From which states each event is legal. */
export const LEGAL_FROM: Readonly<Record<TransitionType, readonly ProcessState[]>> = {
  dispatch: ['ready'],
  yield: ['running'],
  sleep: ['running'],
  block: ['running'],
  wake: ['sleeping', 'waiting'],
  stop: ['ready', 'running', 'sleeping', 'waiting'],
  cont: ['stopped'],
  exit: ['ready', 'running', 'sleeping', 'waiting', 'stopped'],
  reap: ['zombie'],
};

function target(from: ProcessState, event: TransitionEvent, stoppedFrom: ProcessState | null): ProcessState {
  switch (event.type) {
    case 'dispatch':
      return 'running';
    case 'yield':
    case 'wake':
      return 'ready';
    case 'sleep':
      return 'sleeping';
    case 'block':
      return 'waiting';
    case 'stop':
      return 'stopped';
    case 'cont':
      // A process stopped mid-step resumes as ready: the step loop picks up its journal where it left off.
      return stoppedFrom === null || stoppedFrom === 'running' ? 'ready' : stoppedFrom;
    case 'exit':
      return 'zombie';
    case 'reap':
      return 'terminated';
  }
  // Exhaustiveness: TypeScript proves this unreachable; at runtime it guards against bad data.
  throw new KernelError('EFAULT', `unknown transition from ${from}`);
}

/** Whether `event` is legal in state `from`. */
export function canTransition(from: ProcessState, type: TransitionType): boolean {
  return LEGAL_FROM[type].includes(from);
}

/**
 * Apply a lifecycle event to a PCB. Returns a new PCB (version + 1, updated_at = now) or ESTATE.
 * `now` is injected: kernel decisions never read the clock themselves.
 */
export function transition(pcb: Pcb, event: TransitionEvent, now: number): Result<Pcb> {
  if (!canTransition(pcb.state, event.type)) {
    return fail('ESTATE', `cannot ${event.type} process ${pcb.pid}: it is ${pcb.state}`, {
      pid: pcb.pid,
      state: pcb.state,
      event: event.type,
      legal_from: LEGAL_FROM[event.type],
    });
  }
  const state = target(pcb.state, event, pcb.stopped_from);
  const next: Pcb = { ...pcb, state, version: pcb.version + 1, updated_at: now };
  switch (event.type) {
    case 'block':
      next.wait = event.wait;
      break;
    case 'stop':
      next.stopped_from = pcb.state;
      break;
    case 'cont':
      next.stopped_from = null;
      break;
    case 'wake':
      next.wait = null;
      break;
    case 'exit':
      next.exit = event.status;
      next.wait = null;
      next.stopped_from = null;
      break;
    default:
      break;
  }
  return ok(next);
}
