/**
 * How messages leave a sender's outbox. Two paths, one contract (the recipient applies each message
 * exactly once, in per-pair order, whichever path and however often it arrives):
 *
 *  - direct (default, IPC_TRANSPORT = "direct"): one Durable Object RPC per recipient and drain,
 *    carrying all of that recipient's queued messages in order. The fast path.
 *  - queue (IPC_TRANSPORT = "queue", and the fallback of direct): `sendBatch` to the IPC Queue; the
 *    consumer (./consumer.ts) delivers into the recipient. Used when the recipient cannot be reached
 *    by RPC right now (the message then survives in the Queue with its retries), or when it pushes
 *    back because too many of the pair's messages are held out of order.
 *
 * A recipient that can never take a message (unknown, exited, another tenant's) answers `dead`, and
 * the message goes to the dead-letter table. If neither path accepts a message, `deliver` throws and
 * the outbox keeps it and retries with backoff.
 */
import type { WireMessage } from '../kernel/ipc.ts';
import type { DeliveryOutcome } from '../process/mailbox.ts';
import type { IpcTransport } from '../process/core.ts';
import { deadLetterOf, recordDeadLetters } from './dead-letters.ts';

export type TransportMode = 'direct' | 'queue';

export interface TransportDeps {
  readonly mode: TransportMode;
  readonly rpc: (to: string, messages: WireMessage[]) => Promise<DeliveryOutcome[]>;
  /** The IPC Queue's producer; absent if the deployment has none (then direct has no fallback). */
  readonly queue: Queue<WireMessage> | undefined;
  readonly db: D1Database;
  readonly now: () => number;
  /** Told when a fallback happens (the sender's event log). */
  readonly onFallback?: (to: string, count: number, why: string) => void;
}

/** Delay before a message the recipient pushed back is offered again through the Queue. */
const PUSHBACK_DELAY_SECONDS = 5;
/** Queues take at most 100 messages per sendBatch. */
const QUEUE_BATCH = 100;

export function parseMode(value: string | undefined): TransportMode {
  return value === 'queue' ? 'queue' : 'direct';
}

async function enqueue(queue: Queue<WireMessage> | undefined, messages: readonly WireMessage[], delaySeconds?: number): Promise<void> {
  if (!queue) throw new Error('the IPC Queue is not bound (IPC_QUEUE); cannot fall back');
  for (let i = 0; i < messages.length; i += QUEUE_BATCH) {
    await queue.sendBatch(
      messages.slice(i, i + QUEUE_BATCH).map((body) => ({ body, contentType: 'json' as const })),
      delaySeconds ? { delaySeconds } : undefined,
    );
  }
}

export function createTransport(deps: TransportDeps): IpcTransport {
  return {
    async deliver(messages) {
      if (deps.mode === 'queue') return enqueue(deps.queue, messages);
      const byRecipient = new Map<string, WireMessage[]>();
      for (const m of messages) byRecipient.set(m.to, [...(byRecipient.get(m.to) ?? []), m]);
      for (const [to, batch] of byRecipient) {
        let outcomes: DeliveryOutcome[];
        try {
          outcomes = await deps.rpc(to, batch);
        } catch (e) {
          // The recipient's object is unreachable now: the Queue keeps the messages and retries.
          deps.onFallback?.(to, batch.length, (e as Error).message);
          await enqueue(deps.queue, batch);
          continue;
        }
        const byId = new Map(batch.map((m) => [m.id, m]));
        const dead = outcomes.filter((o) => o.status === 'dead');
        await recordDeadLetters(
          deps.db,
          dead.flatMap((o) => {
            const m = byId.get(o.id);
            return m ? [deadLetterOf(m, o.code ?? 'ENOENT', o.reason ?? 'undeliverable')] : [];
          }),
          deps.now(),
        );
        const pushedBack = outcomes.filter((o) => o.status === 'retry').flatMap((o) => byId.get(o.id) ?? []);
        if (pushedBack.length > 0) {
          deps.onFallback?.(to, pushedBack.length, 'the recipient holds too many out-of-order messages from this sender');
          await enqueue(deps.queue, pushedBack, PUSHBACK_DELAY_SECONDS);
        }
      }
    },
  };
}
