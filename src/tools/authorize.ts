/**
 * What a tool may do through the broker and the egress proxy, decided with the kernel's own policy
 * code (requirementsFor + decide, the same functions the step loop's dispatcher uses). A tool has no
 * human in the loop: a grant marked `ask` does not let a tool act (the model can make the call itself
 * and be asked). Pure.
 */
import { type Grant, decide, describeRequirement } from '../kernel/capabilities.ts';
import { type Result, fail, ok } from '../kernel/errors.ts';
import { requirementsFor } from '../kernel/policy.ts';
import type { ValidCall } from '../kernel/syscalls.ts';

export function authorizeToolCall(grants: readonly Grant[], call: ValidCall, now: number): Result<null> {
  for (const req of requirementsFor(call, { children_spawned: 0 })) {
    const d = decide(grants, req, now);
    if (d.decision === 'allow') continue;
    const why = d.decision === 'ask' ? 'it needs a human approval, which a tool cannot ask for' : 'the caller holds no grant for it';
    return fail('EPERM', `${call.name} from a tool needs "${describeRequirement(req)}", and ${why}`, { needed: describeRequirement(req) });
  }
  return ok(null);
}

export function authorizeEgress(grants: readonly Grant[], url: string, method: string, now: number): Result<null> {
  let host: string;
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return fail('EPERM', `tools can only fetch http and https URLs, not ${u.protocol}`);
    host = u.hostname;
  } catch {
    return fail('EINVAL', 'not a URL');
  }
  const req = { domain: 'net', host, method: method.toUpperCase() } as const;
  const d = decide(grants, req, now);
  if (d.decision === 'allow') return ok(null);
  return fail('EPERM', `fetch from a tool needs "${describeRequirement(req)}"${d.decision === 'ask' ? ' without asking' : ''}`, { needed: describeRequirement(req) });
}

/** The grants a tool runs with: the caller's, minus network grants while untrusted content is in its context. */
export function toolGrants(grants: readonly Grant[], tainted: boolean): Grant[] {
  return grants.filter((g) => !(tainted && g.cap.startsWith('net:')));
}

/** Whether any grant could let a request out (decides between an egress proxy and no network at all). */
export function mayReachNetwork(grants: readonly Grant[]): boolean {
  return grants.some((g) => g.cap.startsWith('net:') && g.effect === 'allow');
}
