/**
 * The mcp_call handler, spread into the kernel's handler table (src/process/handlers.ts). By the
 * time it runs the dispatcher has checked `mcp:<server>:<tool>`, journaled the call (with its replay
 * class) and will audit it; this only sends it and returns what the server answered.
 */
import { KernelError } from '../kernel/errors.ts';
import type { SyscallArgs } from '../kernel/syscalls.ts';
import type { Directive, SyscallContext } from '../process/syscall-context.ts';

export const MCP_HANDLERS = {
  mcp_call: async (args: SyscallArgs<'mcp_call'>, ctx: SyscallContext): Promise<Directive> => {
    if (!ctx.mcp) throw new KernelError('ENOSYS', 'MCP servers are not available in this deployment');
    return { kind: 'result', value: await ctx.mcp.call(ctx.pcb.tenant, args) };
  },
};
