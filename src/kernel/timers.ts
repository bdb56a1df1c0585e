/**
 * Timers, fault backoff and quota checks: the clock-driven decisions of the step loop, pure.
 *
 * A Durable Object has one alarm. A process needs several timers (run the next slice, wake from
 * sleep, time out a wait, retry the outbox, back off after a fault), so they live in a small table
 * keyed by purpose, and the alarm is always set to the earliest one. Setting a timer with a key that
 * exists replaces it, so re-arming is idempotent and a restart can never duplicate a schedule.
 */
import type { ExitStatus, Pcb, ProcessState } from './pcb.ts';

/** `term`: the end of a SIGTERM grace period (src/process/signals.ts). */
export const TIMER_KINDS = ['run', 'wake', 'wait_timeout', 'outbox', 'fault', 'term'] as const;
export type TimerKind = (typeof TIMER_KINDS)[number];

export interface Timer {
  readonly kind: TimerKind;
  readonly fire_at: number;
}

/** The earliest timer, or null when there is none (the process is blocked with no deadline, or done). */
export function earliest(timers: readonly Timer[]): Timer | null {
  let best: Timer | null = null;
  for (const t of timers) if (best === null || t.fire_at < best.fire_at) best = t;
  return best;
}

/**
 * The timers a process in `state` can act on. A stopped or exited process only delivers its outbox;
 * a sleeping one waits for its wake-up, a waiting one for its timeout. A running process holds a
 * `run` lease: if the object dies mid-step, the lease fires and the step resumes from the journal.
 */
export function armable(state: ProcessState, timers: readonly Timer[]): Timer[] {
  const allowed = ARMABLE[state];
  return timers.filter((t) => allowed.includes(t.kind));
}

const ARMABLE: Readonly<Record<ProcessState, readonly TimerKind[]>> = {
  ready: ['run', 'outbox', 'fault', 'term'],
  running: ['run', 'outbox', 'fault', 'term'],
  sleeping: ['wake', 'outbox', 'fault', 'term'],
  waiting: ['wait_timeout', 'outbox', 'fault', 'term'],
  stopped: ['outbox'],
  zombie: ['outbox'],
  terminated: ['outbox'],
};

/** How long a step may run before its lease fires and the step is presumed dead and resumed. */
export const STEP_LEASE_MS = 15 * 60 * 1000;

/** Timers due at `now`, in firing order. */
export function due(timers: readonly Timer[], now: number): Timer[] {
  return timers.filter((t) => t.fire_at <= now).sort((a, b) => a.fire_at - b.fire_at);
}

/** Consecutive failed LLM calls (429, 5xx, timeouts) before the process gives up. */
export const MAX_LLM_ATTEMPTS = 6;

/**
 * Delay before retrying a failed LLM call: the provider's retry-after when it gave one (never less),
 * else 1 s, 2 s, 4 s … capped at 5 min, plus up to 25% jitter so parked processes spread out.
 */
export function llmRetryDelayMs(attempt: number, retryAfterMs: number | null, random: () => number): number {
  const backoff = Math.min(1000 * 2 ** Math.max(0, attempt - 1), 300_000);
  const base = retryAfterMs === null ? backoff : Math.max(retryAfterMs, 0);
  return Math.round(base + Math.min(base, 60_000) * 0.25 * random());
}

/** How many consecutive faulted alarm runs a process survives before it is ended with EFAULT. */
export const MAX_FAULTS = 5;

/**
 * Delay before the next try after `faults` consecutive faults: 2 s, 4 s, 8 s … capped at 5 min,
 * with up to 20% jitter from the injected `random` so a fleet of failing processes does not retry in step.
 */
export function faultBackoffMs(faults: number, random: () => number): number {
  const base = Math.min(2000 * 2 ** Math.max(0, faults - 1), 300_000);
  return Math.round(base * (1 + 0.2 * random()));
}

/**
 * Quotas are checked at step boundaries. Returns the exit status that ends the process, or null
 * while it is within every quota.
 */
export function quotaExceeded(pcb: Pcb, now: number): ExitStatus | null {
  const { quotas, usage } = pcb;
  if (usage.steps >= quotas.max_steps) {
    return { code: 'EQUOTA', reason: `max_steps quota of ${quotas.max_steps} steps reached` };
  }
  const tokens = usage.prompt_tokens + usage.completion_tokens;
  if (tokens >= quotas.max_tokens) {
    return { code: 'EQUOTA', reason: `max_tokens quota of ${quotas.max_tokens} tokens reached (used ${tokens})` };
  }
  const wallSeconds = (now - pcb.created_at) / 1000;
  if (wallSeconds >= quotas.max_wall_seconds) {
    return { code: 'EQUOTA', reason: `max_wall_seconds quota of ${quotas.max_wall_seconds} s reached` };
  }
  return null;
}
