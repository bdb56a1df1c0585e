/**
 * A process's context pages (the `pages` table) and the page table kept beside them in memory.
 *
 * The page table without bodies is loaded with one read per instance, then kept in step with every
 * write below (the object is its storage's only writer), so a step reads no page rows whatever the
 * session's length. Entries are immutable (a change replaces one) and the running totals follow
 * them; a commit that throws undoes its changes through the open commit's undo log (./commit.ts).
 * Pages are numbered here and changed by number: the table has no index by step.
 */
import { type Pending, updateWhereIn } from './commit.ts';
import type { PageInfo } from '../kernel/pager.ts';

export type PageRow = {
  readonly seq: number;
  readonly step: number;
  readonly kind: string;
  readonly body: unknown;
};

/** What the pager knows of a page (src/kernel/pager.ts), plus its kind. */
export type PageMetaRow = PageInfo & { readonly kind: string; readonly last_access: number };

/** The searchable excerpt kept per page (bounded, so the in-memory index stays small). */
export const EXCERPT_CHARS = 2000;

export class PageStore {
  readonly #sql: SqlStorage;
  readonly #w: Pending;
  /** Page bodies never change once written, so they are parsed once and kept. */
  #bodies = new Map<number, unknown>();

  constructor(sql: SqlStorage, pending: Pending) {
    this.#sql = sql;
    this.#w = pending;
  }

  /** The table was created just now (a new object): empty, known without a read. */
  empty(): void {
    this.reset();
    this.#table = emptyPageTable();
    this.#pageNext = 1;
  }

  /** Forget the caches: the table was rewritten underneath them (a restore) or dropped. */
  reset(): void {
    this.#bodies = new Map();
    this.#table = undefined;
    this.#pageNext = undefined;
  }

  /**
   * The page table without bodies, in memory: loaded with one read per instance, then kept in step
   * with every write below (this object is the only writer), so a step reads no page rows whatever
   * the session's length. Entries are immutable (a change replaces one), and the running totals
   * follow them; a transaction that throws undoes its changes from `#undo`.
   */
  #table: PageTable | undefined;

