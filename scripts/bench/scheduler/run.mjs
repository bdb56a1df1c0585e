#!/usr/bin/env node
/**
 * Scheduler benchmark: the kernel's LLM scheduler vs. the same agents calling the provider directly
 * with exponential backoff, against one rate-limited fake provider, side by side in one run.
 *
 *   PATH=node_modules/.bin:$PATH node scripts/bench/scheduler/run.mjs                 # ~4-5 min
 *   node scripts/bench/scheduler/run.mjs --mix 67,67,66                               # equal classes
 *   node scripts/bench/scheduler/run.mjs --agents 40 --calls 5 --rpm 1200            # smoke run (~1 min)
 *
 * The fake provider (an OpenAI-compatible /v1/chat/completions on 127.0.0.1) enforces a hard limit
 * like a real one: its per-minute limits `rpm` and `tpm` (tokens: request body characters / 4, plus
 * the completion) are enforced over sliding 10-second windows (1/6 of each per window, as providers
 * enforce limits over periods shorter than a minute), with 429 and `retry-after-ms` past them. Time
 * is scaled by `scale` = rpm / 600 (1200 rpm runs a 600-rpm provider 2× faster): windows last
 * 10/scale s, and latencies (`--latency-ms`, default 1500 ms ± 40% real) are divided by scale too.
 *
 * Each agent makes `calls` LLM calls in a row (a tool call each time, a final answer at the last),
 * growing its conversation like a real agent. Arms:
 *  - kernel: 200 processes spawned through the API, model {provider: "openai", base_url: fake}; the
 *    pool is configured in SCHEDULER_POOLS with the provider's limits (the scheduler aims at 97%);
 *  - direct: the same agents as async loops in Node posting the same prompts (system prompt and tool
 *    table captured from the kernel arm), on 429 waiting `retry-after-ms` (as the OpenAI SDK does),
 *    else 0.5 s · 2^n (scaled) with jitter, retrying until success.
 * Each arm gets a fresh provider (fresh limit window). Reported per arm: makespan / lower bound
 * (max(calls / rate, tokens / token rate), from what the provider actually served), 429s (all, and
 * after the first scaled minute of warm-up), p50/p95 completion time per priority class, and Jain's
 * index over the throughput (calls / completion time) of agents of equal priority. Completion time
 * is from an agent's first request to its last answer: spawning 200 processes takes a while on a
 * busy machine, so the direct arm's agents start at the same offsets as the kernel arm's did.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { profileTables, startProfile } from '../cpu-profile.mjs';
import { codeVersion, cpuSampler, migrationsSql, startBenchWorker } from '../lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const token = `bench-${randomBytes(16).toString('hex')}`;
const auth = { authorization: `Bearer ${token}` };
const log = (s) => process.stderr.write(`${s}\n`);

function parseArgs(argv) {
  const o = { agents: 200, calls: 10, rpm: 1800, tpm: null, mix: [20, 60, 120], latencyMs: 1500, seed: 1, arms: ['kernel', 'direct'], window: true, out: path.join(here, 'results.json'), spawnConcurrency: 8 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => argv[++i];
    if (a === '--agents') o.agents = Number(v());
    else if (a === '--calls') o.calls = Number(v());
    else if (a === '--rpm') o.rpm = Number(v());
    else if (a === '--tpm') o.tpm = Number(v());
    else if (a === '--mix') o.mix = v().split(',').map(Number);
    else if (a === '--latency-ms') o.latencyMs = Number(v());
    else if (a === '--seed') o.seed = Number(v());
    else if (a === '--arms') o.arms = v().split(',');
    else if (a === '--out') o.out = path.resolve(v());
    else if (a === '--profile') o.profile = path.resolve(v());
    else if (a === '--no-window') o.window = false;
    else if (a === '--help' || a === '-h') {
      console.log('usage: run.mjs [--agents 200] [--calls 10] [--rpm 1800] [--tpm N] [--mix high,normal,low] [--latency-ms 1500] [--seed 1] [--arms kernel,direct] [--out file] [--profile kernel.cpuprofile] [--no-window]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  const total = o.mix.reduce((a, b) => a + b, 0);
  if (total !== o.agents) o.mix = o.mix.map((m, i) => (i === o.mix.length - 1 ? o.agents - o.mix.slice(0, -1).reduce((a, b) => a + Math.round((b * o.agents) / total), 0) : Math.round((m * o.agents) / total)));
  // Default token limit: ~2,400 tokens a call on average (system prompt, tool table, growing history) → the
  // token limit binds about as tightly as the request limit.
  o.tpm ??= o.rpm * 2400;
  o.scale = o.rpm / 600;
  return o;
}
const opts = parseArgs(process.argv.slice(2));
const CLASSES = ['high', 'normal', 'low'];
/** The provider enforces its per-minute limits over sliding windows of this many (real) seconds, as providers do. */
const WINDOW_S = 10;
const windowReqs = () => Math.floor((opts.rpm / 60) * (WINDOW_S / opts.scale));
const windowToks = () => Math.floor((opts.tpm / 60) * (WINDOW_S / opts.scale));
const PRIORITY = { high: 10, normal: 50, low: 90 };

