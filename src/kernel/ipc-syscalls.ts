/**
 * The IPC syscalls (mailboxes and topics), spread into the ABI table in ./syscalls.ts. Same shape as
 * every other entry: one zod schema, a description the model reads, a replay class.
 *
 * All of them are `atomic`: send and publish only commit outbox rows (with the pair's sequence
 * number) in the journal's transaction, and delivery happens afterwards, so a crash can neither lose
 * nor duplicate a send; recv marks the message received in the same commit as its result.
 */
import { z } from 'zod';
import { CorrelationIdSchema, TopicSchema } from './ipc.ts';
import { PidSchema } from './pcb.ts';
import { spec } from './syscall-spec.ts';

const MAX_RECV_SECONDS = 366 * 24 * 3600;

export const IPC_SYSCALLS = {
  send: spec({
    name: 'send',
    description:
      "Send a message to another process's mailbox. body is any JSON (at most 128 KB encoded; for more, write a file and send its path). Messages to one process arrive in the order you sent them, exactly once. reply_to names the pid replies should go to; correlation_id ties a reply to its request.",
    args: z.object({ to: PidSchema, body: z.unknown(), correlation_id: CorrelationIdSchema.optional(), reply_to: PidSchema.optional() }).strict(),
    replay: 'atomic',
  }),
  recv: spec({
    name: 'recv',
    description:
      'Take the oldest message from your mailbox (optionally only from one sender, with one correlation_id, or from one topic). If none matches, you wait until one arrives or timeout_seconds pass (ETIMEDOUT).',
    args: z
      .object({
        from: z.string().min(1).max(200).optional(),
        correlation_id: CorrelationIdSchema.optional(),
        topic: TopicSchema.optional(),
        timeout_seconds: z.number().min(0).max(MAX_RECV_SECONDS).optional().describe('0: do not wait; omitted: wait as long as it takes'),
      })
      .strict(),
    replay: 'atomic',
  }),
  subscribe: spec({
    name: 'subscribe',
    description: 'Subscribe to a topic: every message published to it afterwards lands in your mailbox (recv with topic to take only those).',
    args: z.object({ topic: TopicSchema }).strict(),
    replay: 'atomic',
  }),
  unsubscribe: spec({
    name: 'unsubscribe',
    description: 'Stop receiving messages published to a topic.',
    args: z.object({ topic: TopicSchema }).strict(),
    replay: 'atomic',
  }),
  publish: spec({
    name: 'publish',
    description: 'Publish a message to a topic: a copy goes to the mailbox of every current subscriber. Returns how many received it.',
    args: z.object({ topic: TopicSchema, body: z.unknown(), correlation_id: CorrelationIdSchema.optional() }).strict(),
    replay: 'atomic',
  }),
} as const;

export type IpcSyscallName = keyof typeof IPC_SYSCALLS;
