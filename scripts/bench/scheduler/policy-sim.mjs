#!/usr/bin/env node
/**
 * The scheduler benchmark's workload run against the scheduler's pure policy alone (src/kernel/
 * scheduler.ts: `pick`, `joinVirtualTimes`; src/kernel/pool-rate.ts: `release`), on a simulated clock, with no runtime: what
 * the policy can reach when every step, wake and request costs only the delays given here. Beside
 * scripts/bench/scheduler/run.mjs it tells a miss of the policy from a miss of the machine.
 *
 *   node --experimental-strip-types scripts/bench/scheduler/policy-sim.mjs                     # the run.mjs --rpm 600 workload
 *   node --experimental-strip-types scripts/bench/scheduler/policy-sim.mjs --spawn-s 162 --grant-delay-ms 800
 *
 * The model, as run.mjs's: 200 agents (20 high, 60 normal, 120 low; shuffled with the same seed), 10
 * calls each; a provider with 100 requests and 240,000 tokens per sliding 10 s window that answers
 * accepted calls after 1.5 s ± 40% and answers 429 with retry-after past its window; the pool
 * configured as run.mjs configures it (rpm 600, tpm 1,440,000, burst 0.3 s, aging 60 s, headroom
 * 0.97). Agents arrive spread evenly over `--spawn-s`. A grant reaches the provider after
 * `--grant-delay-ms` (the wake, the process's alarm and the step before the request), and an agent's
 * next call is asked for `--step-ms` after its answer (the step that handles it). A 429 releases the
 * ticket (the pool pauses and slows down) and the agent asks again after the retry-after. Tokens per
 * call grow with the conversation (`--tokens` at the first call, `--tokens-per-turn` more per turn);
 * the estimate the scheduler is given is exact (it learns the ratio anyway). Reported as run.mjs
 * reports: makespan / lower bound, 429s, p50/p95 completion per class, high p95 / low p95.
 */
import { parseArgs } from 'node:util';
import { INITIAL_STATE, recordSent, release } from '../../../src/kernel/pool-rate.ts';
import { PoolConfigSchema, joinVirtualTimes, pick, withVtimes } from '../../../src/kernel/scheduler.ts';

const { values: a } = parseArgs({
  options: {
    agents: { type: 'string', default: '200' },
    calls: { type: 'string', default: '10' },
    mix: { type: 'string', default: '20,60,120' },
    rpm: { type: 'string', default: '600' },
    'latency-ms': { type: 'string', default: '1500' },
    'spawn-s': { type: 'string', default: '0' },
    'grant-delay-ms': { type: 'string', default: '20' },
    'step-ms': { type: 'string', default: '10' },
    tokens: { type: 'string', default: '2000' },
    'tokens-per-turn': { type: 'string', default: '60' },
    'aging-s': { type: 'string', default: '60' },
    headroom: { type: 'string', default: '0.97' },
    burst: { type: 'string', default: '0.3' },
    // The admission: 'window' (buckets of --burst seconds and a sliding window of the provider's 10 s, as run.mjs configures the pool) or 'bucket' (buckets alone).
    admission: { type: 'string', default: 'window' },
    // Grant → request delay varies by ± this fraction (uniformly): a runtime that sends its requests late and unevenly.
    'grant-jitter': { type: 'string', default: '0' },
    seed: { type: 'string', default: '1' },
  },
});
const N = Number(a.agents);
const CALLS = Number(a.calls);
const MIX = a.mix.split(',').map(Number);
const RPM = Number(a.rpm);
const TPM = RPM * 2400;
const WINDOW_MS = 10_000;
const WIN_REQ = Math.floor((RPM / 60) * 10);
const WIN_TOK = Math.floor((TPM / 60) * 10);
const PRIORITY = [10, 50, 90];
const CLASSES = ['high', 'normal', 'low'];

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
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
};