// --- small utilities -----------------------------------------------------------------------------------
function prng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return null;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
};
const jain = (xs) => {
  const sum = xs.reduce((a, b) => a + b, 0);
  const sq = xs.reduce((a, b) => a + b * b, 0);
  return sq === 0 ? 1 : (sum * sum) / (xs.length * sq);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const f = (x, d = 2) => (x === null || x === undefined ? '–' : Number(x).toFixed(d));

// --- the rate-limited fake provider ----------------------------------------------------------------------
function createProvider() {
  const windowMs = WINDOW_S * 1000 / opts.scale;
  const rand = prng(opts.seed * 7919);
  let arm = null;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions') || !arm) {
        res.writeHead(404).end();
        return;
      }
      const body = JSON.parse(raw);
      const now = performance.now();
      const tokens = Math.ceil(raw.length / 4) + 20;
      // The sliding window: drop what is older than a (scaled) minute.
      while (arm.window.length && arm.window[0][0] <= now - windowMs) {
        arm.windowTokens -= arm.window[0][1];
        arm.window.shift();
      }
      const first = Number(/bench-agent=(\d+)/.exec(raw)?.[1] ?? -1);
      if (!arm.arrivals.has(first)) arm.arrivals.set(first, now - arm.t0);
      if (arm.window.length + 1 > arm.reqLimit || arm.windowTokens + tokens > arm.tokLimit) {
        // When enough leaves the window for this request to fit.
        let waitMs = 0;
        if (arm.window.length + 1 > arm.reqLimit) waitMs = arm.window[arm.window.length - arm.reqLimit][0] + windowMs - now;
        let free = arm.tokLimit - arm.windowTokens;
        for (let i = 0; free < tokens && i < arm.window.length; i++) {
          free += arm.window[i][1];
          waitMs = Math.max(waitMs, arm.window[i][0] + windowMs - now);
        }
        arm.rejected.push(now - arm.t0);
        // What the provider counted when it said no, to line up with the scheduler's ticket rows.
        arm.log.push({ at: Date.now(), agent: first, turn: body.messages.filter((m) => m.role === 'assistant').length, tokens, ok: false, window_reqs: arm.window.length, window_tokens: arm.windowTokens });
        const retry = Math.max(1, Math.ceil(waitMs));
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after-ms': String(retry), 'retry-after': String(Math.ceil(retry / 1000)) });
        res.end(JSON.stringify({ error: { message: 'Rate limit reached for requests', type: 'requests', code: 'rate_limit_exceeded' } }));
        return;
      }
      const who = Number(/bench-agent=(\d+)/.exec(raw)?.[1] ?? -1);
      if (!arm.arrivals.has(who)) arm.arrivals.set(who, now - arm.t0);
      arm.window.push([now, tokens]);
      arm.windowTokens += tokens;
      arm.log.push({ at: Date.now(), agent: who, turn: body.messages.filter((m) => m.role === 'assistant').length, tokens, ok: true, window_reqs: arm.window.length, window_tokens: arm.windowTokens });
      arm.template ??= { system: body.messages[0], tools: body.tools };
      const task = body.messages.find((m) => m.role === 'user')?.content ?? '';
      const agent = Number(/bench-agent=(\d+)/.exec(task)?.[1] ?? -1);
      const calls = Number(/calls=(\d+)/.exec(task)?.[1] ?? 1);
      const turn = body.messages.filter((m) => m.role === 'assistant').length;
      const last = turn >= calls - 1;
      const message = last
        ? { role: 'assistant', content: `Agent ${agent} is done.` }
        : { role: 'assistant', content: null, tool_calls: [{ id: `call_${turn}`, type: 'function', function: { name: 'fs_list', arguments: '{"path":"/"}' } }] };
      const latency = (opts.latencyMs * (0.6 + 0.8 * rand())) / opts.scale;
      setTimeout(() => {
        const out = JSON.stringify({ id: `c${agent}-${turn}`, object: 'chat.completion', created: 1, model: body.model, choices: [{ index: 0, message, finish_reason: last ? 'stop' : 'tool_calls' }], usage: { prompt_tokens: tokens - 20, completion_tokens: 20, total_tokens: tokens } });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
        res.end(out);
        const a = arm.agents.get(agent) ?? { done: [], turns: new Set() };
        // Count each turn once: a kernel step re-issued after a crash would ask the same turn again.
        if (!a.turns.has(turn)) {
          a.turns.add(turn);
          a.done.push(performance.now() - arm.t0);
        }
        arm.agents.set(agent, a);
        arm.served++;
        arm.tokens += tokens;
      }, latency);
    });
  });
  server.keepAliveTimeout = 60_000;
  return {
    server,
    start(name) {
      arm = { name, t0: performance.now(), window: [], windowTokens: 0, reqLimit: windowReqs(), tokLimit: windowToks(), agents: new Map(), arrivals: new Map(), rejected: [], log: [], served: 0, tokens: 0, template: arm?.template ?? null };
      return arm;
    },
    get arm() {
      return arm;
    },
  };
}

