#!/usr/bin/env node
/**
 * Memory benchmark: the embedded vector store (MemoryIndex, src/memory/embedded.ts) at 1k, 10k and
 * 100k vectors of 384 dimensions, side by side with a brute-force scan in plain JS over the same data.
 *
 *   PATH=node_modules/.bin:$PATH node scripts/bench/memory/run.mjs                 # 1k, 10k, 100k
 *   node scripts/bench/memory/run.mjs --sizes 1000,10000 --queries 30              # quicker
 *
 * It starts scripts/bench/memory/worker.ts under wrangler's dev server (fresh temp state dir), and for
 * each size: inserts the vectors in RPC batches of 1,000 (insert rate), then times top-10 queries from
 * here, around each HTTP request (Worker → RPC → MemoryIndex → answer): unfiltered, and with a metadata
 * filter that keeps 10%. Two stores: the product's MemoryIndex (scans an in-memory copy up to 32,768
 * vectors per namespace, streams from SQLite beyond) and a variant that always streams. The floor is a
 * query on an empty namespace (HTTP + RPC, no scan). The baseline is a plain-JS scan in this Node
 * process over identical vectors (same seeded generator): a dot product per row, then sort. Both must
 * return the same top 10 (exact search); the run fails if they do not.
 * Prints a markdown table; writes JSON to scripts/bench/memory/results/latest.json.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pct, startBenchWorker } from '../lib.mjs';
import { DIMS, vectorFor } from './vectors.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');

const opts = { sizes: [1000, 10000, 100000], queries: 50, k: 10, streamUpTo: 10000, out: path.join(here, 'results/latest.json') };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  const val = () => process.argv[++i];
  if (a === '--sizes') opts.sizes = val().split(',').map(Number);
  else if (a === '--queries') opts.queries = Number(val());
  else if (a === '--stream-up-to') opts.streamUpTo = Number(val());
  else if (a === '--out') opts.out = path.resolve(val());
  else throw new Error(`unknown argument ${a}; usage: run.mjs [--sizes 1000,10000,100000] [--queries 50] [--stream-up-to 10000] [--out file]`);
}


const f = (x, d = 1) => (x === undefined || x === null ? '—' : x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }));
const querySeed = (j) => 1_000_000_000 + j;

async function req(url, method = 'POST') {
  const r = await fetch(url, { method });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${url} → ${r.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

/** Plain JS: score every row, sort, take k. */
function bruteForce(rows, q, k) {
  const scored = new Array(rows.length);
  for (let r = 0; r < rows.length; r++) {
    const v = rows[r];
    let s = 0;
    for (let i = 0; i < DIMS; i++) s += v[i] * q[i];
    scored[r] = { id: `v${r}`, score: s };
  }
  scored.sort((a, b) => b.score - a.score);
  return scored.slice(0, k);
}

async function measureStore(base, index, n) {
  const ns = `bench-${n}`;
  const t0 = performance.now();
  for (let from = 0; from < n; from += 1000) await req(`${base}/insert?index=${index}&ns=${ns}&from=${from}&count=${Math.min(1000, n - from)}`);
  const insertMs = performance.now() - t0;
  const { count } = await req(`${base}/count?index=${index}&ns=${ns}`, 'GET');
  if (count !== n) throw new Error(`${index}: expected ${n} vectors, found ${count}`);
  for (let j = 0; j < 3; j++) await req(`${base}/query?index=${index}&ns=${ns}&seed=${querySeed(j)}&k=${opts.k}`); // warm: load the copy
  const lat = [];
  const answers = [];
  for (let j = 0; j < opts.queries; j++) {
    const t = performance.now();
    answers.push(await req(`${base}/query?index=${index}&ns=${ns}&seed=${querySeed(j)}&k=${opts.k}`));
    lat.push(performance.now() - t);
  }
  const flat = [];
  for (let j = 0; j < Math.min(20, opts.queries); j++) {
    const t = performance.now();
    await req(`${base}/query?index=${index}&ns=${ns}&seed=${querySeed(j)}&k=${opts.k}&filter=1`);
    flat.push(performance.now() - t);
  }
  // The index's own time per query: `reps` back-to-back RPC queries in one request, minus an empty request.
  const per = [];
  for (let rep = 0; rep < 5; rep++) {
    let t = performance.now();
    await req(`${base}/scan?index=${index}&ns=${ns}&seed=${querySeed(100 + rep * 20)}&k=${opts.k}&reps=0`);
    const empty = performance.now() - t;
    t = performance.now();
    await req(`${base}/scan?index=${index}&ns=${ns}&seed=${querySeed(100 + rep * 20)}&k=${opts.k}&reps=20`);
    per.push(Math.max(0, performance.now() - t - empty) / 20);
  }
  return { index, n, in_worker_ms: pct(per, 50), insert_ms: insertMs, insert_per_s: (n / insertMs) * 1000, query_p50: pct(lat, 50), query_p95: pct(lat, 95), filtered_p50: pct(flat, 50), answers, samples: lat };
}