// The same shuffled plan as run.mjs's agentsPlan().
const rand = prng(Number(a.seed));
const plan = [];
MIX.forEach((n, c) => {
  for (let i = 0; i < n; i++) plan.push({ cls: c });
});
for (let i = plan.length - 1; i > 0; i--) {
  const j = Math.floor(rand() * (i + 1));
  [plan[i], plan[j]] = [plan[j], plan[i]];
}
const agents = plan.map((p, id) => ({ id, cls: p.cls, turn: 0, first: null, done: null }));

const config = PoolConfigSchema.parse({ rpm: RPM, tpm: TPM, burst_seconds: Number(a.burst), window_seconds: a.admission === 'window' ? WINDOW_MS / 1000 : null, aging_seconds: Number(a['aging-s']), headroom: Number(a.headroom) });
const latRand = prng(Number(a.seed) * 7919);
const jitRand = prng(Number(a.seed) * 104729);

// --- a discrete-event loop ------------------------------------------------------------------------
const events = []; // [at, seq, fn], kept sorted by (at, seq)
let seq = 0;
const at = (t, fn) => {
  const e = [t, seq++, fn];
  let i = events.length;
  while (i > 0 && (events[i - 1][0] > t || (events[i - 1][0] === t && events[i - 1][1] > e[1]))) i--;
  events.splice(i, 0, e);
};

let state = INITIAL_STATE;
let vtimes = { tenant: new Map(), pid: new Map() };
let windows = new Map();
let queue = [];
let inFlight = 0;
let inFlightTokens = 0;
/** Requests the provider counted, as the scheduler hears of them on release: [sent at, tokens]. */
let sent = [];
let timerAt = null;
let ticketSeq = 0;
const provider = { window: [], tokens: 0, served: 0, servedTokens: 0, rejected: [] };

const tokensOf = (turn) => Number(a.tokens) + Number(a['tokens-per-turn']) * turn;

function ask(agent, now) {
  const t = { id: `t${ticketSeq++}`, pid: `p${agent.id}`, tenant: 'bench', priority: PRIORITY[agent.cls], est_tokens: tokensOf(agent.turn), enqueued_at: now, lineage: [{ pid: `p${agent.id}`, max_tokens: 1e12 }], agent };
  queue.push(t);
  vtimes = withVtimes(vtimes, joinVirtualTimes(vtimes, queue, t));
  schedule(now);
}

function schedule(now) {
  const window = config.window_seconds ? { entries: (sent = sent.filter(([s]) => s + WINDOW_MS > now)), in_flight: inFlight, in_flight_tokens: inFlightTokens } : undefined;
  const r = pick({ config, shards: 1, state, queue, in_flight: inFlight, vtimes, windows, subtree: new Map(), window, now });
  state = r.state;
  vtimes = withVtimes(vtimes, r.vtimes);
  windows = r.windows;
  for (const d of r.decisions) {
    queue = queue.filter((q) => q.id !== d.ticket.id);
    if (d.kind !== 'grant') continue;
    inFlight++;
    inFlightTokens += d.charged;
    const t = d.ticket;
    const grantedAt = now;
    const jitter = Number(a['grant-jitter']);
    at(now + Number(a['grant-delay-ms']) * (1 - jitter + 2 * jitter * jitRand()), (tr) => request(t, d.charged, tr, grantedAt));
  }
  if (r.next_at !== null && (timerAt === null || r.next_at < timerAt || timerAt <= now)) {
    timerAt = r.next_at;
    at(r.next_at, (tn) => {
      if (timerAt === r.next_at) timerAt = null;
      schedule(tn);
    });
  }
}

