/**
 * Context benchmark: an in-memory stand-in for the ProcessRuntime surface the context manager uses
 * (page table, BM25 index and page bodies exactly as ProcessRuntime.addPage writes them), so the
 * simulation (./sim.ts) runs the kernel's own prepareContext, vectorRecall and findSwapped unchanged.
 */
import { type PageBody, pageText } from '../../../src/kernel/context.ts';
import { INDEX_CHARS, LexicalIndex } from '../../../src/kernel/lexical.ts';
import { KIND_IMPORTANCE } from '../../../src/kernel/pager.ts';
import { countTokens } from '../../../src/llm/tokens.ts';
import { EXCERPT_CHARS, type PageMetaRow } from '../../../src/process/store.ts';

interface Row {
  seq: number;
  step: number;
  kind: string;
  tokens: number;
  importance: number;
  pinned: boolean;
  resident: boolean;
  access_count: number;
  last_access: number;
  text: string;
  body: PageBody;
  batch: number;
  /** Chunks in the vector index (null: not indexed). */
  chunks: number | null;
}

/** The pages table of ProcessStore (the methods prepareContext calls), in memory: no SQLite, so its cost is not in the measured latency. */
export class SimStore {
  readonly rows: Row[] = [];
  readonly #byStep = new Map<number, Row[]>();
  /** performance.now() when the last transaction committed. */
  lastCommit = 0;

  append(row: Row): void {
    this.rows.push(row);
    const list = this.#byStep.get(row.step);
    if (list) list.push(row);
    else this.#byStep.set(row.step, [row]);
  }
  pageMeta(): PageMetaRow[] {
    return this.rows.map((r) => ({ seq: r.seq, step: r.step, kind: r.kind, tokens: r.tokens, importance: r.importance, pinned: r.pinned, resident: r.resident, access_count: r.access_count, last_access: r.last_access, text: r.text, batch: r.batch }));
  }
  pageTotals(): { tokens: number; swapped: boolean } {
    let tokens = 0;
    let swapped = false;
    for (const r of this.rows) {
      tokens += r.tokens;
      if (!r.resident) swapped = true;
    }
    return { tokens, swapped };
  }
  residentPages(): { seq: number; step: number; kind: string; body: unknown }[] {
    return this.rows.filter((r) => r.resident).map((r) => ({ seq: r.seq, step: r.step, kind: r.kind, body: r.body }));
  }
  setResident(steps: readonly number[], resident: boolean, now: number, batch = 0): void {
    for (const step of steps) {
      for (const r of this.#byStep.get(step) ?? []) {
        if (resident) {
          r.resident = true;
          r.access_count += 1;
          r.last_access = now;
        } else {
          r.resident = false;
          r.batch = batch;
        }
      }
    }
  }
  touchSteps(steps: readonly number[], now: number): void {
    for (const step of steps) {
      for (const r of this.#byStep.get(step) ?? []) {
        r.access_count += 1;
        r.last_access = now;
      }
    }
  }
  rebatchSwapped(batch: number): void {
    for (const r of this.rows) if (!r.resident) r.batch = batch;
  }
  recalledSteps(): Set<number> {
    const out = new Set<number>();
    for (const r of this.rows) if (r.resident && r.body.kind === 'recall') out.add(r.body.from_step);
    return out;
  }
  pagesOfSteps(steps: readonly number[]): { seq: number; step: number; kind: string; body: unknown }[] {
    return steps.flatMap((s) => this.#byStep.get(s) ?? []).sort((a, b) => a.seq - b.seq).map((r) => ({ seq: r.seq, step: r.step, kind: r.kind, body: r.body }));
  }
  unembeddedSwapped(limit: number): { seq: number; step: number; kind: string; body: unknown }[] {
    return this.rows
      .filter((r) => !r.resident && r.chunks === null && r.kind !== 'recall')
      .slice(0, limit)
      .map((r) => ({ seq: r.seq, step: r.step, kind: r.kind, body: r.body }));
  }
  markEmbedded(pages: readonly { seq: number; chunks: number }[]): void {
    const bySeq = new Map(pages.map((p) => [p.seq, p.chunks]));
    for (const r of this.rows) if (bySeq.has(r.seq)) r.chunks = bySeq.get(r.seq) as number;
  }
  newestStep(): number {
    return this.rows.at(-1)?.step ?? 0;
  }
  stepResident(step: number): boolean {
    return (this.#byStep.get(step) ?? []).every((r) => r.resident);
  }
  transaction<T>(fn: () => T): T {
    const out = fn();
    this.lastCommit = performance.now();
    return out;
  }
}

export class SimRuntime {
  readonly store = new SimStore();
  readonly events: { type: string; data: unknown }[] = [];
  readonly #index = new LexicalIndex();
  #seq = 0;
  now = 1_700_000_000_000;

  /** As ProcessRuntime.addPage: counted with the tokenizer, scored by kind, indexed (first INDEX_CHARS; not recall pages). */
  addPage(step: number, body: PageBody): void {
    const text = pageText(body);
    const seq = ++this.#seq;
    this.store.append({ seq, step, kind: body.kind, tokens: countTokens(text), importance: KIND_IMPORTANCE[body.kind] ?? 0.5, pinned: false, resident: true, access_count: 0, last_access: this.now, text: text.slice(0, EXCERPT_CHARS), body, batch: 0, chunks: null });
    if (body.kind !== 'recall') this.#index.add(seq, text.slice(0, INDEX_CHARS));
  }
  index(): LexicalIndex {
    return this.#index;
  }
  emit(type: string, data: unknown): void {
    this.events.push({ type, data });
  }
}