const t00 = performance.now();
const bench = await startBenchWorker({ config: path.join(here, 'wrangler.bench.toml'), name: 'membench' });
try {
  const { base } = bench;
  console.error(`bench worker: ${base}; state: ${bench.stateDir}`);

  const floor = [];
  for (let j = 0; j < 30; j++) {
    const t = performance.now();
    await req(`${base}/query?index=cached&ns=empty&seed=${querySeed(j)}&k=${opts.k}`);
    if (j >= 5) floor.push(performance.now() - t);
  }
  const rows = [];
  for (const n of opts.sizes) {
    console.error(`n = ${n}`);
    const stores = [await measureStore(base, 'cached', n)];
    if (n <= opts.streamUpTo) stores.push(await measureStore(base, 'stream', n));
    // The plain-JS baseline over the same vectors, in this process.
    const data = Array.from({ length: n }, (_, i) => vectorFor(i + 1));
    const bf = [];
    for (let j = 0; j < opts.queries; j++) {
      const q = vectorFor(querySeed(j));
      const t = performance.now();
      const top = bruteForce(data, q, opts.k);
      bf.push(performance.now() - t);
      for (const s of stores) {
        const got = s.answers[j].ids;
        if (got.join() !== top.map((x) => x.id).join()) throw new Error(`${s.index} at n=${n}, query ${j}: top ${opts.k} differs from the plain scan: ${got} vs ${top.map((x) => x.id)}`);
      }
    }
    for (const s of stores) delete s.answers;
    rows.push({ n, stores, brute_p50: pct(bf, 50), brute_p95: pct(bf, 95) });
  }
  const floorP50 = pct(floor, 50);
  const git = (...a) => execFileSync('git', a, { cwd: root, encoding: 'utf8' }).trim();
  const meta = { date: new Date().toISOString(), command: `node scripts/bench/memory/run.mjs ${process.argv.slice(2).join(' ')}`.trim(), commit: git('rev-parse', '--short', 'HEAD'), cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, load: os.loadavg()[0].toFixed(2), duration_s: (performance.now() - t00) / 1000 };

  const lines = [
    `Floor (query on an empty namespace: HTTP + RPC, no scan): p50 ${f(floorP50, 2)} ms.`,
    '',
    '| vectors | store | insert (vectors/s) | query p50 (client, HTTP) | p95 | filtered (10%) p50 | per query inside the Worker | plain-JS scan p50 | inside ÷ plain-JS |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    for (const s of r.stores) {
      const label = s.index === 'cached' ? (r.n > 32768 ? 'MemoryIndex (streams: over 32,768)' : 'MemoryIndex (in-memory copy)') : 'MemoryIndex, always streaming';
      lines.push(`| ${r.n.toLocaleString('en-US')} | ${label} | ${f(s.insert_per_s, 0)} | ${f(s.query_p50, 2)} ms | ${f(s.query_p95, 2)} ms | ${f(s.filtered_p50, 2)} ms | ${f(s.in_worker_ms, 2)} ms | ${f(r.brute_p50, 2)} ms | ${f(s.in_worker_ms / r.brute_p50, 2)} |`);
    }
  }
  lines.push('', `_${meta.command} · commit ${meta.commit} · ${meta.cpus} CPUs (${meta.cpu}) · load ${meta.load} · Node ${meta.node} · ${f(meta.duration_s, 0)} s · ${opts.queries} queries per cell, top ${opts.k}_`);
  console.log(lines.join('\n'));
  mkdirSync(path.dirname(opts.out), { recursive: true });
  writeFileSync(opts.out, `${JSON.stringify({ meta, opts, floor_p50: floorP50, rows }, null, 2)}\n`);
  console.error(`wrote ${path.relative(process.cwd(), opts.out)}`);
} finally {
  await bench.stop();
}
