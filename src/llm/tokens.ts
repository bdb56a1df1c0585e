/**
 * Token counting with a real BPE tokenizer that runs in Workers: gpt-tokenizer's o200k_base (the
 * encoding of GPT-4o, GPT-4.1, GPT-5 and o-series). Anthropic publishes no tokenizer, and Workers AI
 * models use their own, so for them the count is an estimate (typically within ~10–20%); providers'
 * reported usage, not this count, is what quotas charge. Only this one encoding is imported, which
 * keeps the bundle to its ~2.4 MB of ranks (see docs/BENCHMARKS.md).
 *
 * **Linear for any input.** The library is fine on prose but not on hostile text, and any page can be
 * hostile (a fetched web page, a file, a message, a tool's result):
 * - its BPE merge is quadratic in the length of one pre-token (a run with no break: 200 k × "x" is one
 *   pre-token and took 22 s), and it keeps every distinct pre-token in a 100,000-entry cache;
 * - its pre-tokenizing regex overflows V8's backtracking stack on a multi-megabyte run of letters
 *   (`RangeError`), so the whole text cannot even be handed to it;
 * - by default it throws on text that contains a special token such as `<|endoftext|>`.
 * So the text is cut twice before the library sees it, and special tokens count as the plain text
 * they are (which is how a provider receives them inside a message):
 * 1. into *chunks* of at most {@link CHUNK_UNITS} code units, cut before a space or tab that follows a
 *    non-space. No o200k pre-token contains such a pair (only `\r`/`\n` may follow punctuation inside
 *    one), so these cuts change nothing. Text without blanks is cut where a letter or digit meets
 *    punctuation (also a pre-token's end); only a run with neither is cut blindly.
 * 2. each chunk is pre-tokenized with the library's own o200k regex; a pre-token longer than
 *    {@link PIECE_UNITS} code units is split into pieces of that length before BPE.
 * BPE work is then at most (bytes of a piece)² per piece, so counting is O(n·PIECE) for any text. The
 * price is a slightly different count for text with runs longer than a piece: the pieces' tokens are a
 * valid tokenization of the run, a little longer than BPE's own (cuts prevent merges across them), so
 * such counts err on the high side, which is the safe side for a context budget. Text whose pre-tokens
 * are all shorter than a piece (prose, code, JSON) counts exactly as the library counts it.
 */
import { clearMergeCache, countTokens as o200kCount, DEFAULT_MERGE_CACHE_SIZE } from 'gpt-tokenizer/encoding/o200k_base';
import { O200K_TOKEN_SPLIT_REGEX } from 'gpt-tokenizer/encodingParams/constants';

/** Longest chunk handed to the pre-tokenizing regex (its backtracking stack stays small). */
export const CHUNK_UNITS = 8192;
/** Longest pre-token handed to BPE, in UTF-16 code units (at most 128 UTF-8 bytes). */
export const PIECE_UNITS = 32;

/** Special tokens are counted as the characters they are, never rejected or given their special id. */
const AS_PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

/**
 * Characters counted since the library's merge cache was last emptied. The cache is a Map used as an
 * LRU: once full, every eviction reads its first key, and V8 walks over all the holes deleted entries
 * left at the front, so text of many distinct pre-tokens made every later count, even of cached
 * text, up to 20× slower. A segment adds at most one entry per character, so emptying the cache
 * before it could fill means it never evicts.
 */
let countedSinceClear = 0;

/** Number of o200k tokens of `text`, in time linear in its length whatever it contains. */
export function countTokens(text: string): number {
  let total = 0;
  for (const segment of bpeSegments(text)) {
    if (countedSinceClear + segment.length > DEFAULT_MERGE_CACHE_SIZE) {
      clearMergeCache();
      countedSinceClear = 0;
    }
    countedSinceClear += segment.length;
    total += o200kCount(segment, AS_PLAIN_TEXT);
  }
  return total;
}

/**
 * The segments {@link countTokens} hands to the library, in order; their concatenation is `text`.
 * Every pre-token inside a segment is at most {@link PIECE_UNITS} code units, which is what bounds
 * the BPE work (exported so that bound is tested on the actual cuts).
 */
export function* bpeSegments(text: string): Generator<string> {
  for (const chunk of chunks(text)) {
    if (!mayHoldLongPreToken(chunk)) {
      yield chunk;
      continue;
    }
    let start = 0;
    for (const match of chunk.matchAll(O200K_TOKEN_SPLIT_REGEX)) {
      const preToken = match[0];
      if (preToken.length <= PIECE_UNITS) continue;
      if (match.index > start) yield chunk.slice(start, match.index);
      yield* pieces(preToken, PIECE_UNITS);
      start = match.index + preToken.length;
    }
    if (start < chunk.length) yield start === 0 ? chunk : chunk.slice(start);
  }
}

function* chunks(text: string): Generator<string> {
  let start = 0;
  while (text.length - start > CHUNK_UNITS) {
    let cut = start + CHUNK_UNITS;
    while (cut > start && !isCut(text, cut)) cut--;
    if (cut === start) cut = lastWordEnd(text, start, start + CHUNK_UNITS);
    yield text.slice(start, cut);
    start = cut;
  }
  if (start < text.length) yield start === 0 ? text : text.slice(start);
}

/**
 * False when no pre-token of `chunk` can be longer than a piece: pre-tokens never cross a cut (see
 * step 1), so when cuts are at most {@link PIECE_UNITS} apart, neither is any pre-token. Prose passes
 * this scan of character codes and skips the regex's second pass and its match objects.
 */
function mayHoldLongPreToken(chunk: string): boolean {
  let lastCut = 0;
  for (let i = 1; i < chunk.length; i++) {
    if (!isCut(chunk, i)) continue;
    if (i - lastCut > PIECE_UNITS) return true;
    lastCut = i;
  }
  return chunk.length - lastCut > PIECE_UNITS;
}

/** A space or tab right after a non-space: no o200k pre-token holds that pair, so one ends here. */
function isCut(text: string, at: number): boolean {
  return isBlank(text.charCodeAt(at)) && !isSpace(text.charCodeAt(at - 1));
}

/**
 * For text without blanks (JSON, minified code): the last place in (start, end] where a letter or
 * digit meets punctuation. A letter's pre-token runs on only over letters, marks and a contraction's
 * apostrophe, a digit's over digits, so one ends there too. Failing that, a blind cut at `end`.
 */
function lastWordEnd(text: string, start: number, end: number): number {
  for (let cut = end; cut > start + 1; cut--) {
    const before = text.charCodeAt(cut - 1);
    if (before >= 0xd800 && before <= 0xdfff) continue; // astral letters are rare: not worth decoding
    WORD_END.lastIndex = cut - 1;
    if (WORD_END.test(text)) return cut;
  }
  return codePointBoundary(text, end);
}
const WORD_END = /[\p{L}\p{N}][^\p{L}\p{N}\p{M}\s']/uy;

function* pieces(run: string, size: number): Generator<string> {
  let start = 0;
  while (run.length - start > size) {
    const cut = codePointBoundary(run, start + size);
    yield run.slice(start, cut);
    start = cut;
  }
  yield run.slice(start);
}

/** `at`, or one less when `at` would split a surrogate pair. */
function codePointBoundary(text: string, at: number): number {
  const c = text.charCodeAt(at);
  return c >= 0xdc00 && c <= 0xdfff ? at - 1 : at;
}

function isBlank(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/** Whitespace as the regex's `\s` sees it, for the characters that matter here. */
function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0xa0 || c === 0x3000 || c === 0xfeff || (c >= 0x2000 && c <= 0x200a) || c === 0x1680 || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f;
}
