/**
 * One way to page every list of the API: `limit` and `cursor` in, `next_cursor` out. A page is read
 * with one row more than asked for, so `next_cursor` is null exactly when nothing follows (now: an
 * append-only log, like events or the audit, can grow after it). A cursor is opaque to clients
 * except in the logs, where it is a `seq` and a follower may pass the seq of the last row it holds.
 *
 * Cursors are keyset positions, never offsets: a page costs the same wherever it is, and rows
 * inserted meanwhile neither repeat nor vanish.
 */
import { z } from 'zod';
import { intParam } from './common.ts';

const MORE = 'next_cursor from the previous page';

/** A `seq` cursor (events, audit, mailbox): the position after which (or, newest first, before which) to read. */
export const SeqCursor = z.string().regex(/^\d{1,15}$/, `use ${MORE}`).transform(Number);

/** A keyset cursor "<created_at>.<id>" (processes, approvals, tokens, dead letters). */
export const KeysetCursor = (id: RegExp = /^[A-Za-z0-9:_-]{1,128}$/) =>
  z
    .string()
    .max(512)
    .refine((c) => /^\d{1,15}\./.test(c) && id.test(c.slice(c.indexOf('.') + 1)), `use ${MORE}`)
    .transform((c) => ({ at: Number(c.slice(0, c.indexOf('.'))), id: c.slice(c.indexOf('.') + 1) }));

export const keyset = (at: number, id: string): string => `${at}.${id}`;

/** The `limit` and `cursor` fields of a list's query schema. */
export const pageParams = <C extends z.ZodType>(defaultLimit: number, maxLimit: number, cursor: C) => ({
  limit: intParam(defaultLimit, 1, maxLimit).describe(`page size (at most ${maxLimit})`),
  cursor: cursor.optional().describe(MORE),
});

/** The response of a list: the rows under `key`, and `next_cursor`. */
export const paged = <K extends string, T extends z.ZodType>(key: K, item: T) =>
  z.object({ [key]: z.array(item), next_cursor: z.string().nullable().describe('pass as cursor for the next page; null: no more rows') } as { [P in K]: z.ZodArray<T> } & { next_cursor: z.ZodNullable<z.ZodString> });

/** Cut rows read with `limit + 1` into a page and its next cursor. */
export function pageOf<T>(rows: readonly T[], limit: number, cursorOf: (last: T) => string): { rows: T[]; next_cursor: string | null } {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return { rows: page, next_cursor: rows.length > limit && last !== undefined ? cursorOf(last) : null };
}
