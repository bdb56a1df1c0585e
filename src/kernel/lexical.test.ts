import { describe, expect, it } from 'vitest';
import { LexicalIndex, terms } from './lexical.ts';

describe('terms', () => {
  it('are words without stop or question words, plus adjacent pairs within a line', () => {
    expect(terms('Which access code opens vault 17?')).toEqual(['access', 'code', 'open', 'vault', '17', 'access_code', 'code_open', 'open_vault', 'vault_17']);
    // JSON-escaped line breaks separate words and lines; no pair spans them.
    expect(terms('"vault 17\\nserver 12"')).toEqual(['vault', '17', 'server', '12', 'vault_17', 'server_12']);
  });
});

describe('LexicalIndex', () => {
  it('finds the page where the words of a question stand together, among pages that mention them apart', () => {
    const index = new LexicalIndex();
    for (let i = 1; i <= 40; i++) index.add(i, `vault ${10 + i} sync ok. access granted to code review ${i}`);
    index.add(100, 'Ops note: the access code for vault 17 is 4431.');
    const hits = index.search('Which access code opens vault 17?');
    expect(hits[0]?.id).toBe(100);
    expect(hits[0]!.score).toBeGreaterThan(hits[1]?.score ?? 0);
  });

  it('scores by distinctive terms, ignoring scaffolding every document shares and words none contains', () => {
    const index = new LexicalIndex();
    for (let i = 1; i <= 30; i++) index.add(i, `status ok latency ${i}ms entry${i} result value path`);
    index.add(100, 'The access code for vault 17 is 4431.');
    const hits = index.search('{"status":200,"value":{"body":"Question: which access code opens vault 17?","path":"/x"}}');
    expect(hits[0]?.id).toBe(100);
    expect(hits.length).toBe(1);
    expect(index.search('status ok value path')).toEqual([]);
    index.remove(100);
    expect(index.search('access code vault')).toEqual([]);
  });
});