  #pages(): PageTable {
    if (!this.#table) {
      const t = emptyPageTable();
      const rows = this.#sql
        .exec<{ seq: number; step: number; kind: string; tokens: number; importance: number; pinned: number; resident: number; access_count: number; last_access: number; excerpt: string; batch: number; chunks: number | null; untrusted: number | null; from_step: number | null }>(
          "SELECT seq, step, kind, tokens, importance, pinned, resident, access_count, last_access, excerpt, batch, chunks, json_extract(body, '$.untrusted') AS untrusted, CASE WHEN kind = 'recall' THEN json_extract(body, '$.from_step') END AS from_step FROM pages ORDER BY seq",
        )
        .toArray();
      for (const r of rows) {
        pushEntry(t, { seq: r.seq, step: r.step, kind: r.kind, tokens: r.tokens, importance: r.importance, pinned: r.pinned === 1, resident: r.resident === 1, access_count: r.access_count, last_access: r.last_access, text: r.excerpt, batch: r.batch, chunks: r.chunks, untrusted: r.untrusted === 1, from_step: r.from_step });
      }
      this.#table = t;
    }
    return this.#table;
  }

  /** Replace entry `i` (already written to SQLite), keeping the totals and the undo log. */
  #replace(i: number, next: PageEntry): void {
    const t = this.#pages();
    const prev = t.entries[i]!;
    setEntry(t, i, next);
    this.#w.onUndo(() => setEntry(t, i, prev));
  }

  /** Change every page of some steps, in memory and in SQLite (`set` with its parameters), by seq: pages have no index by step. */
  #updateSteps(steps: readonly number[], set: string, params: readonly SqlStorageValue[], change: (e: PageEntry) => PageEntry): void {
    this.#w.settle();
    const t = this.#pages();
    const at = steps.flatMap((step) => t.byStep.get(step) ?? []);
    updateWhereIn(this.#sql, 'pages', set, params, 'seq', at.map((i) => t.entries[i]!.seq));
    for (const i of at) this.#replace(i, change(t.entries[i]!));
  }

  append(step: number, kind: string, body: unknown, at: number, meta: { tokens: number; importance: number; excerpt: string } = { tokens: 0, importance: 0.5, excerpt: '' }): number {
    const t = this.#pages();
    const excerpt = meta.excerpt.slice(0, EXCERPT_CHARS);
    const json = JSON.stringify(body);
    this.#pageNext ??= (this.#sql.exec<{ n: number | null }>('SELECT MAX(seq) AS n FROM pages').one().n ?? 0) + 1;
    const seq = this.#pageNext;
    this.#pageNext = seq + 1;
    this.#w.pages.push({ seq, step, kind, body: json, at, tokens: meta.tokens, importance: meta.importance, excerpt });
    if (!this.#w.open) this.#w.write();
    // Cache a parsed copy (what a read would return), not the caller's object.
    const parsed = JSON.parse(json) as unknown;
    this.#bodies.set(seq, parsed);
    const fields = typeof parsed === 'object' && parsed !== null ? (parsed as { untrusted?: unknown; from_step?: unknown }) : {};
    const maxStep = t.maxStep;
    pushEntry(t, {
      seq, step, kind, tokens: meta.tokens, importance: meta.importance, pinned: false, resident: true, access_count: 0, last_access: at, text: excerpt, batch: 0, chunks: null,
      untrusted: fields.untrusted === true || fields.untrusted === 1,
      from_step: kind === 'recall' && typeof fields.from_step === 'number' ? fields.from_step : null,
    });
    // Rolled back, the page is gone (and its seq is reused).
    this.#w.onUndo(() => {
      popEntry(t, maxStep);
      this.#bodies.delete(seq);
      this.#pageNext = seq;
    });
    return seq;
  }

  /** The next page's number: read once per instance, then counted here (pages are never deleted). */
  #pageNext: number | undefined;

  /** Every page, in order (resident or not). */
  all(): PageRow[] {
    this.#w.settle();
    return this.#sql
      .exec<{ seq: number; step: number; kind: string; body: string }>('SELECT seq, step, kind, body FROM pages ORDER BY seq')
      .toArray()
      .map((r) => ({ seq: r.seq, step: r.step, kind: r.kind, body: this.#bodies.get(r.seq) ?? (JSON.parse(r.body) as unknown) }));
  }

  /** The page table without bodies (from memory; treat the entries as immutable). */
  meta(): PageMetaRow[] {
    return [...this.#pages().entries];
  }

  /** Total tokens and whether any page is swapped out: enough to know when there is nothing to plan. */
  totals(): { tokens: number; swapped: boolean } {
    const t = this.#pages();
    return { tokens: t.tokens, swapped: t.swapped > 0 };
  }

  /** Bodies of some entries: from the cache, the missing ones read in one statement. */
  #withBodies(entries: readonly PageEntry[]): PageRow[] {
    const missing = entries.filter((e) => !this.#bodies.has(e.seq)).map((e) => e.seq);
    for (let i = 0; i < missing.length; i += 100) {
      const seqs = missing.slice(i, i + 100);
      for (const r of this.#sql.exec<{ seq: number; body: string }>(`SELECT seq, body FROM pages WHERE seq IN (${seqs.map(() => '?').join(', ')})`, ...seqs).toArray()) {
        this.#bodies.set(r.seq, JSON.parse(r.body) as unknown);
      }
    }
    return entries.map((e) => ({ seq: e.seq, step: e.step, kind: e.kind, body: this.#bodies.get(e.seq) }));
  }

  /** Resident pages with their bodies, in order. Bodies come from the cache; only missing ones are read. */
  resident(): PageRow[] {
    return this.#withBodies(this.#pages().entries.filter((e) => e.resident));
  }

  /** Bring steps back (counting an access) or swap them out as compaction `batch`. */
  setResident(steps: readonly number[], resident: boolean, now: number, batch = 0): void {
    if (resident) this.#updateSteps(steps, 'resident = 1, access_count = access_count + 1, last_access = ?', [now], (e) => ({ ...e, resident: true, access_count: e.access_count + 1, last_access: now }));
    else this.#updateSteps(steps, 'resident = 0, batch = ?', [batch], (e) => ({ ...e, resident: false, batch }));
  }

  /** The pages of some steps, with bodies, in order. */
  ofSteps(steps: readonly number[]): PageRow[] {
    if (steps.length === 0) return [];
    const t = this.#pages();
    const idx = steps.flatMap((s) => t.byStep.get(s) ?? []).sort((a, b) => a - b);
    return this.#withBodies([...new Set(idx)].map((i) => t.entries[i]!));
  }

  /** The newest step that has pages (0 when only the task is there). */
  newestStep(): number {
    return this.#pages().maxStep;
  }

  /** Swapped-out pages not yet in the vector index (recall copies are not indexed: their originals are), oldest first. */
  unembeddedSwapped(limit: number): PageRow[] {
    const t = this.#pages();
    if (t.swapped === 0) return [];
    return this.#withBodies(t.entries.filter((e) => !e.resident && e.chunks === null && e.kind !== 'recall').slice(0, limit));
  }

  /** Record that pages are in the vector index, with how many chunks each. */
  markEmbedded(pages: readonly { seq: number; chunks: number }[]): void {
    this.#w.settle();
    const t = this.#pages();
    const at = new Map(t.entries.map((e, i) => [e.seq, i]));
    for (const p of pages) {
      this.#sql.exec('UPDATE pages SET chunks = ? WHERE seq = ?', p.chunks, p.seq);
      const i = at.get(p.seq);
      if (i !== undefined) this.#replace(i, { ...t.entries[i]!, chunks: p.chunks });
    }
  }

  /** Pages with chunks in the vector index (to delete them when the process is removed). */
  embedded(): { seq: number; chunks: number }[] {
    return this.#pages().entries.flatMap((e) => (e.chunks !== null && e.chunks > 0 ? [{ seq: e.seq, chunks: e.chunks }] : []));
  }

  /** A major compaction: every swapped page joins `batch`, so adjacent runs merge. */
  rebatchSwapped(batch: number): void {
    this.#w.settle();
    const t = this.#pages();
    const at = t.entries.flatMap((e, i) => (e.resident ? [] : [i]));
    updateWhereIn(this.#sql, 'pages', 'batch = ?', [batch], 'seq', at.map((i) => t.entries[i]!.seq));
    for (const i of at) this.#replace(i, { ...t.entries[i]!, batch });
  }

  /** Count an access to steps that stay where they are (a page fault recalls a copy). */
  touchSteps(steps: readonly number[], now: number): void {
    this.#updateSteps(steps, 'access_count = access_count + 1, last_access = ?', [now], (e) => ({ ...e, access_count: e.access_count + 1, last_access: now }));
  }

  /** Swapped steps whose content is in the working set through a resident recall page. */
  recalledSteps(): Set<number> {
    const t = this.#pages();
    const out = new Set<number>();
    for (const i of t.recalls) {
      const e = t.entries[i]!;
      if (e.resident && e.from_step !== null) out.add(e.from_step);
    }
    return out;
  }

  /** Pin or unpin every page of a step; returns how many pages it has. */
  setPinned(step: number, pinned: boolean): number {
    this.#updateSteps([step], 'pinned = ?', [pinned ? 1 : 0], (e) => ({ ...e, pinned }));
    return this.#pages().byStep.get(step)?.length ?? 0;
  }

  /** Whether untrusted content (fetched pages, a task from a tainted parent …) is in the working set. */
  tainted(floorStep: number): boolean {
    const t = this.#pages();
    return t.untrusted.some((i) => {
      const e = t.entries[i]!;
      return e.resident && (e.step === 0 || e.step >= floorStep);
    });
  }
}

/** A page as the store keeps it in memory: its metadata, and what the hot path asks of its body. */
type PageEntry = PageMetaRow & { readonly chunks: number | null; readonly untrusted: boolean; readonly from_step: number | null };

/** The in-memory page table, its indexes and totals (ProcessStore keeps it exact). */
type PageTable = {
  readonly entries: PageEntry[];
  /** Positions in `entries` by step. */
  readonly byStep: Map<number, number[]>;
  tokens: number;
  /** How many pages are swapped out. */
  swapped: number;
  maxStep: number;
  /** Positions of untrusted pages, and of recall pages (both rare). */
  readonly untrusted: number[];
  readonly recalls: number[];
};

function emptyPageTable(): PageTable {
  return { entries: [], byStep: new Map(), tokens: 0, swapped: 0, maxStep: 0, untrusted: [], recalls: [] };
}

function pushEntry(t: PageTable, e: PageEntry): void {
  const i = t.entries.push(e) - 1;
  const at = t.byStep.get(e.step);
  if (at) at.push(i);
  else t.byStep.set(e.step, [i]);
  t.tokens += e.tokens;
  if (!e.resident) t.swapped++;
  if (e.step > t.maxStep) t.maxStep = e.step;
  if (e.untrusted) t.untrusted.push(i);
  if (e.kind === 'recall') t.recalls.push(i);
}

/** Undo the last pushEntry (maxStep as it was before it). */
function popEntry(t: PageTable, maxStep: number): void {
  const e = t.entries.pop();
  if (!e) return;
  const i = t.entries.length;
  const at = t.byStep.get(e.step);
  at?.pop();
  if (at?.length === 0) t.byStep.delete(e.step);
  t.tokens -= e.tokens;
  if (!e.resident) t.swapped--;
  t.maxStep = maxStep;
  if (t.untrusted.at(-1) === i) t.untrusted.pop();
  if (t.recalls.at(-1) === i) t.recalls.pop();
}

/** Replace an entry in place (same seq and step), adjusting the totals. */
function setEntry(t: PageTable, i: number, next: PageEntry): void {
  const prev = t.entries[i]!;
  t.tokens += next.tokens - prev.tokens;
  t.swapped += (next.resident ? 0 : 1) - (prev.resident ? 0 : 1);
  t.entries[i] = next;
}
