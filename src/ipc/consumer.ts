/**
 * The IPC Queue's consumer: delivers each batch into the recipients' mailboxes (one RPC per
 * recipient, messages in batch order). Every message is validated on arrival; one that does not
 * parse is poison and goes straight to the dead-letter table. A recipient that can never take a
 * message answers `dead` (dead-lettered). One that is unreachable, or pushes back, is retried with
 * backoff, and after MAX_QUEUE_ATTEMPTS deliveries it is dead-lettered instead of being dropped.
 * Acks only follow a durable outcome, so a crash mid-batch redelivers, and the mailbox's dedupe
 * makes that harmless.
 */
import { MAX_QUEUE_ATTEMPTS, type WireMessage, WireMessageSchema } from '../kernel/ipc.ts';
import type { DeliveryOutcome } from '../process/mailbox.ts';
import { type DeadLetter, deadLetterOf, recordDeadLetters } from './dead-letters.ts';

export interface ConsumerDeps {
  readonly rpc: (to: string, messages: WireMessage[]) => Promise<DeliveryOutcome[]>;
  readonly db: D1Database;
  readonly now: () => number;
}

const retryDelaySeconds = (attempts: number): number => Math.min(2 ** Math.max(0, attempts - 1) * 2, 300);

export async function consumeIpcBatch(batch: MessageBatch<unknown>, deps: ConsumerDeps): Promise<void> {
  const letters: DeadLetter[] = [];
  const acks: Message<unknown>[] = [];
  const valid = new Map<string, { msg: Message<unknown>; wire: WireMessage }[]>();
  for (const msg of batch.messages) {
    const parsed = WireMessageSchema.safeParse(msg.body);
    if (!parsed.success) {
      const body = msg.body as { tenant?: unknown; from?: unknown; to?: unknown } | null;
      const tenant = typeof body?.tenant === 'string' && /^[a-z0-9][a-z0-9_-]{0,62}$/.test(body.tenant) ? body.tenant : 'system';
      letters.push({
        id: `queue:${msg.id}`,
        tenant,
        sender: typeof body?.from === 'string' ? body.from.slice(0, 200) : null,
        recipient: typeof body?.to === 'string' ? body.to.slice(0, 64) : null,
        code: 'EINVAL',
        reason: `poison message: ${parsed.error.issues[0]?.message ?? 'does not match the message schema'}`,
        message: msg.body ?? null,
        attempts: msg.attempts,
      });
      acks.push(msg);
      continue;
    }
    const list = valid.get(parsed.data.to) ?? [];
    list.push({ msg, wire: parsed.data });
    valid.set(parsed.data.to, list);
  }
  const retry = (m: { msg: Message<unknown>; wire: WireMessage }, why: string) => {
    if (m.msg.attempts >= MAX_QUEUE_ATTEMPTS) {
      letters.push(deadLetterOf(m.wire, 'EAGAIN', `not delivered after ${m.msg.attempts} attempts: ${why}`, m.msg.attempts));
      acks.push(m.msg);
    } else m.msg.retry({ delaySeconds: retryDelaySeconds(m.msg.attempts) });
  };
  for (const [to, list] of valid) {
    let outcomes: DeliveryOutcome[];
    try {
      outcomes = await deps.rpc(to, list.map((m) => m.wire));
    } catch (e) {
      for (const m of list) retry(m, (e as Error).message);
      continue;
    }
    const byId = new Map(outcomes.map((o) => [o.id, o]));
    for (const m of list) {
      const o = byId.get(m.wire.id);
      if (!o || o.status === 'retry') retry(m, 'the recipient pushed back (too many out-of-order messages held)');
      else if (o.status === 'dead') {
        letters.push(deadLetterOf(m.wire, o.code ?? 'ENOENT', o.reason ?? 'undeliverable', m.msg.attempts));
        acks.push(m.msg);
      } else acks.push(m.msg);
    }
  }
  // Dead letters are durable before their messages are acked; if this write fails, the batch is redelivered.
  await recordDeadLetters(deps.db, letters, deps.now());
  for (const m of acks) m.ack();
}
