/**
 * The two doors out of a tool isolate, exported from the Worker's main module so that a process can
 * bind them through `ctx.exports` with props (its pid and the grants the tool runs with):
 *   - ToolBroker: the only binding in a tool's `env`. `syscall(token, name, args)` checks the call
 *     against the bound grants with the kernel's policy code, then asks the process object, which
 *     checks again that the call is still in flight, counts it, and runs the kernel's own handler.
 *   - ToolEgress: the tool isolate's `globalOutbound`. Every `fetch` the tool makes arrives here; it
 *     is checked against the bound `net:` grants and the call's subrequest budget before it leaves.
 * Refusals are typed: the broker returns `{ok: false, error: {code, message}}`; the proxy answers 403
 * with the code in a header, and the harness's fetch wrapper throws `CODE: message` in the tool.
 */
import { WorkerEntrypoint } from 'cloudflare:workers';
import { processStub } from '../rpc/stubs.ts';
import { type Result, fail } from '../kernel/errors.ts';
import { validateCall } from '../kernel/syscalls.ts';
import { authorizeEgress, authorizeToolCall } from './authorize.ts';
import { CALL_HEADER, REFUSED_HEADER, TOOL_SYSCALLS } from './harness.ts';
import type { BrokerProps } from './host.ts';

export class ToolBroker extends WorkerEntrypoint<Env, BrokerProps> {
  async syscall(token: string, name: string, args: unknown): Promise<Result<unknown>> {
    const { pid, grants } = this.ctx.props;
    if (typeof token !== 'string' || typeof name !== 'string') return fail('EINVAL', 'syscall(token, name, args)');
    if (!(TOOL_SYSCALLS as readonly string[]).includes(name)) return fail('ENOSYS', `tools can call ${TOOL_SYSCALLS.join(', ')}; not "${name}"`);
    const v = validateCall({ id: 'tool', name, args });
    if (!v.ok) return v;
    const allowed = authorizeToolCall(grants, v.value, Date.now());
    if (!allowed.ok) return allowed;
    return processStub(this.env, pid).toolSyscall(token, name, v.value.args);
  }
}

/** A refusal travels as a response the harness's fetch wrapper turns into a thrown `CODE: message`. */
const refused = (code: string, message: string) => new Response(message, { status: 403, headers: { [REFUSED_HEADER]: code } });

export class ToolEgress extends WorkerEntrypoint<Env, BrokerProps> {
  override async fetch(request: Request): Promise<Response> {
    const { pid, grants } = this.ctx.props;
    const token = request.headers.get(CALL_HEADER) ?? '';
    const allowed = authorizeEgress(grants, request.url, request.method, Date.now());
    if (!allowed.ok) return refused(allowed.error.code, allowed.error.message);
    const counted = await processStub(this.env, pid).toolEgress(token, request.url, request.method);
    if (!counted.ok) return refused(counted.error.code, counted.error.message);
    const headers = new Headers(request.headers);
    headers.delete(CALL_HEADER);
    // Redirects are not followed: each hop would have to pass this check on its own.
    const response = await fetch(new Request(request.url, { method: request.method, headers, body: request.body, redirect: 'manual' }));
    if (!response.headers.has(REFUSED_HEADER)) return response;
    const clean = new Response(response.body, response);
    clean.headers.delete(REFUSED_HEADER);
    return clean;
  }
}
