/**
 * A line diff of two texts (given inline or as file paths), as a unified-style list of hunks:
 * "  " unchanged, "- " only in a, "+ " only in b. Longest-common-subsequence over lines.
 */
interface Args {
  a?: string;
  b?: string;
  a_path?: string;
  b_path?: string;
  context?: number;
}

type Op = { kind: ' ' | '-' | '+'; line: string; a: number; b: number };

function diffLines(a: string[], b: string[]): Op[] {
  const n = a.length;
  const m = b.length;
  // lcs[i][j]: length of the LCS of a[i..] and b[j..]
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) ops.push({ kind: ' ', line: a[i++]!, a: i, b: ++j });
    else if (i < n && (j >= m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) ops.push({ kind: '-', line: a[i++]!, a: i, b: j });
    else ops.push({ kind: '+', line: b[j++]!, a: i, b: j });
  }
  return ops;
}

export default async function textDiff(args: Args, sys: Sys) {
  const read = async (inline: string | undefined, path: string | undefined) => inline ?? (path ? (await sys.fs_read({ path })).content : '');
  const a = (await read(args.a, args.a_path)).split('\n');
  const b = (await read(args.b, args.b_path)).split('\n');
  if (a.length * b.length > 4_000_000) throw new Error(`inputs too large to diff (${a.length} x ${b.length} lines)`);
  const ops = diffLines(a, b);
  const context = args.context ?? 2;
  const changed = ops.map((o) => o.kind !== ' ');
  const keep = ops.map((_, k) => changed.slice(Math.max(0, k - context), k + context + 1).some(Boolean));
  const lines: string[] = [];
  ops.forEach((o, k) => {
    if (keep[k]) lines.push(`${o.kind} ${o.line}`);
    else if (keep[k - 1]) lines.push('…');
  });
  return { added: ops.filter((o) => o.kind === '+').length, removed: ops.filter((o) => o.kind === '-').length, identical: !changed.some(Boolean), diff: lines.join('\n') };
}
