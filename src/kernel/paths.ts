/**
 * Path normalisation for the per-process filesystem.
 *
 * Every process has its own root. A path is resolved against that root: "a/b", "./a/b" and "/a/b"
 * all name the same file. Anything that would leave the root ("..", past the top) is EPERM; bytes a
 * path must not contain (NUL, control characters, backslashes) are EINVAL; so are forms that only
 * make sense on another system (drive letters, URLs), which are EPERM because they try to name
 * something outside the process.
 */
import { type Result, fail, ok } from './errors.ts';

export const MAX_PATH_LENGTH = 1024;
export const MAX_SEGMENT_LENGTH = 255;

// Control characters (including NUL) are never part of a path.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Normalise `input` to "/seg/seg" form, or explain why it is not a path inside this process. */
export function normalizePath(input: string): Result<string> {
  if (input.length > MAX_PATH_LENGTH) {
    return fail('EINVAL', `path is ${input.length} characters; the limit is ${MAX_PATH_LENGTH}`);
  }
  if (CONTROL.test(input)) return fail('EINVAL', 'path contains a NUL byte or another control character');
  if (input.includes('\\')) return fail('EINVAL', 'path contains a backslash; use "/" to separate directories');
  if (/^[a-zA-Z]:/.test(input) || /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(input)) {
    return fail('EPERM', `path "${input}" names something outside this process's filesystem`);
  }
  const out: string[] = [];
  for (const segment of input.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (out.length === 0) return fail('EPERM', `path "${input}" escapes the process's root directory`);
      out.pop();
      continue;
    }
    if (segment.length > MAX_SEGMENT_LENGTH) {
      return fail('EINVAL', `a path segment is ${segment.length} characters; the limit is ${MAX_SEGMENT_LENGTH}`);
    }
    out.push(segment);
  }
  return ok(`/${out.join('/')}`);
}

/** The directory prefix under which a directory's entries are stored ("/" → "/", "/a" → "/a/"). */
export function dirPrefix(normalizedDir: string): string {
  return normalizedDir === '/' ? '/' : `${normalizedDir}/`;
}
