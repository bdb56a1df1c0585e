/**
 * The shape of one syscall's entry in the ABI (./syscalls.ts, and each family's table such as
 * ./ipc-syscalls.ts): its name, the zod schema of its arguments, its description for the model,
 * and its replay class (what the journal may do with a call interrupted mid-way; see ./syscalls.ts).
 * A module of its own so that the families and the table that joins them do not import each other.
 */
import type { z } from 'zod';

export type ReplayClass = 'atomic' | 'idempotent' | 'unsafe';

export interface SyscallSpec<A extends z.ZodType = z.ZodType> {
  readonly name: string;
  readonly description: string;
  readonly args: A;
  readonly replay: ReplayClass | ((args: z.infer<A>) => ReplayClass);
}

/** Declare a syscall, keeping its argument schema's type. */
export function spec<A extends z.ZodType>(s: SyscallSpec<A>): SyscallSpec<A> {
  return s;
}
