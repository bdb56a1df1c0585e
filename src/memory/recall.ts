/**
 * Recall by meaning for the context manager: swapped-out context pages are embedded when they are
 * evicted, and the pages most similar to what the model is working on can be found again even when
 * the words differ (with a semantic embedder; the local lexical one only finds shared words).
 *
 * Pages live in the kernel-only namespace `pages/<pid>` of the process's tenant: no agent can name
 * it (mem_* refuse `pages/…`), and operators can search it (`GET /v1/memory/search?namespace=pages/<pid>`).
 * A page's memory id is `page-<seq>`; its metadata holds its step and seq.
 *
 * These functions only talk to the memory service; they do not decide what is resident. The caller
 * (src/process/context-manager.ts) decides which pages to evict and which recalled steps to page in.
 *
 * @example
 *   // In the process: the service is StepDeps.memory() (durable/agent-process.ts builds it).
 *   const owner = { tenant: pcb.tenant, pid: pcb.pid };
 *   // After a compaction evicted steps 12–15 (one batched embedding call for all their pages):
 *   await embedAndIndexSwappedPages(memory, owner, evicted.map((p) => ({ seq: p.seq, step: p.step, text: p.text })));
 *   // Before building the prompt: swapped steps similar to the newest input, best first.
 *   const hits = await recallSimilar(memory, owner, newestInput, 5); // [{ seq, step, score }]
 */
import { MAX_TEXT_BYTES, MAX_TOP_K, pagesNamespace } from '../kernel/memory.ts';
import type { MemoryService } from './service.ts';
import type { MemoryScope } from './types.ts';

export interface PageOwner {
  readonly tenant: string;
  readonly pid: string;
}

export interface SwappedPage {
  readonly seq: number;
  readonly step: number;
  /** The page's text (pageText of its body); the first PAGE_TEXT_CHARS are embedded and stored. */
  readonly text: string;
}

export interface RecalledPage {
  readonly seq: number;
  readonly step: number;
  /** Cosine similarity in [-1, 1]; higher is closer. */
  readonly score: number;
}

/** Characters of a page that are embedded (the same excerpt the lexical index uses). */
export const PAGE_TEXT_CHARS = 2000;

export function pageScope(owner: PageOwner): MemoryScope {
  return { tenant: owner.tenant, namespace: pagesNamespace(owner.pid) };
}

export const pageMemoryId = (seq: number): string => `page-${seq}`;

/** Cut to a character count, then to the byte limit, without splitting a surrogate pair. */
function excerpt(text: string): string {
  let s = Array.from(text.slice(0, PAGE_TEXT_CHARS + 1)).slice(0, PAGE_TEXT_CHARS).join('');
  const enc = new TextEncoder();
  while (enc.encode(s).byteLength > MAX_TEXT_BYTES) s = Array.from(s).slice(0, -64).join('');
  return s;
}

/**
 * Embed pages that were just swapped out and index them in `pages/<pid>`, in one batched embedding
 * call (cached by content hash, so a page evicted again costs no second call). Writing a page that is
 * already indexed replaces it. Pages with no text are skipped.
 */
export async function embedAndIndexSwappedPages(memory: MemoryService, owner: PageOwner, pages: readonly SwappedPage[]): Promise<void> {
  const items = pages
    .filter((p) => p.text.trim() !== '')
    .map((p) => ({ id: pageMemoryId(p.seq), text: excerpt(p.text), metadata: { step: p.step, seq: p.seq } }));
  await memory.write(pageScope(owner), items);
}

/** One page: `embedAndIndexSwappedPages` for a single page. */
export function embedAndIndexSwappedPage(memory: MemoryService, owner: PageOwner, page: SwappedPage): Promise<void> {
  return embedAndIndexSwappedPages(memory, owner, [page]);
}

/**
 * The indexed pages most similar to `query`, best first: at most `k` (1–20, Vectorize's cap), and only
 * those scoring at least `minScore` (default 0). Pages indexed once stay indexed after they are paged
 * back in, so the caller drops the hits that are resident now. Several pages of one step may match:
 * group by `step` to page steps in.
 */
export async function recallSimilar(memory: MemoryService, owner: PageOwner, query: string, k: number, minScore = 0): Promise<RecalledPage[]> {
  if (query.trim() === '') return [];
  const topK = Math.max(1, Math.min(MAX_TOP_K, Math.floor(k)));
  const found = await memory.search(pageScope(owner), { query: query.slice(0, 8000), top_k: topK });
  return found.results
    .filter((m) => m.score >= minScore && typeof m.metadata.seq === 'number' && typeof m.metadata.step === 'number')
    .map((m) => ({ seq: m.metadata.seq as number, step: m.metadata.step as number, score: m.score }));
}

/** Remove pages from the index (e.g. when the process's storage is released). Returns the seqs that were indexed. */
export async function forgetPages(memory: MemoryService, owner: PageOwner, seqs: readonly number[]): Promise<number[]> {
  const gone = await memory.delete(pageScope(owner), seqs.map(pageMemoryId));
  return gone.map((id) => Number(id.slice('page-'.length)));
}