function request(t, charged, now, grantedAt) {
  const agent = t.agent;
  const tokens = tokensOf(agent.turn);
  while (provider.window.length && provider.window[0][0] <= now - WINDOW_MS) {
    provider.tokens -= provider.window[0][1];
    provider.window.shift();
  }
  agent.first ??= now;
  if (provider.window.length + 1 > WIN_REQ || provider.tokens + tokens > WIN_TOK) {
    let wait = 0;
    if (provider.window.length + 1 > WIN_REQ) wait = provider.window[provider.window.length - WIN_REQ][0] + WINDOW_MS - now;
    let free = WIN_TOK - provider.tokens;
    for (let i = 0; free < tokens && i < provider.window.length; i++) {
      free += provider.window[i][1];
      wait = Math.max(wait, provider.window[i][0] + WINDOW_MS - now);
    }
    const retry = Math.max(1, Math.ceil(wait));
    provider.rejected.push(now);
    inFlight--;
    inFlightTokens -= charged;
    state = release(config, state, charged, t.est_tokens, { kind: 'rate_limited', retry_after_ms: retry }, now, grantedAt);
    schedule(now);
    at(now + retry, (tn) => ask(agent, tn));
    return;
  }
  provider.window.push([now, tokens]);
  provider.tokens += tokens;
  const latency = Number(a['latency-ms']) * (0.6 + 0.8 * latRand());
  at(now + latency, (td) => {
    provider.served++;
    provider.servedTokens += tokens;
    inFlight--;
    inFlightTokens -= charged;
    sent = recordSent(sent, now, tokens, WINDOW_MS, td);
    state = release(config, state, charged, t.est_tokens, { kind: 'ok', tokens }, td, grantedAt);
    schedule(td);
    agent.turn++;
    if (agent.turn >= CALLS) agent.done = td;
    else at(td + Number(a['step-ms']), (tn) => ask(agent, tn));
  });
}

const spawnMs = Number(a['spawn-s']) * 1000;
agents.forEach((ag, i) => at((spawnMs * i) / N, (t) => ask(ag, t)));
while (events.length) {
  const [t, , fn] = events.shift();
  fn(t);
}

// --- report, as run.mjs reports -------------------------------------------------------------------
const makespan = Math.max(...agents.map((x) => x.done));
const reqBound = (Math.max(0, N * CALLS - WIN_REQ) / (RPM / 60)) * 1000;
const tokBound = (Math.max(0, provider.servedTokens - WIN_TOK) / (TPM / 60)) * 1000;
const arrivalBound = Math.max(...agents.map((x) => x.first)) + CALLS * Number(a['latency-ms']) * 0.6;
const bound = Math.max(reqBound, tokBound, arrivalBound);
const by = CLASSES.map((_, c) => agents.filter((x) => x.cls === c).map((x) => (x.done - x.first) / 1000));
const f = (x, d = 1) => x.toFixed(d);
console.log(`policy simulation: ${N} agents × ${CALLS} calls, ${RPM} rpm, admission by ${a.burst} s buckets${a.admission === 'window' ? ' and a 10 s sliding window' : ''}; grant → request jitter ±${Number(a['grant-jitter']) * 100}%; spawns over ${a['spawn-s']} s, grant → request ${a['grant-delay-ms']} ms, step ${a['step-ms']} ms, tokens ${a.tokens} + ${a['tokens-per-turn']}/turn, aging ${a['aging-s']} s`);
console.log(`| makespan | lower bound | ratio (goal ≤ 1.10) | 429s | high p50 / p95 | normal p50 / p95 | low p50 / p95 | high p95 / low p95 (goal ≤ 0.2) |`);
console.log(`|---:|---:|---:|---:|---:|---:|---:|---:|`);
console.log(`| ${f(makespan / 1000)} s | ${f(bound / 1000)} s (${bound === arrivalBound ? 'arrivals' : tokBound > reqBound ? 'tokens' : 'requests'}) | ${f(makespan / bound, 3)} | ${provider.rejected.length} | ${by.map((xs) => `${f(quantile(xs, 0.5))} / ${f(quantile(xs, 0.95))} s`).join(' | ')} | ${f(quantile(by[0], 0.95) / quantile(by[2], 0.95), 3)} |`);
