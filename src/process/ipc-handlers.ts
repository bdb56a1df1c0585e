/**
 * Handlers of the IPC syscalls (src/kernel/ipc-syscalls.ts). Like every handler they return a
 * directive and never change the lifecycle state themselves: send and publish return their result
 * with a `commit` that queues the messages in the journal's transaction; recv either takes a message
 * in that transaction or blocks the process on a `message` wait, which an arrival or the
 * wait_timeout timer completes (src/process/mailbox.ts, runtime.fireTimers).
 */
import { KernelError } from '../kernel/errors.ts';
import type { IpcSyscallName } from '../kernel/ipc-syscalls.ts';
import type { Directive, Handlers } from './syscall-context.ts';
import { recvFilterOf } from './mailbox.ts';

/** Subscribers one publish reaches at most (one outbox row each). */
export const MAX_FANOUT = 1000;

const result = (value: unknown, commit: () => void): Directive => ({ kind: 'result', value, commit });

export const IPC_HANDLERS: Pick<Handlers, IpcSyscallName> = {
  send: (args, ctx) => {
    const { message, commit } = ctx.mailbox.prepare(ctx.pcb, args.to, args.body, { correlation_id: args.correlation_id, reply_to: args.reply_to });
    return result({ id: message.id, to: args.to, seq: message.seq }, commit);
  },

  recv: (args, ctx) => {
    const filter = recvFilterOf(args);
    const found = ctx.mailbox.peek(filter);
    if (found) {
      const { seq, ...message } = found;
      return result(message, () => ctx.mailbox.take(seq));
    }
    if (args.timeout_seconds === 0) throw new KernelError('ETIMEDOUT', 'no matching message is in the mailbox', { filter });
    const deadline = args.timeout_seconds === undefined ? null : ctx.now + Math.round(args.timeout_seconds * 1000);
    return { kind: 'block', wait: { reason: 'message', ...filter, deadline }, deadline };
  },

  subscribe: (args, ctx) =>
    result({ subscribed: args.topic }, () =>
      ctx.mailbox.registry('INSERT OR IGNORE INTO subscriptions (tenant, topic, pid, created_at) VALUES (?, ?, ?, ?)', [ctx.pcb.tenant, args.topic, ctx.pcb.pid, ctx.now]),
    ),

  unsubscribe: (args, ctx) =>
    result({ unsubscribed: args.topic }, () => ctx.mailbox.registry('DELETE FROM subscriptions WHERE tenant = ? AND topic = ? AND pid = ?', [ctx.pcb.tenant, args.topic, ctx.pcb.pid])),

  publish: async (args, ctx) => {
    const { results } = await ctx.db
      .prepare('SELECT pid FROM subscriptions WHERE tenant = ? AND topic = ? ORDER BY pid LIMIT ?')
      .bind(ctx.pcb.tenant, args.topic, MAX_FANOUT + 1)
      .all<{ pid: string }>();
    if (results.length > MAX_FANOUT) throw new KernelError('E2BIG', `topic ${args.topic} has more than ${MAX_FANOUT} subscribers; split it`, { limit: MAX_FANOUT });
    const sends = results.map((r) => ctx.mailbox.prepare(ctx.pcb, r.pid, args.body, { correlation_id: args.correlation_id, topic: args.topic }));
    return result({ topic: args.topic, subscribers: sends.length, ids: sends.map((s) => s.message.id) }, () => {
      for (const s of sends) s.commit();
    });
  },
};
