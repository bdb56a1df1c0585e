/**
 * IPC rules, pure: the wire form of a message, its size limit, the arrival decision that makes
 * at-least-once transport into exactly-once, in-order application, and mailbox matching.
 *
 * Invariants:
 *  - A message between two processes belongs to the ordered channel of its sender→recipient pair
 *    and carries that pair's sequence number (1, 2, 3 …, assigned in the sender's commit). Its id is
 *    derived from (sender, recipient, seq), so every copy of a message has the same id.
 *  - The recipient applies seq == next and then every held successor; seq < next is a duplicate
 *    (unless it is a seq that was skipped after a gap timed out: then it is applied late, once);
 *    seq > next is held until the gap fills. Holding is bounded: past MAX_HELD per pair the arrival
 *    is refused for retry (back-pressure onto the transport), and a gap older than HOLD_TIMEOUT_MS
 *    is skipped so one lost message cannot stall a pair forever.
 *  - Messages from outside (HTTP, webhooks) have no channel; they are deduplicated by id.
 */
import { z } from 'zod';
import { KernelError } from './errors.ts';
import { PidSchema } from './pcb.ts';

/** Queues' message size limit: the whole encoded message must fit in one Queue message. */
export const MAX_MESSAGE_BYTES = 128 * 1024;
/** Out-of-order arrivals a recipient holds per sender before it pushes back (retry later). */
export const MAX_HELD = 1000;
/** How long a gap may stall a pair before the recipient skips it and applies what it holds. */
export const HOLD_TIMEOUT_MS = 5 * 60 * 1000;
/** Queue deliveries of one message before it is dead-lettered instead of retried again. */
export const MAX_QUEUE_ATTEMPTS = 10;

export const TopicSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}(\/[a-z0-9][a-z0-9._-]{0,62}){0,3}$/, 'a topic is 1-4 "/"-separated segments of lowercase letters, digits, ".", "_" or "-"');
export const CorrelationIdSchema = z.string().min(1).max(128);

/** A message as it travels (outbox → RPC or Queue → recipient). Validated on arrival. */
export const WireMessageSchema = z
  .object({
    id: z.string().min(1).max(200),
    tenant: z.string().min(1).max(63),
    /** A pid, or an outside sender: "api:<token id>", "hook:<name>". */
    from: z.string().min(1).max(200),
    to: PidSchema,
    /** The sender pid whose ordered channel this message is on; null for unordered outside messages. */
    channel: PidSchema.nullable(),
    seq: z.number().int().min(1).nullable(),
    topic: TopicSchema.nullable(),
    correlation_id: CorrelationIdSchema.nullable(),
    reply_to: PidSchema.nullable(),
    body: z.unknown(),
    sent_at: z.number(),
  })
  .strict();
export type WireMessage = z.infer<typeof WireMessageSchema>;

/** The id of the seq-th message from `from` to `to`: the same for every copy. */
export const messageId = (from: string, to: string, seq: number): string => `${from}>${to}#${seq}`;

/** Encoded size of a message, or E2BIG if it cannot travel as one Queue message. */
export function checkSize(message: WireMessage): number {
  const bytes = new TextEncoder().encode(JSON.stringify(message)).byteLength;
  if (bytes > MAX_MESSAGE_BYTES) {
    throw new KernelError('E2BIG', `the message is ${bytes} bytes encoded; the limit is ${MAX_MESSAGE_BYTES}. Write large payloads to a file and send its path instead.`, {
      bytes,
      limit: MAX_MESSAGE_BYTES,
    });
  }
  return bytes;
}

/** What the recipient does with one arriving sequenced message. */
export type Arrival = 'apply' | 'apply_late' | 'duplicate' | 'hold' | 'retry';

export interface ChannelState {
  /** The next seq the pair expects (1 for a new pair). */
  readonly next: number;
  /** Seqs already held for this pair. */
  readonly held: ReadonlySet<number>;
  /** Seqs that were skipped when a gap timed out and have not arrived since. */
  readonly skipped: ReadonlySet<number>;
}

export function arrival(state: ChannelState, seq: number): Arrival {
  if (seq < state.next) return state.skipped.has(seq) ? 'apply_late' : 'duplicate';
  if (seq === state.next) return 'apply';
  if (state.held.has(seq)) return 'duplicate';
  return state.held.size >= MAX_HELD ? 'retry' : 'hold';
}

/**
 * After an arrival: the held seqs that now apply in order, and the new `next`. With `skipGap`
 * (the oldest held message has waited HOLD_TIMEOUT_MS), the gap before the lowest held seq is
 * skipped: the missing seqs are returned as `skipped` so a late copy is still applied once.
 */
export function drain(next: number, held: readonly number[], skipGap: boolean): { apply: number[]; next: number; skipped: number[] } {
  const sorted = [...held].sort((a, b) => a - b);
  const skipped: number[] = [];
  let n = next;
  const first = sorted[0];
  if (skipGap && first !== undefined && first > n) {
    for (let s = n; s < first; s++) skipped.push(s);
    n = first;
  }
  const apply: number[] = [];
  for (const s of sorted) {
    if (s !== n) break;
    apply.push(s);
    n++;
  }
  return { apply, next: n, skipped };
}

/** What a recv (or a blocked recv's wait) is looking for. */
export interface RecvFilter {
  readonly from?: string | null | undefined;
  readonly correlation_id?: string | null | undefined;
  readonly topic?: string | null | undefined;
}

export function matches(filter: RecvFilter, m: { from: string; correlation_id: string | null; topic: string | null }): boolean {
  if (filter.from != null && filter.from !== m.from) return false;
  if (filter.correlation_id != null && filter.correlation_id !== m.correlation_id) return false;
  if (filter.topic != null && filter.topic !== m.topic) return false;
  return true;
}

/** Outside senders (HTTP, webhooks) are not processes: their messages enter the context as untrusted. */
export const isOutsideSender = (from: string): boolean => !PidSchema.safeParse(from).success;

export const SIGCHLD = 'SIGCHLD';
