/**
 * Test helpers: drive processes by explicit alarms (never by sleeping) and read them through the API.
 */
import { SELF, env, runDurableObjectAlarm } from 'cloudflare:test';
import type { Pcb } from '../../src/kernel/pcb.ts';

export const stubOf = (pid: string) => env.AGENT_PROCESS.get(env.AGENT_PROCESS.idFromName(pid));

/** The bootstrap admin token the test configuration sets (vitest.config.ts). */
export const ADMIN = { authorization: 'Bearer test-admin-token' };

export async function api<T = unknown>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: T; headers: Headers }> {
  const init: RequestInit = { method, headers: { ...ADMIN, ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  const res = await SELF.fetch(`http://agentos.test${path}`, init);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed as T, headers: res.headers };
}

export async function spawn(body: Record<string, unknown>): Promise<Pcb> {
  const r = await api<Pcb>('POST', '/v1/processes', body);
  if (r.status !== 201) throw new Error(`spawn failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export async function pcbOf(pid: string, headers: Record<string, string> = {}): Promise<Pcb> {
  const r = await api<Pcb>('GET', `/v1/processes/${pid}`, undefined, headers);
  if (r.status !== 200) throw new Error(`GET pcb failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Fire a process's alarm once (whenever it is set for). Returns whether an alarm was set. */
export const tick = (pid: string): Promise<boolean> => runDurableObjectAlarm(stubOf(pid));

/** Fire alarms until the process reaches one of `states`, at most `max` times. */
export async function runUntil(pid: string, states: readonly string[], max = 50, headers: Record<string, string> = {}): Promise<Pcb> {
  for (let i = 0; i < max; i++) {
    const pcb = await pcbOf(pid, headers);
    if (states.includes(pcb.state)) return pcb;
    if (!(await tick(pid))) return pcbOf(pid, headers);
  }
  return pcbOf(pid, headers);
}

export type Ev = { seq: number; type: string; data: Record<string, unknown> };

export async function eventsOf(pid: string): Promise<Ev[]> {
  const r = await api<{ events: Ev[] }>('GET', `/v1/processes/${pid}/events?limit=1000`);
  return r.body.events;
}

export async function fileOf(pid: string, path: string): Promise<string> {
  const r = await api<{ content: string }>('GET', `/v1/processes/${pid}/fs/${path}`);
  if (r.status !== 200) throw new Error(`read ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.content;
}

/**
 * Drive a process and its children until the process reaches one of `states`. Children's alarms
 * also fire by themselves, so whether a parent's wait blocks or finds its child already exited
 * depends on timing: tests assert outcomes (what wait returned), not that interleaving.
 */
export async function runTree(pid: string, states: readonly string[] = ['terminated'], max = 100): Promise<Pcb> {
  for (let i = 0; i < max; i++) {
    const pcb = await pcbOf(pid);
    if (states.includes(pcb.state)) return pcb;
    const kids = await api<{ processes: { pid: string; state: string }[] }>('GET', `/v1/processes?ppid=${pid}&limit=500`);
    for (const kid of kids.body.processes) if (kid.state !== 'terminated' && kid.state !== 'zombie') await tick(kid.pid);
    await tick(pid);
  }
  return pcbOf(pid);
}

/**
 * The children a process spawned, from its own event log. (`ps ?ppid=` stops listing them once the
 * parent has exited: orphans are re-parented to the tenant's init process.)
 */
export async function childrenOf(pid: string): Promise<string[]> {
  return (await eventsOf(pid)).filter((e) => e.type === 'syscall' && e.data.name === 'spawn' && e.data.ok === true).map((e) => (e.data.result as { pid: string }).pid);
}