// --- agents ------------------------------------------------------------------------------------------
function agentsPlan() {
  const rand = prng(opts.seed);
  const list = [];
  opts.mix.forEach((n, c) => {
    for (let i = 0; i < n; i++) list.push({ cls: CLASSES[c] });
  });
  // Shuffled, so the classes arrive mixed.
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
  return list.map((a, id) => ({ ...a, id }));
}

async function waitAllDone(arm, agents, limitMs = 15 * 60_000) {
  const t0 = performance.now();
  for (;;) {
    const done = agents.filter((a) => (arm.agents.get(a.id)?.done.length ?? 0) >= opts.calls).length;
    if (done === agents.length) return;
    if (performance.now() - t0 > limitMs) throw new Error(`only ${done}/${agents.length} agents finished within ${limitMs / 1000} s`);
    await sleep(100);
  }
}

async function kernelArm(base, provider, url, agents, worker) {
  const arm = provider.start('kernel');
  // --profile: the isolate's CPU profile over the whole arm (sampling slows it down a little).
  const profiler = opts.profile ? await startProfile(worker, 200) : null;
  // Whether the run was bound by the workerd thread every object shares (see lib.mjs cpuSampler).
  const cpu = cpuSampler(1000);
  arm.load_start = os.loadavg();
  let next = 0;
  const lane = async () => {
    while (next < agents.length) {
      const a = agents[next++];
      const r = await fetch(`${base}/v1/processes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...auth },
        body: JSON.stringify({ name: `agent-${a.id}`, task: `bench-agent=${a.id} calls=${opts.calls}`, priority: PRIORITY[a.cls], model: { provider: 'openai', model: 'bench', base_url: url }, quotas: { max_steps: opts.calls + 5, max_tokens: 1_000_000_000 } }),
      });
      if (r.status !== 201) throw new Error(`spawn → ${r.status} ${await r.text()}`);
      a.pid = (await r.json()).pid;
    }
  };
  await Promise.all(Array.from({ length: opts.spawnConcurrency }, lane));
  log(`kernel: ${agents.length} processes spawned after ${((performance.now() - arm.t0) / 1000).toFixed(1)} s`);
  arm.spawned_s = (performance.now() - arm.t0) / 1000;
  // The shard's ticket rows, polled (finished rows are pruned after an hour; polling keeps every row's last state).
  const tickets = new Map();
  const pollTickets = async () => {
    const r = await fetch(`${base}/bench/tickets?shard=${encodeURIComponent(`${opts.pool}#0`)}`, { headers: auth });
    if (r.ok) for (const t of await r.json()) tickets.set(t.id, t);
  };
  const poller = setInterval(() => void pollTickets().catch(() => {}), 15_000);
  await waitAllDone(arm, agents);
  clearInterval(poller);
  await pollTickets();
  arm.tickets = [...tickets.values()];
  arm.cpu = cpu.stop();
  arm.load_end = os.loadavg();
  if (profiler) {
    const profile = await profiler.stop();
    writeFileSync(opts.profile, JSON.stringify(profile));
    arm.profile = profileTables(profile, 40);
  }
  const stats = await (await fetch(`${base}/v1/scheduler`, { headers: auth })).json();
  arm.scheduler = stats.pools.find((p) => p.pool.includes('bench')) ?? stats;
  return arm;
}

async function directArm(provider, url, agents, arrivals) {
  const arm = provider.start('direct');
  const template = arm.template;
  if (!template) throw new Error('the direct arm reuses the kernel arm\'s prompt: run the kernel arm first');
  const rand = prng(opts.seed * 31);
  const agent = async (a) => {
    // The same arrival time as the agent's process had in the kernel arm (spawns are not instant there).
    await sleep(Math.max(0, (arrivals?.get(a.id) ?? 0) - (performance.now() - arm.t0)));
    const messages = [template.system, { role: 'user', content: `bench-agent=${a.id} calls=${opts.calls}` }];
    for (let call = 0; call < opts.calls; call++) {
      for (let attempt = 0; ; attempt++) {
        const r = await fetch(`${url}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer none' }, body: JSON.stringify({ model: 'bench', messages, tools: template.tools, max_tokens: 4096 }) });
        const text = await r.text();
        if (r.status === 200) {
          const m = JSON.parse(text).choices[0].message;
          messages.push(m);
          if (m.tool_calls) for (const c of m.tool_calls) messages.push({ role: 'tool', tool_call_id: c.id, content: JSON.stringify({ ok: true, value: { path: '/', entries: [] } }) });
          break;
        }
        // What clients do today: honour retry-after-ms, else exponential backoff with jitter (scaled like the provider).
        const ra = Number(r.headers.get('retry-after-ms'));
        const backoff = Math.min(8000, 500 * 2 ** attempt) / opts.scale;
        await sleep(Number.isFinite(ra) && ra > 0 ? ra : backoff * (0.75 + 0.5 * rand()));
      }
    }
  };
  await Promise.all(agents.map(agent));
  return arm;
}

