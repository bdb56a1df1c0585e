#!/usr/bin/env node
/**
 * A kernel step measured from the outside, the way a user runs the kernel, against a floor
 * measured in the same run:
 *
 *   PATH=node_modules/.bin:$PATH node scripts/bench/outside.mjs            # N=100, 5 reps (~5 min)
 *   PATH=node_modules/.bin:$PATH node scripts/bench/outside.mjs --quick    # smoke run
 *   node scripts/bench/outside.mjs --steps 200 --reps 7 --tracing on,off
 *
 *  - kernel: the real wrangler.toml started as `npm start` does (local D1 migrated into a fresh temp
 *    state dir, then the `wrangler dev` CLI on 127.0.0.1 and a random port, with wrangler's proxy
 *    Worker in front; scheduler pools and every other [var] at their defaults). A process is spawned
 *    through the public API (POST /v1/processes, bearer token) with model {provider: "openai",
 *    base_url: <the harness's LLM>}, and its SSE event stream is followed until `state → terminated`;
 *    a step is (terminated − start of the spawn request) / N.
 *  - floor: BareLoop (scripts/bench/worker.ts: the same OpenAI adapter, prompt shape and one SQLite
 *    INSERT per step, alarm-driven) under its own `wrangler dev` CLI (scripts/bench/wrangler.bench.toml),
 *    one POST /bench/bare per run.
 * Both talk to one zero-latency OpenAI-compatible server in this process (turn k < N-1: one
 * fs_list {"path":"/"} call; turn N-1: exit). Each runs with wrangler's local tracing on (its
 * default) and off (X_LOCAL_OBSERVABILITY=false, read by the wrangler CLI at start), so four dev
 * servers run at once; after one warm-up run each, the four arms alternate in a rotated order `reps`
 * times and the medians are reported: wall ms per step, workerd CPU ms per step (all threads of the
 * dev server's workerd processes, /proc/<pid>/task/<tid>/schedstat), the CPU of the wrangler CLI's
 * own node process, and the growth of the state dir (SQLite files with their WAL, D1) per step.
 * Prints a markdown table (stdout; progress on stderr) and writes JSON to
 * scripts/bench/results/outside.json (git-ignored). Every dev server is stopped by its pid.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildConsole } from '../build-console.mjs';
import { startDevCli } from '../lib/dev-cli.mjs';
import { awaitTermination, codeVersion, cpuNs, ROOT, startLlmServer, summary, workerdPidsUnder } from './lib.mjs';

const { values: o } = parseArgs({
  options: {
    steps: { type: 'string', default: '100' },
    reps: { type: 'string', default: '5' },
    tracing: { type: 'string', default: 'on,off', description: 'which local-tracing settings to run' },
    quick: { type: 'boolean', default: false },
    'state-dir': { type: 'string', default: os.tmpdir(), description: 'where the temp state dirs go' },
    out: { type: 'string', default: path.join(ROOT, 'scripts/bench/results/outside.json') },
    'dev-log': { type: 'string', description: "a directory for each wrangler dev's output (default: discarded)" },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (o.help) {
  console.log('usage: outside.mjs [--quick] [--steps N] [--reps N] [--tracing on,off] [--state-dir DIR] [--out FILE] [--dev-log DIR]');
  process.exit(0);
}
const STEPS = o.quick ? Math.min(Number(o.steps), 20) : Number(o.steps);
const REPS = o.quick ? Math.min(Number(o.reps), 2) : Number(o.reps);
const TRACING = o.tracing.split(',').filter(Boolean);
if (!(STEPS >= 2) || !(REPS >= 1) || TRACING.some((t) => t !== 'on' && t !== 'off')) throw new Error('--steps ≥ 2, --reps ≥ 1, --tracing a list of on/off');

const token = `bench-${randomBytes(16).toString('hex')}`;
const auth = { authorization: `Bearer ${token}` };
const f = (x, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : '–');

/** Bytes in the files under dir (the SQLite databases, their WAL and the D1 database of a dev server). */
function dirBytes(dir) {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    try {
      n += statSync(path.join(e.parentPath, e.name)).size;
    } catch {
      // removed meanwhile (a rolled-back journal)
    }
  }
  return n;
}

/**
 * The wrangler CLI's own node processes: `root` (bin/wrangler.js) and the node it runs cli.js in,
 * i.e. its children that are not workerd.
 */
