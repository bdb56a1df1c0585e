/**
 * Recall by meaning for the context manager: swapped-out context pages are embedded when they are
 * evicted, and the pages most similar to what the model is working on can be found again even when
 * the words differ (with a semantic embedder; the local lexical one only finds shared words).
 *
 * Pages live in the kernel-only namespace `pages/<pid>` of the process's tenant: no agent can name
 * it (mem_* refuse `pages/…`), and operators can search it (`GET /v1/memory/search?namespace=pages/<pid>`).
 * A page is indexed line by line (`page-<seq>-<n>`, metadata {step, seq, chunk}): a fact buried in a
 * long tool result gets a vector of its own instead of being averaged away with the filler.
 *
 * These functions only talk to the memory service; they do not decide what is resident. The caller
 * (src/process/context-manager.ts) decides which pages to evict and which recalled steps to page in.
 *
 * @example
 *   // In the process: the service is StepDeps.memory() (durable/agent-process.ts builds it).
 *   const owner = { tenant: pcb.tenant, pid: pcb.pid };
 *   // After a compaction evicted steps 12–15 (one batched embedding call, at most 500 chunks):
 *   const indexed = await embedAndIndexSwappedPages(memory, owner, evicted, 500); // [{ seq, step, chunks }]
 *   // Before building the prompt: the steps most similar to a line of the newest input.
 *   const [hits = []] = await memory.searchMany(pageScope(owner), [line], 20);
 *   const steps = topSteps(hits, 3); // [{ step, score }]
 */
import { MAX_TEXT_BYTES, pagesNamespace } from '../kernel/memory.ts';
import type { MemoryService } from './service.ts';
import type { MemoryScope } from './types.ts';

export interface PageOwner {
  readonly tenant: string;
  readonly pid: string;
}

export interface SwappedPage {
  readonly seq: number;
  readonly step: number;
  /** The page as it is embedded (kernel/context.ts embeddingText); its first PAGE_TEXT_CHARS are chunked. */
  readonly text: string;
}

/** Characters of a page that are indexed (the lexical index reads 16,000; tool results are capped near this). */
export const PAGE_TEXT_CHARS = 8000;
/** A chunk is a line, up to this many characters (a longer line is cut at a space). */
export const CHUNK_CHARS = 200;
/** Chunks indexed per page at most. */
export const MAX_CHUNKS = 64;

export function pageScope(owner: PageOwner): MemoryScope {
  return { tenant: owner.tenant, namespace: pagesNamespace(owner.pid) };
}

export const chunkMemoryId = (seq: number, chunk: number): string => `page-${seq}-${chunk}`;

/** Cut to at most `max` bytes of UTF-8 without splitting a character. */
function clampBytes(text: string, max: number): string {
  const enc = new TextEncoder();
  if (enc.encode(text).byteLength <= max) return text;
  let s = Array.from(text);
  while (enc.encode(s.join('')).byteLength > max) s = s.slice(0, -64);
  return s.join('');
}

/**
 * Split a page's text into chunks: one per line (a sentence encoder compares sentences; a fact in a
 * log file is one line among many), a line longer than `size` cut at the last space before it. Lines of
 * fewer than three words ("status: 200", a path, a tool's name) say nothing about meaning and make
 * every result of one tool look alike: they are left out. At most MAX_CHUNKS per page.
 */
export function chunkText(text: string, size = CHUNK_CHARS): string[] {
  const chunks: string[] = [];
  for (const raw of text.slice(0, PAGE_TEXT_CHARS).split('\n')) {
    let line = raw.trim();
    while (line !== '') {
      let piece = line;
      if (line.length > size) {
        const cut = line.lastIndexOf(' ', size);
        piece = line.slice(0, cut > size / 2 ? cut : size);
      }
      line = line.slice(piece.length).trim();
      if (piece.split(/\s+/).filter((w) => /\p{L}{2}/u.test(w)).length >= 3) chunks.push(clampBytes(piece, MAX_TEXT_BYTES));
      if (chunks.length >= MAX_CHUNKS) return chunks;
    }
  }
  return chunks;
}

/**
 * Embed pages that were just swapped out and index them in `pages/<pid>`, chunk by chunk, in one
 * batched embedding call (cached by content hash, so a chunk seen before costs no second call).
 * Whole pages, in order, while their chunks fit `maxChunks` (the first page always goes). Writing a
 * page again replaces its chunks. Returns the pages indexed, with how many chunks each has.
 */
export async function embedAndIndexSwappedPages(memory: MemoryService, owner: PageOwner, pages: readonly SwappedPage[], maxChunks = Infinity): Promise<{ seq: number; step: number; chunks: number }[]> {
  const taken: { page: SwappedPage; chunks: string[] }[] = [];
  let total = 0;
  for (const page of pages) {
    const chunks = chunkText(page.text);
    if (taken.length > 0 && total + chunks.length > maxChunks) break;
    taken.push({ page, chunks });
    total += chunks.length;
  }
  const items = taken.flatMap(({ page, chunks }) => chunks.map((text, n) => ({ id: chunkMemoryId(page.seq, n), text, metadata: { step: page.step, seq: page.seq, chunk: n } })));
  await memory.write(pageScope(owner), items);
  return taken.map(({ page, chunks }) => ({ seq: page.seq, step: page.step, chunks: chunks.length }));
}

/**
 * The steps whose chunks are most similar to a query, best first (a step scores as its best chunk):
 * at most `steps` of them. Hits without step metadata are ignored.
 */
export function topSteps(hits: readonly { score: number; metadata: Readonly<Record<string, unknown>> }[], steps: number): { step: number; score: number }[] {
  const best = new Map<number, number>();
  for (const h of hits) {
    const step = h.metadata.step;
    if (typeof step !== 'number') continue;
    if (h.score > (best.get(step) ?? -2)) best.set(step, h.score);
  }
  return [...best.entries()]
    .map(([step, score]) => ({ step, score }))
    .sort((a, b) => b.score - a.score)
    .slice(0, steps);
}

/** Ids per delete call when forgetting pages. */
export const FORGET_BATCH = 100;

/**
 * Remove pages' chunks from the index (when the process is removed), FORGET_BATCH ids per call.
 * Returns how many chunks were deleted.
 */
export async function forgetPages(memory: MemoryService, owner: PageOwner, pages: readonly { seq: number; chunks: number }[]): Promise<number> {
  const ids = pages.flatMap((p) => Array.from({ length: p.chunks }, (_, n) => chunkMemoryId(p.seq, n)));
  let deleted = 0;
  for (let i = 0; i < ids.length; i += FORGET_BATCH) deleted += (await memory.delete(pageScope(owner), ids.slice(i, i + FORGET_BATCH))).length;
  return deleted;
}