function report(arm, agents) {
  const completion = agents.map((a) => {
    const end = Math.max(...(arm.agents.get(a.id)?.done ?? [NaN]));
    return { ...a, end, t: end - (arm.arrivals.get(a.id) ?? 0) };
  });
  const makespan = Math.max(...completion.map((a) => a.end));
  const calls = agents.length * opts.calls;
  // Strict bounds: the first window's allowance can go at once, the rest at the rate.
  const reqBound = (Math.max(0, calls - windowReqs()) / (opts.rpm / 60)) * 1000;
  const tokBound = (Math.max(0, arm.tokens - windowToks()) / (opts.tpm / 60)) * 1000;
  // Nor can it end before the last agent to arrive has made its calls at the fastest latency.
  const arrivalBound = Math.max(...[...arm.arrivals.values()]) + (opts.calls * opts.latencyMs * 0.6) / opts.scale;
  const bound = Math.max(reqBound, tokBound, arrivalBound);
  const warmup = (WINDOW_S * 1000) / opts.scale;
  const byClass = Object.fromEntries(
    CLASSES.map((c) => {
      const ts = completion.filter((a) => a.cls === c).map((a) => a.t);
      return [c, { n: ts.length, p50_s: quantile(ts, 0.5) / 1000, p95_s: quantile(ts, 0.95) / 1000, jain: ts.length ? jain(ts.map((t) => opts.calls / t)) : null }];
    }),
  );
  return {
    arm: arm.name,
    makespan_s: makespan / 1000,
    bound_s: bound / 1000,
    bound_by: bound === arrivalBound ? 'arrivals' : tokBound > reqBound ? 'tokens' : 'requests',
    arrivals_map: arm.arrivals,
    last_arrival_s: Math.max(...[...arm.arrivals.values()]) / 1000,
    ratio: makespan / bound,
    served: arm.served,
    tokens: arm.tokens,
    rejected_429: arm.rejected.length,
    rejected_429_after_warmup: arm.rejected.filter((t) => t > warmup).length,
    rejected_at_s: arm.rejected.map((t) => Math.round(t) / 1000),
    classes: byClass,
    high_over_low_p95: byClass.high.p95_s / byClass.low.p95_s,
    jain_min: Math.min(...CLASSES.map((c) => byClass[c].jain).filter((x) => x !== null)),
    scheduler: arm.scheduler ?? null,
    profile: arm.profile ?? null,
    spawned_s: arm.spawned_s ?? null,
    cpu: arm.cpu ? { ...arm.cpu, cpu_ms_per_served_call: arm.cpu.cpu_ms / arm.served } : null,
    load: arm.load_start ? { start: arm.load_start, end: arm.load_end } : null,
    agents: completion.map((a) => ({ id: a.id, cls: a.cls, done_ms: (arm.agents.get(a.id)?.done ?? []).map(Math.round) })),
    provider_log: arm.log,
    tickets: arm.tickets ?? null,
  };
}