function cliPids(root, workerd) {
  const pids = [root];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    const pid = Number(d);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === root && !workerd.includes(pid)) pids.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** All dev servers started, so that an interrupted run still stops them. */
const servers = [];

/** `wrangler dev` as `npm start` runs it (scripts/lib/dev-cli.mjs), local tracing on or off. */
async function startDev({ name, config, migrate, tracing }) {
  const log = o['dev-log'] ? path.join(o['dev-log'], `${name}.log`) : undefined;
  const server = await startDevCli({ name, token, config, migrate, tracing, stateParent: o['state-dir'], log });
  servers.push(server);
  return server;
}

/**
 * Wall, workerd CPU and CLI CPU (ms), and state-dir growth (bytes) of `fn`, all per step. The
 * processes are looked up before every run: wrangler may replace a workerd shortly after the server
 * first answers, and a child caught between fork and exec does not look like workerd yet.
 */
async function perStep(server, fn) {
  const workerd = workerdPidsUnder(server.pid);
  const cli = cliPids(server.pid, workerd);
  const b0 = dirBytes(server.state);
  const w0 = cpuNs(workerd);
  const c0 = cpuNs(cli);
  const t0 = performance.now();
  await fn();
  const wall = performance.now() - t0;
  const w1 = cpuNs(workerd);
  const c1 = cpuNs(cli);
  const per = (a, b, scale = 1) => (a === null || b === null ? null : (b - a) / scale / STEPS);
  return { wall: wall / STEPS, cpu: per(w0, w1, 1e6), cli_cpu: per(c0, c1, 1e6), bytes: (dirBytes(server.state) - b0) / STEPS };
}

async function kernelRun(server, llmUrl) {
  const body = { name: 'outside', task: `bench steps=${STEPS}`, image: 'default', model: { provider: 'openai', model: 'bench', base_url: llmUrl }, quotas: { max_steps: STEPS + 10, max_tokens: 1_000_000_000 } };
  let seen;
  const x = await perStep(server, async () => {
    const r = await fetch(`${server.base}/v1/processes`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify(body) });
    const text = await r.text();
    if (r.status !== 201) throw new Error(`POST /v1/processes → ${r.status}: ${text.slice(0, 500)}`);
    const { pid } = JSON.parse(text);
    seen = { pid, ...(await awaitTermination(`${server.base}/v1/processes/${pid}/events`, auth)) };
  });
  if (seen.exit?.code !== 0 || seen.llm_calls !== STEPS || seen.faults) throw new Error(`kernel process ${seen.pid} did not finish cleanly: ${JSON.stringify(seen)}`);
  return x;
}

async function floorRun(server, llmUrl) {
  let out;
  const x = await perStep(server, async () => {
    const r = await fetch(`${server.base}/bench/bare?steps=${STEPS}&llm=${encodeURIComponent(llmUrl)}`, { method: 'POST', headers: auth });
    const text = await r.text();
    if (!r.ok) throw new Error(`POST /bench/bare → ${r.status}: ${text.slice(0, 500)}`);
    out = JSON.parse(text);
  });
  if (out.steps !== STEPS) throw new Error(`the bare loop did ${out.steps} steps`);
  return x;
}

// --- main -----------------------------------------------------------------------------------------------
const t00 = performance.now();
const loadStart = os.loadavg().map((x) => x.toFixed(2)).join(' ');
const llm = await startLlmServer();
const llmUrl = `http://127.0.0.1:${llm.address().port}/v1`;
let cleaned = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  for (const s of servers) s.stop();
  llm.closeAllConnections?.();
  await new Promise((r) => llm.close(r));
}
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => void cleanup().finally(() => process.exit(130)));

