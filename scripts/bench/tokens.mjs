#!/usr/bin/env node
/**
 * Token counting on hostile text (src/llm/tokens.ts): CPU per MB for each kind of text, as a ratio
 * to prose of the same size counted in the same run (the floor), and the library alone on growing
 * runs of one character, which is where it was quadratic.
 *
 *   PATH=node_modules/.bin:$PATH node --experimental-strip-types scripts/bench/tokens.mjs [--mb 5] [--reps 3]
 *
 * CPU time (process.cpuUsage), best of `reps` cold runs, so a shared machine's load inflates less.
 */
import { parseArgs } from 'node:util';
import { clearMergeCache, countTokens as libraryCount } from 'gpt-tokenizer/encoding/o200k_base';
import { countTokens } from '../../src/llm/tokens.ts';

const { values } = parseArgs({ options: { mb: { type: 'string', default: '5' }, reps: { type: 'string', default: '3' } } });
const bytes = Number(values.mb) * 1_000_000;
const reps = Number(values.reps);

function randomText(length, alphabet) {
  const symbols = [...alphabet];
  let x = 12345;
  let s = '';
  while (s.length < length) {
    x = (Math.imul(x, 1103515245) + 12345) & 0x7fffffff;
    s += symbols[x % symbols.length];
  }
  return s;
}

const prose = 'The quick brown fox jumps over the lazy dog. Ça va? 東京 1234 (a+b)*c;\n\tfoo  bar   baz\r\n';
const kinds = {
  prose: () => prose.repeat(Math.ceil(bytes / prose.length)).slice(0, bytes),
  'one repeated character': () => 'x'.repeat(bytes),
  'repeated multi-byte characters': () => 'é中😀'.repeat(bytes / 4),
  'combining marks': () => 'a' + '\u0301'.repeat(bytes),
  'nested brackets (100 k deep)': () => ('('.repeat(100_000) + ')'.repeat(100_000)).repeat(Math.max(1, Math.round(bytes / 200_000))),
  'special tokens as text': () => '<|endoftext|>'.repeat(Math.round(bytes / 13)),
  'random letters, no spaces': () => randomText(bytes, 'abcdefghijklmnopqrstuvwxyz'),
  'random CJK, no punctuation': () => randomText(bytes, '的一是不了人我在有他这为之大来以个中上们'),
};

function cpuMs(f) {
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    clearMergeCache(); // each rep starts cold: the library caches whole pre-tokens
    const start = process.cpuUsage();
    f();
    const d = process.cpuUsage(start);
    best = Math.min(best, (d.user + d.system) / 1000);
  }
  return best;
}

const rows = [];
let floor = 0;
for (const [name, make] of Object.entries(kinds)) {
  const text = make();
  const ms = cpuMs(() => countTokens(text));
  if (name === 'prose') floor = ms;
  rows.push(`| ${name} | ${(text.length / 1e6).toFixed(2)} M | ${countTokens(text).toLocaleString('en')} | ${ms.toFixed(0)} | ${(ms / floor).toFixed(2)} |`);
}
console.log(`countTokens, ${values.mb} MB each, best of ${reps} (CPU ms; ratio to prose in this run)\n`);
console.log('| text | UTF-16 units | tokens | CPU ms | × prose |\n|---|---:|---:|---:|---:|');
console.log(rows.join('\n'));

console.log('\nThe library alone on one run of "x" (the quadratic this replaces), and countTokens on the same\n');
console.log('| characters | library CPU ms | countTokens CPU ms |\n|---:|---:|---:|');
for (const n of [5_000, 10_000, 20_000, 40_000, 80_000]) {
  const text = 'x'.repeat(n);
  console.log(`| ${n.toLocaleString('en')} | ${cpuMs(() => libraryCount(text)).toFixed(0)} | ${cpuMs(() => countTokens(text)).toFixed(1)} |`);
}