// --- main -----------------------------------------------------------------------------------------------
const provider = createProvider();
await new Promise((r) => provider.server.listen(0, '127.0.0.1', r));
const port = provider.server.address().port;
const url = `http://127.0.0.1:${port}/v1`;
const pool = `openai:bench@127.0.0.1:${port}`;
opts.pool = pool;
// The provider's limits as its documentation states them; a burst of 0.3 s of rate (scaled) stays inside its 10 s windows,
// and (unless --no-window) the provider's window itself, so requests sent bunched cannot overflow it.
const poolConfig = { rpm: opts.rpm, tpm: opts.tpm, burst_seconds: 0.3 / opts.scale, aging_seconds: 60 / opts.scale, ...(opts.window ? { window_seconds: WINDOW_S / opts.scale } : {}) };
let bench = null;
const cleanup = async () => {
  await bench?.stop();
  provider.server.closeAllConnections?.();
  await new Promise((r) => provider.server.close(r));
};
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => void cleanup().finally(() => process.exit(130)));

try {
  log(`options: ${JSON.stringify({ ...opts, out: undefined })}`);
  log(`provider: ${url}; limits ${windowReqs()} requests and ${windowToks()} tokens per ${(WINDOW_S / opts.scale).toFixed(2)} s sliding window (= ${opts.rpm} rpm, ${opts.tpm} tpm; time scaled ${opts.scale}×)`);
  bench = await startBenchWorker({
    config: path.join(here, 'wrangler.toml'),
    name: 'sched-bench',
    inspector: Boolean(opts.profile),
    bindings: { AGENTOS_ADMIN_TOKEN: { type: 'secret_text', value: token }, SCHEDULER_POOLS: { type: 'plain_text', value: JSON.stringify({ [pool]: poolConfig }) } },
  });
  const { base } = bench;
  const setup = await fetch(`${base}/bench/setup`, { method: 'POST', headers: auth, body: migrationsSql() });
  if (!setup.ok) throw new Error(`setup → ${setup.status} ${await setup.text()}`);
  log(`bench worker: ${base}; pool ${pool} ${JSON.stringify(poolConfig)}`);

  const results = [];
  for (const name of opts.arms) {
    const agents = agentsPlan();
    log(`${name} arm: ${agents.length} agents × ${opts.calls} calls …`);
    const arm = name === 'kernel' ? await kernelArm(base, provider, url, agents, bench.worker) : await directArm(provider, url, agents, results.find((r) => r.arm === 'kernel')?.arrivals_map);
    const r = report(arm, agents);
    log(`${name}: makespan ${f(r.makespan_s, 1)} s (${f(r.ratio)}× bound), 429s ${r.rejected_429} (${r.rejected_429_after_warmup} after warm-up)`);
    results.push(r);
  }

  console.log(`\nlast arrival: ${results.map((r) => `${r.arm} ${f(r.last_arrival_s, 1)} s`).join(', ')}`);
  console.log(`\nScheduler benchmark: ${opts.agents} agents (${opts.mix[0]} high, ${opts.mix[1]} normal, ${opts.mix[2]} low priority) × ${opts.calls} calls; limits ${opts.rpm} rpm, ${opts.tpm} tpm (time ×${opts.scale}); latency ${opts.latencyMs} ms ±40% (real) → ${f(opts.latencyMs / opts.scale, 0)} ms\n`);
  console.log('| arm | makespan | lower bound | ratio (goal ≤ 1.05) | 429s (after warm-up; goal 0) | high p50 / p95 | normal p50 / p95 | low p50 / p95 | high p95 / low p95 (goal ≤ 0.2) | Jain, min over classes (goal ≥ 0.98) |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    const c = (k) => `${f(r.classes[k].p50_s, 1)} / ${f(r.classes[k].p95_s, 1)} s`;
    console.log(`| ${r.arm} | ${f(r.makespan_s, 1)} s | ${f(r.bound_s, 1)} s (${r.bound_by}) | ${f(r.ratio, 3)} | ${r.rejected_429} (${r.rejected_429_after_warmup}) | ${c('high')} | ${c('normal')} | ${c('low')} | ${f(r.high_over_low_p95, 3)} | ${f(r.jain_min, 4)} (${CLASSES.map((k) => f(r.classes[k].jain, 3)).join(' / ')}) |`);
  }
  for (const r of results.filter((x) => x.cpu)) {
    const c = r.cpu;
    console.log(`\n${r.arm} arm: ${opts.agents} processes spawned in ${f(r.spawned_s, 1)} s; workerd CPU ${f(c.cpu_ms / 1000, 1)} s over ${f(c.wall_ms / 1000, 1)} s (${f(c.cpu_ms / r.served, 1)} ms per served call); busiest thread ${f(100 * c.busiest_thread_share, 0)}% of wall time, ≥ 90% busy in ${f(100 * c.samples_over_90pct, 0)}% of ${c.samples} one-second samples; machine (all cores) ${f(100 * c.machine_busy_share, 0)}% busy; load ${r.load.start.map((x) => x.toFixed(2)).join(' ')} → ${r.load.end.map((x) => x.toFixed(2)).join(' ')}`);
  }
  for (const r of results.filter((x) => x.profile)) console.log(`\n${r.arm} arm's CPU profile (${f(r.profile.total_ms / 1000, 1)} s sampled; saved to ${opts.profile}; line numbers are in the bundled worker.js):\n${r.profile.text}`);
  const code = codeVersion();
  console.log(`\n_node scripts/bench/scheduler/run.mjs ${process.argv.slice(2).join(' ')} · commit ${code.commit}${code.kernel_sources_modified ? ' + uncommitted kernel changes' : ''} · ${os.cpus().length} CPUs · X_LOCAL_OBSERVABILITY=${process.env.X_LOCAL_OBSERVABILITY ?? '(unset: on)'} · ${new Date().toISOString()}_`);
  writeFileSync(opts.out, JSON.stringify({ at: new Date().toISOString(), code, opts, pool_config: poolConfig, results: results.map(({ arrivals_map, profile, ...r }) => r) }, null, 2));
  log(`results: ${opts.out}`);
} finally {
  await cleanup();
}