try {
  if (o['dev-log']) mkdirSync(o['dev-log'], { recursive: true });
  // wrangler.toml's [assets] directory (the console) must exist before the kernel starts, as in npm start.
  await buildConsole({ quiet: true });
  const arms = {};
  // One at a time: four bundles and workerd start-ups at once only slow each other on a small machine.
  for (const t of TRACING) {
    const kernel = await startDev({ name: `kernel-tracing-${t}`, config: null, migrate: true, tracing: t });
    const floor = await startDev({ name: `floor-tracing-${t}`, config: path.join(ROOT, 'scripts/bench/wrangler.bench.toml'), migrate: false, tracing: t });
    console.error(`tracing ${t}: kernel ${kernel.base} (pid ${kernel.pid}), floor ${floor.base} (pid ${floor.pid})`);
    arms[`kernel, tracing ${t}`] = () => kernelRun(kernel, llmUrl);
    arms[`floor, tracing ${t}`] = () => floorRun(floor, llmUrl);
  }
  const names = Object.keys(arms);
  for (const n of names) await arms[n](); // warm-up
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < REPS; r++) {
    for (let i = 0; i < names.length; i++) {
      const n = names[(i + r) % names.length];
      samples[n].push(await arms[n]());
    }
    console.error(`rep ${r + 1}/${REPS}: ${names.map((n) => `${n} ${f(samples[n].at(-1).wall)}/${f(samples[n].at(-1).cpu)}`).join('; ')} ms/step wall/CPU`);
  }
  const field = (n, k) => {
    const xs = samples[n].map((x) => x[k]);
    return xs.every((x) => x !== null) ? summary(xs) : null;
  };
  const per_arm = Object.fromEntries(names.map((n) => [n, { wall_ms: field(n, 'wall'), workerd_cpu_ms: field(n, 'cpu'), cli_cpu_ms: field(n, 'cli_cpu'), state_bytes: field(n, 'bytes') }]));
  const ratios = {};
  for (const t of TRACING) {
    const k = per_arm[`kernel, tracing ${t}`];
    const fl = per_arm[`floor, tracing ${t}`];
    const div = (a, b) => (a && b ? a.median / b.median : null);
    ratios[`tracing ${t}`] = {
      wall: div(k.wall_ms, fl.wall_ms),
      wall_paired: summary(samples[`kernel, tracing ${t}`].map((x, i) => x.wall / samples[`floor, tracing ${t}`][i].wall)),
      workerd_cpu: div(k.workerd_cpu_ms, fl.workerd_cpu_ms),
      state_bytes: div(k.state_bytes, fl.state_bytes),
    };
  }
  const results = {
    meta: {
      date: new Date().toISOString(),
      command: `node scripts/bench/outside.mjs ${process.argv.slice(2).join(' ')}`.trim(),
      steps: STEPS,
      reps: REPS,
      tracing: TRACING,
      code: codeVersion(),
      node: process.version,
      cpus: os.cpus().length,
      cpu_model: os.cpus()[0]?.model ?? 'unknown',
      uptime_load_start: loadStart,
      uptime_load_end: os.loadavg().map((x) => x.toFixed(2)).join(' '),
      duration_s: (performance.now() - t00) / 1000,
    },
    per_arm,
    ratios,
  };
  const lines = [
    `### A kernel step from the outside: \`wrangler dev\` CLI, public API, N = ${STEPS}, ${REPS} reps (medians, per step)`,
    '',
    '| arm | wall ms | wall min–max | workerd CPU ms | wrangler CLI CPU ms | state dir bytes |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const [n, a] of Object.entries(per_arm)) lines.push(`| ${n} | ${f(a.wall_ms.median)} | ${f(a.wall_ms.min)}–${f(a.wall_ms.max)} | ${f(a.workerd_cpu_ms?.median)} | ${f(a.cli_cpu_ms?.median)} | ${f(a.state_bytes?.median, 0)} |`);
  lines.push('', '| kernel / floor | wall, of medians | wall, paired median (min–max) | workerd CPU | state dir bytes |', '|---|---:|---:|---:|---:|');
  for (const [t, r] of Object.entries(ratios)) lines.push(`| ${t} | ${f(r.wall, 2)}× | ${f(r.wall_paired.median, 2)}× (${f(r.wall_paired.min, 2)}–${f(r.wall_paired.max, 2)}) | ${r.workerd_cpu === null ? '–' : `${f(r.workerd_cpu, 2)}×`} | ${r.state_bytes === null ? '–' : `${f(r.state_bytes, 1)}×`} |`);
  const m = results.meta;
  lines.push('', `_${m.command} · commit ${m.code.commit}${m.code.kernel_sources_modified ? ' + uncommitted kernel changes' : ''} · ${m.cpus} CPUs (${m.cpu_model}) · load (uptime, 1/5/15 min) ${m.uptime_load_start} → ${m.uptime_load_end} · Node ${m.node} · ${f(m.duration_s, 0)} s_`);
  console.log(lines.join('\n'));
  mkdirSync(path.dirname(o.out), { recursive: true });
  writeFileSync(o.out, `${JSON.stringify(results, null, 2)}\n`);
  console.error(`wrote ${path.relative(process.cwd(), o.out)}`);
} finally {
  await cleanup();
}
