/**
 * The tool syscalls' handlers, spread into the kernel's handler table (src/process/handlers.ts).
 * tool_register compiles before anything is written, and stores in the journal's transaction;
 * tool_call runs the tool and returns its value (or its typed error) as the syscall's result.
 */
import { KernelError } from '../kernel/errors.ts';
import type { SyscallArgs } from '../kernel/syscalls.ts';
import type { Directive, SyscallContext } from '../process/syscall-context.ts';

function host(ctx: SyscallContext) {
  if (!ctx.tools) throw new KernelError('ENOSYS', 'JIT tools are not available in this deployment');
  return ctx.tools;
}

export const TOOL_HANDLERS = {
  tool_register: async (args: SyscallArgs<'tool_register'>, ctx: SyscallContext): Promise<Directive> => {
    const p = await host(ctx).prepare(args, 'register', ctx.now);
    return { kind: 'result', value: { ...p.value, note: 'compiled; it is in your tool list from the next step' }, commit: p.commit };
  },
  tool_call: async (args: SyscallArgs<'tool_call'>, ctx: SyscallContext): Promise<Directive> => {
    const value = await host(ctx).call(ctx.pcb, args.name, args.args, ctx.tainted());
    return { kind: 'result', value };
  },
};
