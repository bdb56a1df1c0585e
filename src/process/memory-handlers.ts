/**
 * The handlers of mem_write, mem_search and mem_delete (spread into HANDLERS in ./handlers.ts).
 *
 * The dispatcher has already checked `mem:<namespace>:<r|w>` against the process's grants with the
 * namespace as the agent named it (`self` by default). Here `self` becomes the stored `proc/<pid>`,
 * and the tenant always comes from the PCB, never from the model.
 *
 * Taint travels with memories: a memory written while untrusted content was in the writer's working
 * set is labelled, and a search that returns a labelled memory is itself untrusted content for the
 * reader (the result page is marked, so high-risk calls need approval while it is in context).
 * Writes and deletions put a `memory` audit record in the outbox, in the journal entry's commit.
 */
import { KernelError } from '../kernel/errors.ts';
import { checkText, storedNamespace } from '../kernel/memory.ts';
import type { SyscallArgs } from '../kernel/syscalls.ts';
import { type MemoryService, memoryId, splitMetadata } from '../memory/service.ts';
import type { MemoryScope } from '../memory/types.ts';
import type { Directive, MemoryAccess, SyscallContext } from './syscall-context.ts';

/** What the memory syscalls need beyond the common context. */
function access(ctx: SyscallContext): MemoryAccess {
  if (!ctx.memory) throw new KernelError('ENOSYS', 'long-term memory is not configured in this deployment');
  return ctx.memory;
}

function scopeOf(ctx: SyscallContext, namespace: string | undefined): { scope: MemoryScope; visible: string } {
  const visible = namespace ?? 'self';
  return { visible, scope: { tenant: ctx.pcb.tenant, namespace: storedNamespace(visible, ctx.pcb.pid) } };
}

const round = (x: number) => Math.round(x * 10_000) / 10_000;

export const MEMORY_HANDLERS = {
  mem_write: async (args: SyscallArgs<'mem_write'>, ctx: SyscallContext): Promise<Directive> => {
    const mem = access(ctx);
    const text = checkText(args.text);
    if (!text.ok) throw KernelError.fromValue(text.error);
    const { scope, visible } = scopeOf(ctx, args.namespace);
    const id = await memoryId(ctx.pcb.pid, ctx.callKey);
    const untrusted = ctx.tainted();
    const service = mem.service();
    await service.write(scope, [{ id, text: text.value, ...(args.metadata ? { metadata: args.metadata } : {}), untrusted }]);
    const bytes = new TextEncoder().encode(text.value).byteLength;
    return {
      kind: 'result',
      value: { id, namespace: visible, embedding: service.embedder.model },
      commit: () => mem.audit('write', { id, namespace: scope.namespace, bytes, metadata: args.metadata ?? {}, untrusted, store: service.store.kind }),
    };
  },

  mem_search: async (args: SyscallArgs<'mem_search'>, ctx: SyscallContext): Promise<Directive> => {
    const mem = access(ctx);
    const { scope, visible } = scopeOf(ctx, args.namespace);
    const found = await mem.service().search(scope, { query: args.query, ...(args.top_k ? { top_k: args.top_k } : {}), ...(args.filter ? { filter: args.filter } : {}) });
    let untrusted = false;
    const results = found.results.map((m) => {
      const split = splitMetadata(m.metadata);
      untrusted ||= split.untrusted;
      return { id: m.id, score: round(m.score), text: m.text, metadata: split.metadata, ...(split.untrusted ? { untrusted: true } : {}) };
    });
    return {
      kind: 'result',
      value: {
        namespace: visible,
        results,
        embedding: found.embedding.model,
        ...(found.embedding.lexical ? { note: 'lexical embedding: results share words with the query; paraphrases without shared words are not found' } : {}),
        ...(untrusted ? { untrusted: true } : {}),
      },
    };
  },

  mem_delete: async (args: SyscallArgs<'mem_delete'>, ctx: SyscallContext): Promise<Directive> => {
    const mem = access(ctx);
    const { scope, visible } = scopeOf(ctx, args.namespace);
    const service = mem.service();
    const gone = await service.delete(scope, [args.id]);
    if (gone.length === 0) throw new KernelError('ENOENT', `no memory ${args.id} in namespace "${visible}"`, { id: args.id, namespace: visible });
    return { kind: 'result', value: { id: args.id, namespace: visible, deleted: true }, commit: () => mem.audit('delete', { id: args.id, namespace: scope.namespace, store: service.store.kind }) };
  },
};
