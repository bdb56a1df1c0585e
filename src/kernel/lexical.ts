/**
 * Lexical relevance, pure: the words and adjacent-word pairs of a text (`terms`), a small BM25 index
 * over steps (`LexicalIndex`), and the most distinctive words of some texts (`keywords`, for a
 * stub's topics). The pager (pager.ts) ranks steps with it: which old step the newest input is
 * about, so that it stays resident or faults back in.
 */

/** Characters of a page the search index reads (a fetched body in context is at most 64 K). */
export const INDEX_CHARS = 16_000;

const STOP = new Set(
  (
    'the a an and or of to in on for is are was were be been being by with as at it its this that these those from not no yes you your i we us our me my ' +
    'ok true false null value args result name path content ' +
    // Question and auxiliary words: they say that something is asked, not what it is about.
    'which what where when who whom whose how why does do did should would could can will shall may might must need needs has have had ' +
    'there their them they he she his her then than now still also any some all about into onto over please thanks'
  ).split(' '),
);

const ALPHA = /^[a-z]+$/;

/**
 * A light suffix stripper, so that "expires", "expired" and "expire" (or "pinned" and "pin") meet:
 * plural -s, then -ed or -ing (undoubling a final consonant), then a final -e. Words under five
 * letters and words with digits are kept as they are.
 */
export function stem(word: string): string {
  if (word.length < 5 || /\d/.test(word)) return word;
  let w = word;
  if (w.endsWith('ies')) w = `${w.slice(0, -3)}y`;
  else if (w.endsWith('s') && !w.endsWith('ss') && !w.endsWith('us') && !w.endsWith('is')) w = w.slice(0, -1);
  if (w.length > 5 && w.endsWith('ing')) w = w.slice(0, -3);
  else if (w.length > 4 && w.endsWith('ed')) w = w.slice(0, -2);
  if (w.length > 3 && w.at(-1) === w.at(-2) && !'aeiouls'.includes(w.at(-1) as string)) w = w.slice(0, -1);
  if (w.length > 3 && w.endsWith('e')) w = w.slice(0, -1);
  return w;
}

/**
 * The searchable terms of a text: its words (lower case, at least two characters, stop words out),
 * then the pairs of words that stand next to each other within a line or sentence ("vault 17",
 * "access code"). Pairs are what tell a fact apart from the many pages that mention its words
 * separately. Escaped line breaks in JSON-rendered results count as breaks, not as letters.
 */
export function terms(text: string): string[] {
  const words: string[] = [];
  const pairs: string[] = [];
  for (const segment of text.toLowerCase().split(/\\[nrt]|[\n\r.;:!?|]+(?:\s|$)|[\n\r]/)) {
    const ws = (segment.match(/[a-z0-9]{2,}/g) ?? []).filter((t) => !STOP.has(t)).map(stem);
    for (let i = 0; i < ws.length; i++) {
      words.push(ws[i] as string);
      // A pair needs a word in it: number-number pairs (timestamps, sizes, ids) collide at random.
      if (i > 0 && (ALPHA.test(ws[i - 1] as string) || ALPHA.test(ws[i] as string))) pairs.push(`${ws[i - 1]}_${ws[i]}`);
    }
  }
  return words.concat(pairs);
}

/** How much more a matching pair of adjacent words counts than a matching word. */
const PAIR_WEIGHT = 2;

/** A small BM25 index over documents (steps); scores are normalised to [0, 1] per query. */
export class LexicalIndex {
  readonly #docs = new Map<number, Map<string, number>>();
  readonly #lengths = new Map<number, number>();
  readonly #df = new Map<string, number>();
  #totalLength = 0;

  add(id: number, text: string): void {
    this.remove(id);
    const tf = new Map<string, number>();
    const ts = terms(text);
    for (const t of ts) tf.set(t, (tf.get(t) ?? 0) + 1);
    for (const t of tf.keys()) this.#df.set(t, (this.#df.get(t) ?? 0) + 1);
    this.#docs.set(id, tf);
    this.#lengths.set(id, ts.length);
    this.#totalLength += ts.length;
  }

