import { describe, expect, it } from 'vitest';
import { countTokens as libraryCount } from 'gpt-tokenizer/encoding/o200k_base';
import { O200K_TOKEN_SPLIT_REGEX } from 'gpt-tokenizer/encodingParams/constants';
import { bpeSegments, countTokens, PIECE_UNITS } from './tokens.ts';

const MB5 = 5_000_000;
const utf8 = new TextEncoder();

/** Deterministic pseudo-random text over `alphabet` (no two runs alike, so no cache helps). */
function randomText(length: number, alphabet: string): string {
  const symbols = [...alphabet];
  let x = 12345;
  const out: string[] = [];
  let units = 0;
  while (units < length) {
    x = (Math.imul(x, 1103515245) + 12345) & 0x7fffffff;
    const s = symbols[x % symbols.length]!;
    out.push(s);
    units += s.length;
  }
  return out.join('');
}

const ORDINARY = 'The quick brown fox jumps over the lazy dog. Ça va? 東京 1234 (a+b)*c;\n\tfoo  bar   baz\r\n';
const prose = (length: number) => ORDINARY.repeat(Math.ceil(length / ORDINARY.length)).slice(0, length);

/** The adversarial inputs, 5 MB each, plus text no cache can help with. */
const ADVERSARIAL: Record<string, () => string> = {
  'one repeated character': () => 'x'.repeat(MB5),
  'repeated multi-byte characters': () => 'é中😀'.repeat(MB5 / 4),
  'combining marks': () => 'a' + '\u0301'.repeat(MB5),
  '100k nested brackets': () => ('('.repeat(100_000) + ')'.repeat(100_000)).repeat(MB5 / 200_000),
  'one run of spaces': () => ' '.repeat(MB5),
  'NUL bytes': () => '\u0000'.repeat(MB5),
  'special tokens as text': () => '<|endoftext|>'.repeat(MB5 / 13),
  'punctuation, newlines and slashes': () => '!\n/'.repeat(MB5 / 3),
  'random letters, no spaces (1 MB)': () => randomText(1_000_000, 'abcdefghijklmnopqrstuvwxyz'),
  'random CJK, no punctuation (1 MB)': () => randomText(1_000_000, '的一是不了人我在有他这为之大来以个中上们'),
};

/**
 * The BPE work the library does on what it is handed: its merge is quadratic in a pre-token's
 * bytes, so this sum over every pre-token of every segment is the cost model. The library's own
 * pre-tokenizer regex is used to find them, exactly as it does.
 */
function bpeWork(text: string): { work: number; bytes: number; longest: number } {
  let work = 0;
  let longest = 0;
  let joined = 0;
  for (const segment of bpeSegments(text)) {
    joined += segment.length;
    for (const [preToken] of segment.matchAll(O200K_TOKEN_SPLIT_REGEX)) {
      const b = utf8.encode(preToken).length;
      work += b * b;
      longest = Math.max(longest, preToken.length);
    }
  }
  expect(joined).toBe(text.length);
  return { work, bytes: utf8.encode(text).length, longest };
}

describe('countTokens', () => {
  it('counts prose, code and JSON exactly as the library does', () => {
    const samples = [
      prose(200_000),
      JSON.stringify({ ok: true, value: { files: Array.from({ length: 500 }, (_, i) => ({ path: `/src/file-${i}.ts`, bytes: i * 37 })) } }),
      'function add(a: number, b: number): number {\n  return a + b;\n}\n'.repeat(2000),
      '',
      'Hello',
    ];
    for (const text of samples) expect(countTokens(text)).toBe(text.length === 0 ? 0 : libraryCount(text));
  });

  it('counts special tokens as the plain text they are, instead of throwing', () => {
    expect(() => libraryCount('a <|endoftext|> b')).toThrow();
    expect(countTokens('a <|endoftext|> b')).toBeGreaterThan(3);
  });

  it('splits only over-long runs, and such counts stay close to the library and above it', () => {
    // 10 k characters: small enough for the library's quadratic merge to finish in this test.
    for (const text of ['x'.repeat(10_000), randomText(10_000, 'abcdefghijklmnopqrstuvwxyz'), randomText(10_000, '的一是不了人我在有他这为之大来以个中上们')]) {
      const exact = libraryCount(text);
      const ours = countTokens(text);
      expect(ours).toBeGreaterThanOrEqual(exact);
      expect(ours).toBeLessThanOrEqual(exact * 1.02);
    }
  });

  for (const [name, make] of Object.entries(ADVERSARIAL)) {
    it(`does linear BPE work on ${name}`, () => {
      const text = make();
      const { work, bytes, longest } = bpeWork(text);
      expect(longest).toBeLessThanOrEqual(PIECE_UNITS);
      // Each pre-token is at most 4 × PIECE_UNITS bytes, so the work per byte is bounded by it; the
      // library alone would do about bytes² (2.5 × 10¹³ for 5 MB of one character).
      expect(work / bytes).toBeLessThanOrEqual(4 * PIECE_UNITS);
      expect(countTokens(text)).toBeGreaterThan(0);
    });
  }

  it('counts 5 MB of adversarial text within a small multiple of the CPU for 5 MB of prose', () => {
    // A ratio in the same run, not a wall-clock limit: the machine may be shared. (Deployed Workers
    // freeze the clock while code runs; local workerd, where tests run, does not.)
    const time = (f: () => void) => {
      const t = performance.now();
      f();
      return performance.now() - t;
    };
    const ordinary = prose(MB5);
    countTokens(ordinary); // warm the tokenizer's tables
    const base = time(() => countTokens(ordinary));
    expect(base).toBeGreaterThan(0);
    for (const name of ['one repeated character', 'repeated multi-byte characters', 'combining marks', '100k nested brackets']) {
      const text = ADVERSARIAL[name]!();
      expect(time(() => countTokens(text)) / base, name).toBeLessThan(10);
    }
  });
});
