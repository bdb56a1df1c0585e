/**
 * Bench Worker for scripts/bench/memory/run.mjs (not deployed). It hosts the real MemoryIndex class
 * (the embedded vector store) and a variant that never keeps the in-memory copy (every query streams
 * rows from SQLite), and exposes:
 *   POST /insert?index=cached|stream&ns=&from=&count=   upsert `count` seeded vectors (ids from..from+count-1)
 *   POST /query?index=&ns=&seed=&k=&filter=0|1           one query with a seeded vector → {ids, scores}
 *   POST /scan?index=&ns=&seed=&k=&reps=                  `reps` queries back to back in one request
 *   GET  /count?index=&ns=
 * Vectors are generated here from a seed, by the same function run.mjs uses for its plain-JS scan, so
 * both search identical data. Latency is measured by the harness around each HTTP request (workerd's
 * clock does not advance during computation).
 */
import { MemoryIndex } from '../../../durable/memory-index.ts';
import type { MemoryRecord } from '../../../src/memory/types.ts';
import { vectorFor } from './vectors.ts';

export { MemoryIndex };

/** MemoryIndex with the in-memory copy switched off: every query streams the namespace from SQLite. */
export class StreamingMemoryIndex extends MemoryIndex {
  protected override cacheMaxVectors(): number {
    return 0;
  }
}

interface BenchEnv extends Env {
  readonly STREAM_INDEX: DurableObjectNamespace<StreamingMemoryIndex>;
}

const TENANT = 'bench';
const MODEL = 'bench-model';


export default {
  async fetch(request: Request, env: BenchEnv): Promise<Response> {
    const url = new URL(request.url);
    const q = (k: string, d = '') => url.searchParams.get(k) ?? d;
    const ns = env[q('index') === 'stream' ? 'STREAM_INDEX' : 'MEMORY_INDEX'] as DurableObjectNamespace<MemoryIndex>;
    const scope = { tenant: TENANT, namespace: q('ns', 'bench') };
    const stub = ns.get(ns.idFromName(JSON.stringify([scope.tenant, scope.namespace])));
    if (url.pathname === '/insert') {
      const from = Number(q('from', '0'));
      const count = Number(q('count', '1000'));
      const records: MemoryRecord[] = [];
      for (let i = from; i < from + count; i++) records.push({ id: `v${i}`, text: `memory ${i}`, metadata: { bucket: i % 10 }, vector: vectorFor(i + 1), model: MODEL, created_at: i });
      await stub.upsert(scope, records);
      return Response.json({ inserted: count });
    }
    if (url.pathname === '/query') {
      const matches = await stub.query(scope, { vector: vectorFor(Number(q('seed', '1'))), top_k: Number(q('k', '10')), model: MODEL, ...(q('filter') === '1' ? { filter: { bucket: 3 } } : {}) });
      return Response.json({ ids: matches.map((m) => m.id), scores: matches.map((m) => m.score) });
    }
    if (url.pathname === '/scan') {
      // `reps` queries back to back over RPC in one request: the harness subtracts a reps=0 request,
      // leaving the index's own time per query without the HTTP hop.
      const reps = Number(q('reps', '20'));
      let found = 0;
      for (let j = 0; j < reps; j++) found += (await stub.query(scope, { vector: vectorFor(Number(q('seed', '1')) + j), top_k: Number(q('k', '10')), model: MODEL })).length;
      return Response.json({ found });
    }
    if (url.pathname === '/count') return Response.json({ count: await stub.count(scope) });
    return new Response('not found', { status: 404 });
  },
};
