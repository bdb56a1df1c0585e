/**
 * Previews: bounded copies of values for the event log and the audit log. A syscall's arguments can
 * hold megabytes (a file's content, a fetched page); its record keeps every structural field but
 * cuts long strings, and says how long they were, so records stay small and rows stay far below
 * the platform's size limits.
 */

export const PREVIEW_STRING_CHARS = 512;
const MAX_DEPTH = 6;
const MAX_ITEMS = 50;

export function preview(value: unknown, maxString = PREVIEW_STRING_CHARS, depth = 0): unknown {
  if (typeof value === 'string') {
    return value.length <= maxString ? value : `${value.slice(0, maxString)}… [${value.length} chars]`;
  }
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return '[…]';
  if (Array.isArray(value)) {
    const items = value.slice(0, MAX_ITEMS).map((v) => preview(v, maxString, depth + 1));
    if (value.length > MAX_ITEMS) items.push(`… [${value.length} items]`);
    return items;
  }
  const out: Record<string, unknown> = {};
  let n = 0;
  for (const [k, v] of Object.entries(value)) {
    if (n++ >= MAX_ITEMS) {
      out['…'] = `[${Object.keys(value).length} keys]`;
      break;
    }
    out[k] = preview(v, maxString, depth + 1);
  }
  return out;
}
