/**
 * The dead-letter table (D1): messages that can never be delivered (unknown or exited recipient,
 * another tenant's pid, a payload that does not parse, or a message that exhausted its retries).
 * They are kept here, per tenant, and listed by GET /v1/dead-letters; nothing is dropped silently.
 * Writes are idempotent (the message id is the key), because the transports deliver at least once.
 */
import type { WireMessage } from '../kernel/ipc.ts';

export interface DeadLetter {
  readonly id: string;
  readonly tenant: string;
  readonly sender: string | null;
  readonly recipient: string | null;
  readonly code: string;
  readonly reason: string;
  readonly message: unknown;
  readonly attempts: number;
}

export function deadLetterOf(m: WireMessage, code: string, reason: string, attempts = 0): DeadLetter {
  return { id: m.id, tenant: m.tenant, sender: m.from, recipient: m.to, code, reason, message: m, attempts };
}

export async function recordDeadLetters(db: D1Database, letters: readonly DeadLetter[], now: number): Promise<void> {
  if (letters.length === 0) return;
  await db.batch(
    letters.map((l) =>
      db
        .prepare('INSERT OR IGNORE INTO dead_letters (id, tenant, sender, recipient, code, reason, message, attempts, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .bind(l.id, l.tenant, l.sender, l.recipient, l.code, l.reason, JSON.stringify(l.message), l.attempts, now),
    ),
  );
}

export interface DeadLetterRow extends Omit<DeadLetter, 'message'> {
  readonly message: unknown;
  readonly created_at: number;
}

/** A tenant's dead letters, newest first, paged by the keyset (created_at, id) of the last row seen. */
export async function listDeadLetters(db: D1Database, tenant: string, limit: number, cursor: { at: number; id: string } | undefined): Promise<{ dead_letters: DeadLetterRow[]; next_cursor: string | null }> {
  const params: (string | number)[] = [tenant];
  let where = 'tenant = ?';
  if (cursor) {
    where += ' AND (created_at < ? OR (created_at = ? AND id < ?))';
    params.push(cursor.at, cursor.at, cursor.id);
  }
  const { results } = await db
    .prepare(`SELECT id, tenant, sender, recipient, code, reason, message, attempts, created_at FROM dead_letters WHERE ${where} ORDER BY created_at DESC, id DESC LIMIT ?`)
    .bind(...params, limit + 1)
    .all<DeadLetterRow & { message: string }>();
  const page = results.slice(0, limit).map((r) => ({ ...r, message: JSON.parse(r.message) as unknown }));
  const last = page.at(-1);
  return { dead_letters: page, next_cursor: results.length > limit && last ? `${last.created_at}.${last.id}` : null };
}
