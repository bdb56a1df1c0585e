#!/usr/bin/env node
/**
 * JIT tools benchmark: cold and warm tool calls against the same function called natively in the
 * Worker, in one run; and the two in-Worker TypeScript compilers compared on bundle size and compile
 * time.
 *
 *   node scripts/bench/tools/run.mjs            # ~1-2 min
 *   node scripts/bench/tools/run.mjs --reps 9 --n 40
 *
 * Part 1 starts scripts/bench/tools/worker.ts under wrangler's dev server (fresh temp state, removed
 * afterwards) and times HTTP requests from here, each running n operations of one kind inside the
 * Durable Object (see worker.ts). Per-operation time = (request time − a no-op request's time) / n,
 * median over `reps` interleaved rounds. Ratios are against `native` from the same run.
 * Part 2 (in Node): esbuild-minified bundle size (raw and gzip) of sucrase's `transform` and of
 * TypeScript's `transpileModule`, and the median time each takes to strip the types of the 5 KB tool.
 * Prints markdown; writes JSON to scripts/bench/tools/results/latest.json.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { startBenchWorker } from '../lib.mjs';

const here = import.meta.dirname;
const root = path.resolve(here, '../../..');

const opts = { reps: 7, n: 30, coldN: 10, nativeN: 3000 };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--reps') opts.reps = Number(process.argv[++i]);
  else if (a === '--n') opts.n = Number(process.argv[++i]);
  else if (a === '--cold-n') opts.coldN = Number(process.argv[++i]);
  else if (a === '--native-n') opts.nativeN = Number(process.argv[++i]);
  else throw new Error(`usage: run.mjs [--reps N] [--n N] [--cold-n N] [--native-n N]; unknown ${a}`);
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// --- part 2 first (no server needed) ----------------------------------------------------------------
async function compilers() {
  const esbuild = await import('esbuild');
  const sucrase = await import('sucrase');
  const ts = (await import('typescript')).default;
  const base = readFileSync(path.join(root, 'jit-tools/json_transform.ts'), 'utf8');
  const diff = readFileSync(path.join(root, 'jit-tools/text_diff.ts'), 'utf8').replace('export default async function textDiff', 'async function textDiff');
  const source = `${base}\n${diff}\n`;
  const bundle = async (contents) => {
    const r = await esbuild.build({ stdin: { contents, resolveDir: root, loader: 'js' }, bundle: true, minify: true, write: false, format: 'esm', platform: 'browser', logLevel: 'silent', external: ['fs', 'path', 'os', 'crypto', 'inspector', 'perf_hooks', 'source-map-support', 'buffer', 'module', 'child_process', 'worker_threads'] });
    const bytes = r.outputFiles[0].contents;
    return { bytes: bytes.length, gzip: gzipSync(bytes).length };
  };
  const time = (fn) => {
    for (let i = 0; i < 20; i++) fn();
    const xs = [];
    for (let i = 0; i < 60; i++) {
      const t = performance.now();
      fn();
      xs.push(performance.now() - t);
    }
    return median(xs);
  };
  const s = await bundle("export { transform } from 'sucrase';");
  const t = await bundle("import ts from 'typescript'; export const transpileModule = ts.transpileModule;");
  const sMs = time(() => sucrase.transform(source, { transforms: ['typescript'], disableESTransforms: true, production: true }));
  const tMs = time(() => ts.transpileModule(source, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } }));
  return { source_bytes: source.length, sucrase: { ...s, ms: sMs }, typescript: { ...t, ms: tMs } };
}

// --- part 1 -----------------------------------------------------------------------------------------
async function calls() {
  const bench = await startBenchWorker({ config: path.join(here, 'wrangler.toml'), name: 'bench-tools' });
  try {
    const { base } = bench;
    let seq = 0;
    const hit = async (kind, n) => {
      const t = performance.now();
      const r = await fetch(`${base}/bench/tools?kind=${kind}&n=${n}&seq=${++seq}`);
      const body = await r.json();
      if (!r.ok) throw new Error(JSON.stringify(body));
      return { ms: performance.now() - t, body };
    };
    // Warm up every path once (first compile, first isolate, JIT).
    for (const k of ['noop', 'native', 'warm', 'rpc', 'rpcpayload', 'hostnoop', 'rawtool', 'rawplain', 'compile', 'cold']) await hit(k, 2);
    const samples = { native: [], warm: [], rpc: [], rpcpayload: [], hostnoop: [], rawtool: [], rawplain: [], compile: [], cold: [] };
    let sizes = null;
    let check = null;
    for (let rep = 0; rep < opts.reps; rep++) {
      for (const kind of Object.keys(samples)) {
        const n = kind === 'cold' || kind === 'compile' ? opts.coldN : kind === 'native' ? opts.nativeN : opts.n;
        const noop = await hit('noop', n);
        const r = await hit(kind, n);
        samples[kind].push(Math.max(0, r.ms - noop.ms) / n);
        if (r.body.sizes) sizes = r.body.sizes;
        if (kind === 'warm') check = r.body.check;
      }
      process.stderr.write(`round ${rep + 1}/${opts.reps}\n`);
    }
    return { per_call_ms: Object.fromEntries(Object.entries(samples).map(([k, xs]) => [k, median(xs)])), samples, cold_tool: sizes, check };
  } finally {
    await bench.stop();
  }
}

const comp = await compilers();
const run = await calls();
const c = run.per_call_ms;
const goalWarm = 3 * c.native + c.rpc;
const results = { date: new Date().toISOString(), command: `node scripts/bench/tools/run.mjs ${process.argv.slice(2).join(' ')}`.trim(), opts, cpus: os.cpus().length, loadavg: os.loadavg()[0].toFixed(2), compilers: comp, calls: run };
mkdirSync(path.join(here, 'results'), { recursive: true });
writeFileSync(path.join(here, 'results/latest.json'), JSON.stringify(results, null, 2));
const f = (x) => (x < 0.1 ? x.toFixed(3) : x.toFixed(2));
console.log(`| arm | per call (ms, median of ${opts.reps}) | vs native |`);
console.log('|---|---:|---:|');
for (const k of ['native', 'rpc', 'rpcpayload', 'rawtool', 'rawplain', 'hostnoop', 'warm', 'compile', 'cold']) console.log(`| ${k} | ${f(c[k])} | ${c.native > 0 ? `${(c[k] / c.native).toFixed(1)}×` : 'n/a'} |`);
console.log(`\nwarm ${f(c.warm)} ms vs goal 3×native + one RPC = ${f(goalWarm)} ms: ${c.warm <= goalWarm ? 'met' : 'missed'} (with the RPC carrying the call's payload: ${f(3 * c.native + c.rpcpayload)} ms, ${c.warm <= 3 * c.native + c.rpcpayload ? 'met' : 'missed'})`);
console.log(`cold ${f(c.cold)} ms for a ${run.cold_tool?.source} B tool (${run.cold_tool?.js} B compiled) vs goal 50 ms: ${c.cold <= 50 ? 'met' : 'missed'}`);
console.log(`\n| compiler | bundle (min) | gzip | strip types of the ${comp.source_bytes} B tool (Node, median) |`);
console.log('|---|---:|---:|---:|');
for (const k of ['sucrase', 'typescript']) console.log(`| ${k} | ${(comp[k].bytes / 1024).toFixed(0)} KiB | ${(comp[k].gzip / 1024).toFixed(0)} KiB | ${f(comp[k].ms)} ms |`);
