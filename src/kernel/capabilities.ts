/**
 * Capabilities: what a process may do, as data. Pure: parsing, matching a syscall's requirement,
 * deciding between grants. What a child may inherit is attenuation.ts; the glob rules, globs.ts.
 *
 * A capability names a right on a resource:
 *   fs:<path-glob>:<r|w|rw>          fs:/home/**:rw     files (the process's own filesystem)
 *   net:<host-glob>[:<METHODS>]      net:api.github.com:GET   net:*.example.com:GET,POST   net:*
 *   spawn[:max=<n>]                  spawn:max=5        start children (at most n in its lifetime)
 *   proc:signal                      signal its own children
 *   proc:checkpoint | proc:fork      checkpoint itself, fork itself from a checkpoint (docs/checkpoints.md)
 *   ipc:send:<target-glob>           ipc:send:pid/*     (IPC)
 *   ipc:publish:<topic-glob>         ipc:publish:topic/alerts
 *   ipc:subscribe:<topic-glob>
 *   tool:register | tool:call:<name-glob>               (JIT tools)
 *   mem:<namespace-glob>:<r|w|rw>    mem:self:rw  mem:team/*:r   long-term memory (src/kernel/memory.ts)
 *   mcp:<server-glob>:<tool-glob>    mcp:github:search_*  mcp:docs:*   tools of registered MCP servers (src/mcp)
 * Globs: `*` matches within one path segment (or host label), `**` matches anything.
 *
 * A grant adds an effect (allow | deny | ask), an optional expiry and an optional use count. When
 * several grants match one request: deny wins; then a standing approval ("approved always"); then
 * ask (a human must approve); then allow. No match is EPERM, naming the capability that is needed.
 */
import { z } from 'zod';
import { type Result, fail, ok } from './errors.ts';
import { globMatch } from './globs.ts';

export const EFFECTS = ['allow', 'deny', 'ask'] as const;
export type Effect = (typeof EFFECTS)[number];

export const GrantSchema = z
  .object({
    cap: z.string().min(3).max(512),
    effect: z.enum(EFFECTS).default('allow'),
    expires_at: z.number().int().nullable().optional().describe('epoch ms after which the grant no longer applies'),
    uses: z.number().int().min(1).nullable().optional().describe('how many times it may be used (1 = one-shot)'),
    /** Set on grants that came from an "approve always" decision: they outrank `ask`. */
    approved: z.boolean().optional(),
  })
  .strict();
export type Grant = z.infer<typeof GrantSchema>;
/** Grants as accepted from users: a bare string means an allow grant with no limits. */
export const GrantInputSchema = z.union([z.string().min(3).max(512), GrantSchema]);
export type GrantInput = z.infer<typeof GrantInputSchema>;

export const PROC_RIGHTS = ['signal', 'checkpoint', 'fork'] as const;
export type ProcRight = (typeof PROC_RIGHTS)[number];
const isProcRight = (s: string | undefined): s is ProcRight => (PROC_RIGHTS as readonly (string | undefined)[]).includes(s);

export type Capability =
  | { readonly domain: 'fs'; readonly path: string; readonly read: boolean; readonly write: boolean }
  | { readonly domain: 'net'; readonly host: string; readonly methods: readonly string[] | '*' }
  | { readonly domain: 'spawn'; readonly max: number | null }
  | { readonly domain: 'proc'; readonly right: ProcRight }
  | { readonly domain: 'ipc'; readonly right: 'send' | 'publish' | 'subscribe'; readonly target: string }
  | { readonly domain: 'tool'; readonly right: 'register' }
  | { readonly domain: 'tool'; readonly right: 'call'; readonly name: string }
  | { readonly domain: 'mem'; readonly namespace: string; readonly read: boolean; readonly write: boolean }
  | { readonly domain: 'mcp'; readonly server: string; readonly tool: string };

/** What one syscall needs. */
export type Requirement =
  | { readonly domain: 'fs'; readonly path: string; readonly access: 'r' | 'w' }
  | { readonly domain: 'net'; readonly host: string; readonly method: string }
  | { readonly domain: 'spawn'; readonly count: number }
  | { readonly domain: 'proc'; readonly right: ProcRight }
  | { readonly domain: 'ipc'; readonly right: 'send' | 'publish' | 'subscribe'; readonly target: string }
  | { readonly domain: 'tool'; readonly right: 'register' }
  | { readonly domain: 'tool'; readonly right: 'call'; readonly name: string }
  | { readonly domain: 'mem'; readonly namespace: string; readonly access: 'r' | 'w' }
  | { readonly domain: 'mcp'; readonly server: string; readonly tool: string };

