/**
 * The rules of restore and fork, as pure functions over plain data.
 *
 * Restore is forward-only. The process goes back to what it knew and held at the checkpoint, but
 * nothing the live timeline spent comes back: its version only increases, its usage counters (the
 * quotas' measure, and the step numbers, so journal keys, approval ids and child pids are never
 * reused) stay, and its grants are the live ones, further narrowed to those it already held then.
 * A grant revoked, used up or expired since the checkpoint stays so.
 *
 * A fork is a new process: its grants are the checkpoint's, each kept only if the parent still
 * holds something that covers it at fork time (the same attenuation as spawn; use-limited grants
 * are never copied, since copies would multiply their uses), narrowed further by what the caller
 * asks for. Its parent's denies and asks pass down.
 */
import { z } from 'zod';
import { attenuate } from '../kernel/attenuation.ts';
import type { Grant } from '../kernel/capabilities.ts';
import { type Result, ok } from '../kernel/errors.ts';
import type { Pcb } from '../kernel/pcb.ts';

const sameGrant = (a: Grant, b: Grant): boolean => a.cap === b.cap && a.effect === b.effect && (a.approved ?? false) === (b.approved ?? false);

/**
 * The grants after a restore: each live grant that matches one the checkpoint held (one for one),
 * with the live use count and expiry. Grants added since the checkpoint are dropped; the live
 * timeline's denies always stay (a restriction is never rolled back).
 */
export function restoreGrants(atCheckpoint: readonly Grant[], live: readonly Grant[]): Grant[] {
  const unmatched = [...atCheckpoint];
  const out: Grant[] = [];
  for (const g of live) {
    const i = unmatched.findIndex((c) => sameGrant(c, g));
    if (i >= 0) {
      unmatched.splice(i, 1);
      out.push(g);
    } else if (g.effect === 'deny') {
      out.push(g);
    }
  }
  return out;
}

/**
 * A fork's grants: the checkpoint's grants the parent still covers now (one by one; a grant it no
 * longer covers is dropped), or, when the caller names grants, exactly those, each covered by both
 * the parent now and the checkpoint (EPERM otherwise).
 */
export function forkGrants(atCheckpoint: readonly Grant[], parentNow: readonly Grant[], requested: readonly Grant[] | null, now: number): Result<Grant[]> {
  const base: Grant[] = [];
  for (const g of atCheckpoint) {
    if (g.effect === 'deny') {
      base.push(g);
      continue;
    }
    const one = attenuate(parentNow, [g], now);
    if (one.ok && one.value[0]) base.push(one.value[0]);
  }
  // Once more as a whole: the parent's denies and asks are appended and bind the fork too.
  const full = attenuate(parentNow, base, now);
  if (!full.ok || requested === null) return full;
  return attenuate(full.value, requested, now);
}

/** The PCB after a restore: the checkpoint's, with the live identity, usage, quotas and a newer version. */
export function restoredPcb(atCheckpoint: Pcb, live: Pcb, now: number): Pcb {
  return {
    ...atCheckpoint,
    pid: live.pid,
    tenant: live.tenant,
    ppid: live.ppid,
    usage: live.usage,
    quotas: live.quotas,
    capabilities: restoreGrants(atCheckpoint.capabilities, live.capabilities),
    created_at: live.created_at,
    updated_at: now,
    version: Math.max(live.version, atCheckpoint.version) + 1,
    ...(live.forked_from ? { forked_from: live.forked_from } : {}),
  };
}

/** Whether a process may be checkpointed now: never in the middle of a step or syscall. */
export function checkpointable(pcb: Pcb, startedCalls: number): { ok: true } | { ok: false; why: string } {
  if (pcb.state === 'running') return { ok: false, why: `process ${pcb.pid} is in the middle of a step; checkpoint it when the step ends` };
  if (startedCalls > 0) return { ok: false, why: `process ${pcb.pid} has a syscall under way; checkpoint it when the call completes` };
  return { ok: true };
}

/** Automatic checkpoints: every `every_steps` steps (0: never) and on SIGSTOP, keeping the newest `keep` automatic ones. */
export const AutoPolicySchema = z
  .object({
    every_steps: z.number().int().min(0).max(100_000).describe('take a checkpoint every this many steps (at the first step boundary after them); 0: never'),
    on_sigstop: z.boolean().describe('take a checkpoint when the process is stopped'),
    keep: z.number().int().min(1).max(100).describe('how many automatic checkpoints to keep (oldest removed first); taken-by-hand ones are kept until deleted'),
  })
  .strict();
export type AutoPolicy = z.infer<typeof AutoPolicySchema>;

/** The policy from defaults, an image's and a spawn request's partial settings (later wins). */
export function autoPolicyOf(...parts: (Partial<AutoPolicy> | undefined)[]): AutoPolicy {
  const out: Record<string, unknown> = { ...DEFAULT_AUTO };
  for (const p of parts) for (const [k, v] of Object.entries(p ?? {})) if (v !== undefined) out[k] = v;
  return out as AutoPolicy;
}

export const DEFAULT_AUTO: AutoPolicy = { every_steps: 0, on_sigstop: false, keep: 5 };

/** Whether an automatic checkpoint is due after `step`, the last one having been at `last`. */
export const autoDue = (policy: AutoPolicy, step: number, last: number): boolean => policy.every_steps > 0 && step - last >= policy.every_steps;

/** Which automatic checkpoints retention removes (oldest first), given them newest last. */
export function retention<T>(automatic: readonly T[], keep: number): T[] {
  return automatic.length > keep ? automatic.slice(0, automatic.length - keep) : [];
}

export interface TableDiff {
  readonly table: string;
  readonly chunks_added: number;
  readonly chunks_removed: number;
  readonly rows_before: number;
  readonly rows_after: number;
}

/** Diff two manifests' tables by chunk: what changed, and where. */
export function diffTables(a: readonly { name: string; rows: number; chunks: readonly string[] }[], b: readonly { name: string; rows: number; chunks: readonly string[] }[]): TableDiff[] {
  const names = [...new Set([...a.map((t) => t.name), ...b.map((t) => t.name)])].sort();
  const out: TableDiff[] = [];
  for (const name of names) {
    const x = a.find((t) => t.name === name);
    const y = b.find((t) => t.name === name);
    const xs = new Set(x?.chunks ?? []);
    const ys = new Set(y?.chunks ?? []);
    const added = [...ys].filter((h) => !xs.has(h)).length;
    const removed = [...xs].filter((h) => !ys.has(h)).length;
    if (added === 0 && removed === 0 && (x?.rows ?? 0) === (y?.rows ?? 0)) continue;
    out.push({ table: name, chunks_added: added, chunks_removed: removed, rows_before: x?.rows ?? 0, rows_after: y?.rows ?? 0 });
  }
  return out;
}
