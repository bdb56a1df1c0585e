/**
 * The text fallback protocol for models without native tool calling:
 *
 *   [SYS_CALL::{"name": "fs_write", "args": {"path": "a.txt", "content": "hi"}}]
 *
 * Blocks are found anywhere in the model's text and yield the same RawCall values native tool
 * calls do, so they go through the same validation and dispatch. A block that cannot be read never
 * throws: it becomes an EINVAL error that goes back to the model as that call's result.
 *
 * The JSON object is delimited by brace matching that understands strings and escapes, so a `]`
 * or `}` inside an argument string does not end the block early.
 */
import type { ErrorValue } from './errors.ts';
import type { RawCall } from './syscalls.ts';

export const SYS_CALL_MARKER = '[SYS_CALL::';

export interface ParsedText {
  /** The model's prose with the blocks removed. */
  readonly text: string;
  /** Calls in the order they appear; a malformed block appears as a call whose `error` is set. */
  readonly calls: readonly TextCall[];
}

export type TextCall = { readonly call: RawCall; readonly error?: undefined } | { readonly call?: undefined; readonly error: ErrorValue & { readonly id: string } };

/** End index (exclusive) of the JSON value starting at `start` ('{'), or -1 if it never closes. */
function matchObject(s: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < s.length; i++) {
    const c = s[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

function invalid(id: string, message: string, snippet: string): TextCall {
  return { error: { id, code: 'EINVAL', message, details: { block: snippet.slice(0, 300) } } };
}

/** Parse every `[SYS_CALL::…]` block in `text`. */
export function parseTextCalls(text: string, idPrefix = 'text'): ParsedText {
  const calls: TextCall[] = [];
  let prose = '';
  let cursor = 0;
  for (;;) {
    const at = text.indexOf(SYS_CALL_MARKER, cursor);
    if (at < 0) break;
    prose += text.slice(cursor, at);
    const id = `${idPrefix}-${calls.length}`;
    let bodyStart = at + SYS_CALL_MARKER.length;
    while (bodyStart < text.length && /\s/.test(text[bodyStart] ?? '')) bodyStart++;
    if (text[bodyStart] !== '{') {
      // The error covers the rest of the line, or less if another block starts on it.
      const lineEnd = text.indexOf('\n', at);
      const next = text.indexOf(SYS_CALL_MARKER, at + SYS_CALL_MARKER.length);
      const end = Math.min(lineEnd < 0 ? text.length : lineEnd, next < 0 ? text.length : next);
      calls.push(invalid(id, 'SYS_CALL block must contain a JSON object: [SYS_CALL::{"name": "...", "args": {...}}]', text.slice(at, end)));
      cursor = end;
      continue;
    }
    const objectEnd = matchObject(text, bodyStart);
    if (objectEnd < 0) {
      // Unterminated: the error covers text up to the next block, which is still parsed.
      const next = text.indexOf(SYS_CALL_MARKER, at + SYS_CALL_MARKER.length);
      const end = next < 0 ? text.length : next;
      calls.push(invalid(id, 'SYS_CALL block is not terminated: its JSON object never closes', text.slice(at, end)));
      cursor = end;
      continue;
    }
    let close = objectEnd;
    while (close < text.length && /\s/.test(text[close] ?? '')) close++;
    const json = text.slice(bodyStart, objectEnd);
    cursor = text[close] === ']' ? close + 1 : objectEnd;
    if (text[close] !== ']') {
      calls.push(invalid(id, 'SYS_CALL block must end with "]" right after its JSON object', text.slice(at, objectEnd)));
      continue;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch (e) {
      calls.push(invalid(id, `SYS_CALL block is not valid JSON: ${(e as Error).message}`, json));
      continue;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      calls.push(invalid(id, 'SYS_CALL block must be a JSON object', json));
      continue;
    }
    const record = parsed as Record<string, unknown>;
    if (typeof record.name !== 'string' || record.name.length === 0) {
      calls.push(invalid(id, 'SYS_CALL block needs a "name" string', json));
      continue;
    }
    const args = record.args === undefined ? {} : record.args;
    calls.push({ call: { id, name: record.name, args } });
  }
  prose += text.slice(cursor);
  return { text: prose.trim(), calls };
}

/** Render a call in the text protocol (used in prompts that describe the protocol, and in tests). */
export function formatTextCall(name: string, args: unknown): string {
  return `${SYS_CALL_MARKER}${JSON.stringify({ name, args })}]`;
}