/** An MCP server's name as registered, and the glob of it in a capability. */
export const MCP_SERVER_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const MCP_SERVER_GLOB = /^[a-z0-9*][a-z0-9_*-]{0,31}$/;
/** MCP tool names (the specification allows letters, digits, "_", "-", "." and "/"), and globs of them. */
export const MCP_TOOL_NAME = /^[A-Za-z0-9_./-]{1,128}$/;
const MCP_TOOL_GLOB = /^[A-Za-z0-9_./*-]{1,128}$/;

/** MCP tool names are flat (a "/" or "." in one is not a level): in a tool glob every "*" matches any run of characters. */
export const anyRun = (toolGlob: string): string => toolGlob.replace(/\*+/g, '**');

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

export function parseCapability(spec: string): Result<Capability> {
  const bad = (why: string) => fail('EINVAL', `invalid capability "${spec}": ${why}`, { capability: spec });
  const [domain, ...rest] = spec.split(':');
  switch (domain) {
    case 'fs': {
      if (rest.length !== 2) return bad('expected fs:<path-glob>:<r|w|rw>');
      const [path = '', rights = ''] = rest;
      if (!path.startsWith('/')) return bad('the path glob must start with "/"');
      if (!/^(r|w|rw|wr)$/.test(rights)) return bad('rights must be r, w or rw');
      return ok({ domain: 'fs', path, read: rights.includes('r'), write: rights.includes('w') });
    }
    case 'net': {
      if (rest.length < 1 || rest.length > 2 || !rest[0]) return bad('expected net:<host-glob>[:<METHODS>]');
      const host = rest[0].toLowerCase();
      if (!/^[a-z0-9*.-]+(:\d+)?$/.test(host)) return bad('the host glob may use letters, digits, ".", "-" and "*"');
      const m = rest[1];
      if (m === undefined || m === '*') return ok({ domain: 'net', host, methods: '*' });
      const methods = m.split(',').map((x) => x.trim().toUpperCase());
      if (methods.some((x) => !METHODS.includes(x))) return bad(`methods must be among ${METHODS.join(', ')} or *`);
      return ok({ domain: 'net', host, methods });
    }
    case 'spawn': {
      if (rest.length === 0) return ok({ domain: 'spawn', max: null });
      const match = rest.length === 1 ? /^max=(\d{1,6})$/.exec(rest[0] ?? '') : null;
      if (!match) return bad('expected spawn or spawn:max=<n>');
      return ok({ domain: 'spawn', max: Number(match[1]) });
    }
    case 'proc':
      return rest.length === 1 && isProcRight(rest[0]) ? ok({ domain: 'proc', right: rest[0] }) : bad(`expected proc:<${PROC_RIGHTS.join('|')}>`);
    case 'ipc': {
      const [right, target] = rest;
      if (rest.length !== 2 || (right !== 'send' && right !== 'publish' && right !== 'subscribe') || !target) return bad('expected ipc:<send|publish|subscribe>:<target-glob>');
      return ok({ domain: 'ipc', right, target });
    }
    case 'tool':
      if (rest.length === 1 && rest[0] === 'register') return ok({ domain: 'tool', right: 'register' });
      if (rest.length === 2 && rest[0] === 'call' && rest[1]) return ok({ domain: 'tool', right: 'call', name: rest[1] });
      return bad('expected tool:register or tool:call:<name-glob>');
    case 'mem': {
      if (rest.length !== 2) return bad('expected mem:<namespace-glob>:<r|w|rw>');
      const [namespace = '', rights = ''] = rest;
      if (!/^[a-z0-9*][a-z0-9._*/-]{0,63}$/.test(namespace)) return bad('the namespace glob may use lower-case letters, digits, ".", "_", "-", "/" and "*"');
      if (!/^(r|w|rw|wr)$/.test(rights)) return bad('rights must be r, w or rw');
      return ok({ domain: 'mem', namespace, read: rights.includes('r'), write: rights.includes('w') });
    }
    case 'mcp': {
      if (rest.length !== 2) return bad('expected mcp:<server-glob>:<tool-glob>');
      const [server = '', tool = ''] = rest;
      if (!MCP_SERVER_GLOB.test(server)) return bad('the server glob may use lower-case letters, digits, "_", "-" and "*"');
      if (!MCP_TOOL_GLOB.test(tool)) return bad('the tool glob may use letters, digits, "_", "-", ".", "/" and "*"');
      return ok({ domain: 'mcp', server, tool });
    }
    default:
      return bad('unknown domain; use fs, net, spawn, proc, ipc, tool, mem or mcp');
  }
}

export function normalizeGrant(input: GrantInput): Result<Grant> {
  const grant: Grant = typeof input === 'string' ? { cap: input, effect: 'allow' } : input;
  const parsed = parseCapability(grant.cap);
  return parsed.ok ? ok(grant) : parsed;
}

/** Does a capability grant a requirement? (Spawn limits are checked here against the count so far.) */
export function grants(cap: Capability, req: Requirement): boolean {
  if (cap.domain !== req.domain) return false;
  switch (req.domain) {
    case 'fs': {
      const c = cap as Extract<Capability, { domain: 'fs' }>;
      return (req.access === 'r' ? c.read : c.write) && (globMatch(c.path, req.path, '/') || (c.path.endsWith('/**') && req.path === c.path.slice(0, -3)));
    }
    case 'net': {
      const c = cap as Extract<Capability, { domain: 'net' }>;
      return (c.methods === '*' || c.methods.includes(req.method)) && (c.host === '*' || globMatch(c.host, req.host.toLowerCase(), '.'));
    }
    case 'spawn': {
      const c = cap as Extract<Capability, { domain: 'spawn' }>;
      return c.max === null || req.count <= c.max;
    }
    case 'proc':
      return (cap as Extract<Capability, { domain: 'proc' }>).right === req.right;
    case 'ipc': {
      const c = cap as Extract<Capability, { domain: 'ipc' }>;
      return c.right === req.right && globMatch(c.target, req.target, '/');
    }
    case 'tool': {
      const c = cap as Extract<Capability, { domain: 'tool' }>;
      if (c.right !== req.right) return false;
      return req.right === 'register' || globMatch((c as { name: string }).name, req.name, '/');
    }
    case 'mem': {
      const c = cap as Extract<Capability, { domain: 'mem' }>;
      return (req.access === 'r' ? c.read : c.write) && globMatch(c.namespace, req.namespace, '/');
    }
    case 'mcp': {
      const c = cap as Extract<Capability, { domain: 'mcp' }>;
      return globMatch(c.server, req.server, '/') && globMatch(anyRun(c.tool), req.tool, '/');
    }
  }
}

/** A requirement written as the capability that would grant exactly it (for EPERM messages and approvals). */
export function describeRequirement(req: Requirement): string {
  switch (req.domain) {
    case 'fs':
      return `fs:${req.path}:${req.access}`;
    case 'net':
      return `net:${req.host}:${req.method}`;
    case 'spawn':
      return `spawn:max=${req.count}`;
    case 'proc':
      return `proc:${req.right}`;
    case 'ipc':
      return `ipc:${req.right}:${req.target}`;
    case 'tool':
      return req.right === 'register' ? 'tool:register' : `tool:call:${req.name}`;
    case 'mem':
      return `mem:${req.namespace}:${req.access}`;
    case 'mcp':
      return `mcp:${req.server}:${req.tool}`;
  }
}

export type Decision =
  | { readonly decision: 'allow'; readonly grant: number }
  | { readonly decision: 'deny'; readonly grant: number | null; readonly needed: string }
  | { readonly decision: 'ask'; readonly grant: number; readonly needed: string };

/** A grant still in force: not expired, not used up. */
export const isLive = (g: Grant, now: number): boolean => (g.expires_at === null || g.expires_at === undefined || g.expires_at > now) && (g.uses === null || g.uses === undefined || g.uses > 0);

/** Decide a requirement against a process's grants. `grant` is the index of the deciding grant. */
export function decide(grantsList: readonly Grant[], req: Requirement, now: number): Decision {
  const needed = describeRequirement(req);
  const matching: { g: Grant; i: number }[] = [];
  grantsList.forEach((g, i) => {
    if (!isLive(g, now)) return;
    const cap = parseCapability(g.cap);
    if (cap.ok && grants(cap.value, req)) matching.push({ g, i });
  });
  const first = (pred: (g: Grant) => boolean) => matching.find((m) => pred(m.g));
  const deny = first((g) => g.effect === 'deny');
  if (deny) return { decision: 'deny', grant: deny.i, needed };
  const standing = first((g) => g.effect === 'allow' && g.approved === true);
  if (standing) return { decision: 'allow', grant: standing.i };
  const ask = first((g) => g.effect === 'ask');
  if (ask) return { decision: 'ask', grant: ask.i, needed };
  const allow = first((g) => g.effect === 'allow');
  if (allow) return { decision: 'allow', grant: allow.i };
  return { decision: 'deny', grant: null, needed };
}

/** Use a grant once: returns the grants with that grant's use count decremented (if it has one). */
export function consume(grantsList: readonly Grant[], index: number): Grant[] {
  return grantsList.map((g, i) => (i === index && typeof g.uses === 'number' ? { ...g, uses: g.uses - 1 } : g));
}
