/**
 * Policy: what each syscall needs, and which calls are high-risk. Pure.
 *
 * `requirementFor` maps a validated call to the capability it needs (null: every process may make
 * it — exit, sleep, yield, wait, request_capability, recv, unsubscribe). `isHighRisk` names the calls that, while
 * untrusted content is in the process's working set, need a human's approval whatever the grants
 * say: anything that reaches the network (a GET can carry data out in its URL as well as a POST),
 * starting children (they inherit capabilities), signalling, and — as IPC and tools arrive —
 * sending outside the process group, registering tools, and MCP tools that do not declare
 * themselves read-only. The kernel enforces this; no prompt can
 * talk it out of it.
 */
import type { Requirement } from './capabilities.ts';
import { normalizePath } from './paths.ts';
import type { ValidCall } from './syscalls.ts';

export interface PolicyContext {
  /** Children this process has spawned so far. */
  readonly children_spawned: number;
}

export function requirementFor(call: ValidCall, ctx: PolicyContext): Requirement | null {
  switch (call.name) {
    case 'fs_read':
    case 'fs_list':
    case 'fs_write': {
      const p = normalizePath((call.args as { path: string }).path);
      // An invalid path needs no capability: the handler refuses it with EINVAL/EPERM anyway.
      if (!p.ok) return null;
      return { domain: 'fs', path: p.value, access: call.name === 'fs_write' ? 'w' : 'r' };
    }
    case 'net_fetch': {
      const a = call.args as { url: string; method: string };
      let host: string;
      try {
        host = new URL(a.url).hostname;
      } catch {
        return null;
      }
      return { domain: 'net', host, method: a.method };
    }
    case 'spawn':
      return { domain: 'spawn', count: ctx.children_spawned + 1 };
    case 'kill':
      return { domain: 'proc', right: 'signal' };
    case 'checkpoint':
      return { domain: 'proc', right: 'checkpoint' };
    case 'fork':
      return { domain: 'proc', right: 'fork' };
    case 'send':
      return { domain: 'ipc', right: 'send', target: `pid/${(call.args as { to: string }).to}` };
    case 'publish':
    case 'subscribe':
      return { domain: 'ipc', right: call.name, target: `topic/${(call.args as { topic: string }).topic}` };
    case 'mem_search':
    case 'mem_write':
    case 'mem_delete':
      return { domain: 'mem', namespace: (call.args as { namespace?: string }).namespace ?? 'self', access: call.name === 'mem_search' ? 'r' : 'w' };
    case 'tool_register':
      return { domain: 'tool', right: 'register' };
    case 'tool_call':
      return { domain: 'tool', right: 'call', name: (call.args as { name: string }).name };
    case 'mcp_call': {
      const a = call.args as { server: string; tool: string };
      return { domain: 'mcp', server: a.server, tool: a.tool };
    }
    default:
      return null;
  }
}

const HIGH_RISK: ReadonlySet<string> = new Set(['net_fetch', 'spawn', 'fork', 'kill', 'send', 'publish', 'tool_register']);

/** Everything a call needs: net_fetch with save_to also writes a file. */
export function requirementsFor(call: ValidCall, ctx: PolicyContext): Requirement[] {
  const first = requirementFor(call, ctx);
  const out = first ? [first] : [];
  if (call.name === 'net_fetch') {
    const saveTo = (call.args as { save_to?: string }).save_to;
    if (saveTo !== undefined) {
      const p = normalizePath(saveTo);
      if (p.ok) out.push({ domain: 'fs', path: p.value, access: 'w' });
    }
  }
  return out;
}

export function isHighRisk(call: ValidCall): boolean {
  // An MCP tool that may change something (no readOnlyHint) is an effect on another system: high-risk.
  // A read-only one goes to a server the tenant registered, and its result is tainted in turn.
  if (call.name === 'mcp_call') return (call.args as { kind: string }).kind !== 'read';
  return HIGH_RISK.has(call.name);
}

/** Canonical JSON: keys sorted at every level, so equal values always serialise to equal bytes. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** The hash an approval is bound to: the exact syscall and its canonical arguments. */
export function callHash(name: string, args: unknown): Promise<string> {
  return sha256Hex(canonicalJson({ name, args }));
}
