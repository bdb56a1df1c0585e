/**
 * Text that was slow to count before the tokenizer was made linear (src/llm/tokens.ts), and prose
 * of the same size to compare with. Shared by the loopback server (global-setup.ts) and the tests.
 */
export const TEXT_KINDS = ['prose', 'repeated', 'multibyte', 'combining', 'brackets'] as const;
export type TextKind = (typeof TEXT_KINDS)[number];

const UNITS: Record<TextKind, string> = {
  prose: 'The quick brown fox jumps over the lazy dog; then it rests. ',
  repeated: 'x',
  multibyte: 'é中😀',
  combining: '\u0301',
  brackets: '(',
};

/** About `bytes` bytes of UTF-8 (never more) of the given kind. */
export function hostileText(kind: TextKind, bytes: number): string {
  if (kind === 'brackets') {
    const depth = Math.floor(bytes / 2);
    return '('.repeat(depth) + ')'.repeat(depth);
  }
  const unit = UNITS[kind];
  const head = kind === 'combining' ? 'a' : '';
  const size = new TextEncoder().encode(unit).length;
  return head + unit.repeat(Math.floor((bytes - head.length) / size));
}
