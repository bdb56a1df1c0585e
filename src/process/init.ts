/**
 * The tenant's init process: the parent of orphans. When a process exits while it still has live
 * children, they are re-parented to init (their ppid changes and init lists them as children);
 * when an orphan exits, init reaps it at once, so no orphan stays a zombie.
 *
 * Init is created lazily, the first time a tenant needs it, at a pid derived from the tenant name
 * (the same tenant always finds the same init). It never runs an LLM step: it is a process in state
 * `waiting` for any child, with no timers, that only answers the kernel's notices. It cannot be
 * signalled or removed.
 */
import { DEFAULT_QUOTAS, type ExitStatus, type Pcb, ZERO_USAGE } from '../kernel/pcb.ts';
import { childPid } from '../kernel/spawn.ts';
import type { ProcessCore } from './core.ts';
import { META } from './meta.ts';


/** The pid of a tenant's init process. */
export const initPid = (tenant: string): Promise<string> => childPid('init', tenant);

export const isInit = (rt: ProcessCore): boolean => rt.store.getMeta(META.initialized) === true;

/** Create the init process in this (empty) object. */
export function createInit(rt: ProcessCore, pid: string, tenant: string): Pcb {
  const now = rt.now;
  rt.store.transaction(() => {
    const pcb: Pcb = {
      pid,
      tenant,
      ppid: null,
      name: 'init',
      image: 'init',
      task: 'Adopt orphaned processes and reap them when they exit.',
      state: 'waiting',
      priority: 0,
      model: { provider: 'scripted', model: 'scripted' },
      capabilities: [],
      quotas: DEFAULT_QUOTAS,
      max_context_tokens: 1000,
      usage: ZERO_USAGE,
      wait: { reason: 'child', pid: null, deadline: null },
      stopped_from: null,
      exit: null,
      created_at: now,
      updated_at: now,
      version: 1,
    };
    rt.save(pcb);
    rt.store.setMeta(META.initialized, true);
    rt.emit('spawned', { pid, ppid: null, name: 'init', image: 'init' });
    rt.audit('lifecycle', 'spawn', 'ok', null, { name: 'init', image: 'init', init: true });
  });
  return rt.mustPcb();
}

/** Take an orphan as a child (idempotent). */
export function adopt(rt: ProcessCore, child: string, name: string, from: string): void {
  rt.store.transaction(() => {
    if (rt.store.children.get(child)) return;
    rt.store.children.add(child, name, `adopted/${child}`, rt.now);
    rt.emit('adopted', { pid: child, from });
  });
}

/** An orphan exited: reap it now. */
export function initChildExited(rt: ProcessCore, child: string, exit: ExitStatus): { reap: boolean } {
  rt.store.transaction(() => {
    if (rt.store.children.get(child)?.status === 'live') {
      rt.store.children.setStatus(child, 'reaped', JSON.stringify(exit));
      rt.emit('child_exited', { pid: child, exit, reaped: true });
    }
  });
  return { reap: true };
}

/** This process's parent exited: init is its parent now (inside no commit; makes its own). */
export function reparent(rt: ProcessCore, init: string, oldParent: string): void {
  const pcb = rt.pcb();
  if (!pcb || pcb.ppid !== oldParent) return;
  rt.store.transaction(() => {
    rt.save({ ...pcb, ppid: init, version: pcb.version + 1, updated_at: rt.now });
    rt.emit('reparented', { from: oldParent, to: init });
  });
}
