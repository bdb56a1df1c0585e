/**
 * Globs, pure: the patterns capabilities name their resources with (paths, hosts, targets, tool
 * names). `*` matches within one segment (a path segment between "/", a host label between "."),
 * `**` matches anything. Two questions: does a pattern match a value (`globMatch`, a check at the
 * syscall), and does one pattern cover another (`globCovers`, attenuation on spawn: a child's grant
 * may only narrow its parent's).
 */

/** Glob match: `**` any characters, `*` any characters except `sep`. */
export function globMatch(pattern: string, value: string, sep: string): boolean {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += `[^${sep === '/' ? '/' : '.'}]*`;
    else re += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`${re}$`).test(value);
}

type GlobToken = { readonly kind: 'lit'; readonly ch: string } | { readonly kind: 'star' } | { readonly kind: 'dstar' };

function tokenize(pattern: string): GlobToken[] {
  const out: GlobToken[] = [];
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === '*' && pattern[i + 1] === '*') {
      out.push({ kind: 'dstar' });
      i++;
    } else if (pattern[i] === '*') out.push({ kind: 'star' });
    else out.push({ kind: 'lit', ch: pattern[i] as string });
  }
  return out;
}

/**
 * Glob containment: does every string `child` matches also match `parent`? Both are patterns, so the
 * child's wildcards are not literal text: a parent's `*` never covers a child's `**`. Decided by a
 * search over (parent position, child position); sound, and where in doubt it answers no.
 */
export function globCovers(parent: string, child: string, sep: string): boolean {
  const p = tokenize(parent);
  const c = tokenize(child);
  const memo = new Map<number, boolean>();
  const go = (i: number, j: number): boolean => {
    const key = i * (c.length + 1) + j;
    const known = memo.get(key);
    if (known !== undefined) return known;
    memo.set(key, false);
    let result = false;
    const pi = p[i];
    const cj = c[j];
    if (cj === undefined) result = p.slice(i).every((t) => t.kind !== 'lit');
    else if (pi === undefined) result = false;
    else if (cj.kind === 'lit') {
      if (pi.kind === 'lit') result = pi.ch === cj.ch && go(i + 1, j + 1);
      else if (pi.kind === 'star') result = (cj.ch !== sep && go(i, j + 1)) || go(i + 1, j);
      else result = go(i, j + 1) || go(i + 1, j);
    } else if (cj.kind === 'star') {
      // The child's * yields any run without a separator: only a parent * or ** absorbs all of them.
      result = pi.kind !== 'lit' ? go(i, j + 1) || go(i + 1, j) : false;
    } else {
      result = pi.kind === 'dstar' ? go(i, j + 1) || go(i + 1, j) : false;
    }
    memo.set(key, result);
    return result;
  };
  return go(0, 0);
}