  remove(id: number): void {
    const tf = this.#docs.get(id);
    if (!tf) return;
    for (const t of tf.keys()) this.#df.set(t, (this.#df.get(t) ?? 1) - 1);
    this.#totalLength -= this.#lengths.get(id) ?? 0;
    this.#docs.delete(id);
    this.#lengths.delete(id);
  }

  /**
   * Normalised BM25 scores of the given ids (all documents when omitted), best first.
   *
   * Only the query's distinctive terms count: those that occur in some document (other than the
   * `exclude`d ones: the query's own pages) but in at most 10% of them. A query is usually a whole tool result, full of scaffolding (JSON keys, headers, dates,
   * numbers) that appears everywhere and says nothing about what the model is looking for; and terms
   * no document contains cannot match. Scores are normalised by the score of an average-length
   * document holding each distinctive term once, and capped at 1.
   *
   * Then a page that mostly restates the query (an earlier question asked the same way) is worth
   * less than one that holds more than the query does: the score is multiplied by the share of the
   * page's terms the query does not have.
   */
  search(query: string, ids?: Iterable<number>, limit = 20, exclude: Iterable<number> = []): { id: number; score: number }[] {
    if (this.#docs.size === 0) return [];
    const n = this.#docs.size;
    const cutoff = Math.max(2, Math.floor(n * 0.1));
    const all = new Set(terms(query));
    // The query's own pages (when the query is a page) do not count as documents holding its terms.
    const own = [...exclude].map((id) => this.#docs.get(id)).filter((tf) => tf !== undefined);
    const q = [...all].filter((t) => {
      const df = this.#df.get(t) ?? 0;
      const elsewhere = df - own.filter((tf) => tf.has(t)).length;
      return elsewhere > 0 && df <= cutoff;
    });
    if (q.length === 0) return [];
    const avg = this.#totalLength / n || 1;
    const k1 = 1.2;
    const b = 0.3;
    // A pair of adjacent words is stronger evidence than the two words anywhere in a page.
    const idf = (t: string) => {
      const df = this.#df.get(t) ?? 0;
      return Math.log(1 + (n - df + 0.5) / (df + 0.5)) * (t.includes('_') ? PAIR_WEIGHT : 1);
    };
    // The score of an average-length document holding each distinctive term once: BM25 gives idf per term.
    const maxPossible = q.reduce((s, t) => s + idf(t), 0) || 1;
    const out: { id: number; score: number }[] = [];
    for (const id of ids ?? this.#docs.keys()) {
      const tf = this.#docs.get(id);
      if (!tf) continue;
      const len = this.#lengths.get(id) ?? 0;
      let s = 0;
      for (const t of q) {
        const f = tf.get(t) ?? 0;
        if (f > 0) s += (idf(t) * f * (k1 + 1)) / (f + k1 * (1 - b + (b * len) / avg));
      }
      if (s <= 0) continue;
      let shared = 0;
      for (const t of all) if (tf.has(t)) shared += 1;
      const novelty = 1 - shared / Math.max(1, tf.size);
      out.push({ id, score: Math.min(1, s / maxPossible) * novelty });
    }
    return out.sort((x, y) => y.score - x.score).slice(0, limit);
  }
}

/** The most distinctive terms of some texts (for stubs). */
export function keywords(texts: readonly string[], limit = 12): string[] {
  const counts = new Map<string, number>();
  for (const t of texts) for (const w of new Set((t.toLowerCase().match(/[a-z0-9]{2,}/g) ?? []).filter((x) => !STOP.has(x)))) counts.set(w, (counts.get(w) ?? 0) + 1);
  return [...counts.entries()]
    .filter(([w]) => w.length > 3 && !w.includes('_') && !/^\d+$/.test(w))
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, limit)
    .map(([w]) => w);
}
