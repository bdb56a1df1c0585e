#!/usr/bin/env node
/**
 * Context benchmark: the kernel's context pager vs. sliding-window truncation vs. summarise-everything
 * on one synthetic long-horizon session (2,000 turns, 50 planted facts each queried once ≥ 300 turns
 * later, 8,000-token budget). No LLM and no network: it measures what each prompt contains.
 *
 *   PATH=node_modules/.bin:$PATH node scripts/bench/context/run.mjs              # ~2-4 min on 2 cores
 *   node scripts/bench/context/run.mjs --variants     # + page_in limit 10, pager overrides, noisy queries (~8 min)
 *   node scripts/bench/context/run.mjs --turns 400 --facts 10 --min-gap 100    # smoke run (< 30 s)
 *   node scripts/bench/context/run.mjs --seed 7 --budget 16000 --jobs 1 --out /tmp/ctx.json
 *   node scripts/bench/context/run.mjs --paraphrase   # recall by meaning, before/after, on paraphrased questions
 *                                                     # (first run ~15 min: the semantic embedder runs on CPU; then cached)
 *
 * It bundles ./sim.ts (which imports the kernel's own prepareContext, pager, buildRequest and
 * tokenizer from src/, unchanged) with esbuild's JS API into a temp dir, then replays the session once
 * per strategy, each in a worker thread (`--jobs`, default min(2, cores); `--jobs 1` for latency
 * numbers free of a concurrent job). Prints markdown tables (progress on stderr) and writes JSON to
 * scripts/bench/context/results.json (git-ignored). Strategies and metrics: sim.ts; session: workload.ts.
 * Run with the project's Node (node_modules/.bin/node, Node 22).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { build } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const o = { turns: 2000, facts: 50, budget: 8000, seed: 1, minGap: 300, summaryTokens: 1500, variants: false, paraphrase: false, jobs: Math.min(2, os.availableParallelism()), out: path.join(here, 'results.json') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v)) throw new Error(`${a} needs a number`);
      return v;
    };
    if (a === '--turns') o.turns = num();
    else if (a === '--facts') o.facts = num();
    else if (a === '--budget') o.budget = num();
    else if (a === '--seed') o.seed = num();
    else if (a === '--min-gap') o.minGap = num();
    else if (a === '--summary-tokens') o.summaryTokens = num();
    else if (a === '--variants') o.variants = true;
    else if (a === '--paraphrase') o.paraphrase = true;
    else if (a === '--jobs') o.jobs = num();
    else if (a === '--out') o.out = path.resolve(argv[++i]);
    else if (a === '--report') o.report = path.resolve(argv[++i]);
    else if (a === '--help' || a === '-h') {
      console.log('usage: run.mjs [--turns 2000] [--facts 50] [--budget 8000] [--seed 1] [--min-gap 300] [--summary-tokens 1500] [--variants | --paraphrase] [--jobs N] [--out file] | --report results.json');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

async function runAll(opts) {
  const started = performance.now();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'agentos-ctx-bench-'));
  let workload;
  let results;
  try {
    const outfile = path.join(tmp, 'sim.mjs');
    await build({ entryPoints: [path.join(here, 'sim.ts')], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile, logLevel: 'warning', external: ['@energetic-ai/*'] });
    const workerFile = path.join(tmp, 'worker.mjs');
    writeFileSync(
      workerFile,
      [
        "import { parentPort, workerData } from 'node:worker_threads';",
        "import { runJob } from './sim.mjs';",
        "const log = (line) => parentPort.postMessage({ log: line });",
        "parentPort.postMessage({ result: await runJob({ ...workerData.opts, log }, workerData.job) });",
      ].join('\n'),
    );
    const sim = await import(pathToFileURL(outfile).href);
    const simOpts = { turns: opts.turns, facts: opts.facts, budget: opts.budget, seed: opts.seed, minGap: opts.minGap, summaryTokens: opts.summaryTokens, embeddingCache: path.join(here, '.embeddings') };
    const log = (line) => process.stderr.write(`${line}\n`);
    workload = sim.describeWorkload({ ...simOpts, log });
    log(`workload: ${JSON.stringify(workload)}`);
    const all = opts.paraphrase ? sim.paraphraseJobs() : sim.jobs(opts.variants);
    // Each job replays the whole session on its own (fresh pager state, same workload); run them on a pool
    // of worker threads, longest (the kernel runs) first.
    results = new Array(all.length);
    let next = 0;
    const runOne = () =>
      new Promise((resolve, reject) => {
        const i = next++;
        if (i >= all.length) return resolve();
        const w = new Worker(workerFile, { workerData: { opts: simOpts, job: all[i] } });
        w.on('message', (msg) => {
          if (msg.log) log(msg.log);
          if (msg.result) results[i] = msg.result;
        });
        w.on('error', reject);
        w.on('exit', (code) => (code === 0 && results[i] ? runOne().then(resolve, reject) : reject(new Error(`job "${all[i].label}" failed (exit ${code})`))));
      });
    await Promise.all(Array.from({ length: Math.max(1, opts.jobs) }, runOne));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const strategies = results.filter((r) => !r.variant);
  const variants = results.filter((r) => r.variant);
  const seconds = Math.round((performance.now() - started) / 100) / 10;
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: here, encoding: 'utf8' }).trim();
  } catch {}
  const doc = { date: new Date().toISOString(), commit, node: process.version, platform: `${os.platform()} ${os.arch()}`, cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.availableParallelism(), options: { ...opts, out: undefined }, seconds, workload, strategies, variants };
  writeFileSync(opts.out, `${JSON.stringify(doc, null, 2)}\n`);
  return doc;
}

// --- report ----------------------------------------------------------------------------------------
const p = (x) => (x === null || x === undefined ? 'n/a' : `${(x * 100).toFixed(1)}%`);
const ms = (x) => (x === null || x === undefined ? 'n/a' : `${x.toFixed(2)} ms`);
const k = (x) => `${(x / 1e6).toFixed(2)} M`;
const HEADER = '| Strategy | Prompt fits budget | Planted-fact recall | Prefix reuse | Median page-fault latency | Prompt tokens (cost) | Not in previous prefix |\n|---|---|---|---|---|---|---|';
const row = (s) => {
  const recall = s.recall_with_page_in !== undefined ? `${p(s.recall)} auto, ${p(s.recall_with_page_in)} with page_in (+${s.page_in_turns} turns)` : `${p(s.recall)} (${s.recall_hits}/${s.queries})`;
  const cost = s.summary_input_tokens ? `${k(s.prompt_tokens)} + ${k(s.summary_input_tokens)} in / ${k(s.summary_output_tokens)} out summarising` : k(s.prompt_tokens);
  const latency = s.faults ? `${ms(s.median_fault_ms)} (${s.faults} faults)` : s.summary_input_tokens ? 'n/a (one summariser LLM call per step)' : 'n/a (no faults)';
  return `| ${s.strategy} | ${p(s.fits_budget)} (max ${s.max_context_tokens}) | ${recall} | ${p(s.prefix_reuse)} | ${latency} | ${cost} | ${k(s.prompt_tokens - s.cached_prefix_tokens)} |`;
};
function report(doc, out) {
const { workload: w, strategies, variants, options: opts, seconds } = doc;
console.log(`\n### Context benchmark: ${w.turns} turns, ${w.facts} facts, budget ${opts.budget} tokens (seed ${opts.seed})\n`);
console.log(`Session: ${w.session_tokens} tokens in total; results ${w.result_tokens.min}–${w.result_tokens.max} tokens (median ${w.result_tokens.median}); query gap ${w.query_gap_turns.min}–${w.query_gap_turns.max} turns (median ${w.query_gap_turns.median}).\n`);
console.log(HEADER);
for (const s of strategies) console.log(row(s));
console.log('\nVariants:\n');
console.log(HEADER);
for (const s of variants) console.log(row(s));
console.log('\nKernel diagnostics:\n');
for (const s of [...strategies, ...variants]) {
  if (s.fault_steps === undefined) continue;
  const reasons = {};
  for (const x of s.misses ?? []) {
    const key = x.reason.replace(/relevance [0-9.]+/, 'relevance').replace(/\(fact step: \d+ tokens\)/, '').replace(/\d+ more/, 'n more');
    reasons[key] = (reasons[key] ?? 0) + 1;
  }
  const rel = (s.queries_detail ?? []).map((q) => q.relevance).sort((a, b) => a - b);
  const vr = s.vector_recall ? `vector recall (${s.vector_recall.embedder}) faulted in ${s.vector_recall.faulted_steps} steps of kind ${JSON.stringify(s.vector_recall.faulted_step_kinds)}; ` : '';
  console.log(`- ${s.strategy}: ${s.compactions} compactions, ${s.fault_steps} steps with auto faults (${s.faulted_steps} steps faulted in; by newest input ${JSON.stringify(s.faults_by_newest_input)}); ` +
    `stubs per prompt median ${s.stubs_per_prompt.median} (max ${s.stubs_per_prompt.max}), largest stub ${s.max_stub_tokens} tokens vs STUB_TOKENS ${s.planned_stub_tokens}; ` +
    `${s.over_budget_prompts} prompts over budget, ${s.over_budget_only_because_of_stub_estimate} of them only because stubs cost more than the pager counts; ` +
    vr + `${s.page_in_limit ? `page_in brought the fact's step back ${s.page_in_brought_fact} times, ${s.page_in_fact_evicted_by_next_compaction} of them evicted again by the next prompt's compaction; page_in returned steps of kind ${JSON.stringify(s.page_in_returned_kinds)}; ` : ''}fact-step relevance to the query page median ${rel[rel.length >> 1] ?? 'n/a'} (max ${rel.at(-1) ?? 'n/a'}); prefix reuse by step kind ${JSON.stringify(s.reuse_by_step_kind)}; median prepareContext ${s.median_prepare_ms} ms; misses: ${JSON.stringify(reasons)}`);
}
console.log(`\n${seconds} s (${opts.jobs} worker thread(s), ${doc.cpu}, Node ${doc.node}); JSON: ${path.relative(process.cwd(), out)}`);
}

const opts = parseArgs(process.argv.slice(2));
if (opts.report) report(JSON.parse(readFileSync(opts.report, 'utf8')), opts.report);
else report(await runAll(opts), opts.out);
