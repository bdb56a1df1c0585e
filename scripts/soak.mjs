#!/usr/bin/env node
/**
 * Soak (not CI): many live processes under `wrangler dev` for a long while, sleeping, receiving
 * messages and spawning children (messages from outside taint a context, so those spawns ask for
 * approval and the harness approves them, as an operator would), then the checks a long run must pass:
 *  - no stuck process: every process reaches `terminated` within a grace period after its script
 *    ends, and none sits in `ready`/`running` without progress for longer than `--stuck-s`;
 *  - bounded memory: workerd's resident set, sampled every 30 s, stops growing (the last third of
 *    the run may not exceed the middle third's peak by more than 25%);
 *  - every SSE stream closed: streams opened on a sample of processes end when those processes exit;
 *  - the audit chain verifies (`GET /v1/audit/verify`).
 *
 *  - every request answered: each API call has a deadline (`--request-timeout-s`); one that gets no
 *    answer in time is recorded (method, path, seconds) and fails the run instead of hanging it.
 *
 *   PATH=node_modules/.bin:$PATH node scripts/soak.mjs                       # 1,000 processes, 10 min
 *   PATH=node_modules/.bin:$PATH node scripts/soak.mjs --processes 50 --minutes 2   # a smoke run
 *
 * Fresh state in a temp dir, a random loopback port and admin token; the dev server is stopped (by
 * its pid) at the end. wrangler's local observability collector (X_LOCAL_OBSERVABILITY) is off: it
 * keeps every span and log of the run in the same workerd, which would be measured as the kernel's
 * memory and CPU. Prints a summary (stdout: the figures docs/BENCHMARKS.md records, with the
 * command, commit and load) and exits non-zero if a check fails. `--dev-log FILE` keeps wrangler's
 * output.
 *
 * Capacity: every nap is two steps, so the run asks for about 2 × processes / sleep steps a second
 * of one workerd thread (1,000 processes at 20 s: 100 steps/s). The summary reports the workerd CPU
 * spent per step; if the demand exceeds what the thread can do, every queue grows and requests
 * time out: that is the runtime's capacity on this machine, reported as such.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { buildConsole } from './build-console.mjs';
import { startDevCli } from './lib/dev-cli.mjs';

const { values: o } = parseArgs({
  options: {
    processes: { type: 'string', default: '1000' },
    minutes: { type: 'string', default: '10' },
    sleep: { type: 'string', default: '20', description: 'seconds per nap' },
    'messages-per-s': { type: 'string', default: '5' },
    streams: { type: 'string', default: '50' },
    'stuck-s': { type: 'string', default: '120' },
    concurrency: { type: 'string', default: '16' },
    'request-timeout-s': { type: 'string', default: '60', description: 'the deadline of every API call' },
    'dev-log': { type: 'string', description: "a file for wrangler dev's output (default: discarded)" },
  },
});
const N = Number(o.processes);
const DURATION_MS = Number(o.minutes) * 60_000;
const NAP = Number(o.sleep);
process.env.X_LOCAL_OBSERVABILITY ??= 'false';
const REQUEST_TIMEOUT_MS = Number(o['request-timeout-s']) * 1000;
const loadAtStart = os.loadavg();
const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim() || null;
const command = `node scripts/soak.mjs ${process.argv.slice(2).join(' ')}`.trim();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let t0 = Date.now();
let sent = 0;
let sendErrors = 0;
const token = `soak-${randomBytes(12).toString('hex')}`;
const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
// wrangler.toml's [assets] directory must exist before `wrangler dev` starts (a fresh checkout has none).
await buildConsole();
// An interrupt exits through 'exit', which stops the dev server (by its pid) and removes its state.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
const dev = await startDevCli({ name: 'soak', token, migrate: true, log: o['dev-log'] });
const base = dev.base;

/** Latencies (ms) by kind of call, and the calls that got no answer within the deadline. */
const latency = { spawn: [], message: [], other: [] };
const timedOut = [];
const call = async (method, p, body, kind = 'other') => {
  const started = Date.now();
  try {
    const res = await fetch(`${base}${p}`, { method, headers: auth, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS), ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const text = await res.text();
    latency[kind].push(Date.now() - started);
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
  } catch (e) {
    if (e?.name !== 'TimeoutError' && e?.cause?.code !== 'UND_ERR_HEADERS_TIMEOUT') throw e;
    timedOut.push({ method, path: p.replace(/\?.*/, ''), seconds: (Date.now() - started) / 1000, at_s: Math.round((Date.now() - t0) / 1000) });
    return { status: 0, headers: new Headers(), body: null };
  }
};
const percentiles = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? null;
  return { n: s.length, p50_ms: at(0.5), p99_ms: at(0.99), max_ms: s.at(-1) ?? null };
};

/** The dev server's workerd processes: resident set (kB) and CPU time (s, user + system), summed. */
function workerdUsage() {
  let rssKb = 0;
  let cpuS = 0;
  const tick = 100; // USER_HZ on Linux
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== dev.pid || !readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('workerd')) continue;
      rssKb += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${d}/status`, 'utf8'))?.[1] ?? 0);
      cpuS += (Number(fields[11]) + Number(fields[12])) / tick;
    } catch {
      // exited meanwhile
    }
  }
  return { rssKb, cpuS };
}
const workerdRssKb = () => workerdUsage().rssKb;

// Each script naps, takes its mail, and every fifth nap spawns a child that exits at once; its
// last turn exits. The number of naps fills the run.
const naps = Math.max(1, Math.floor(DURATION_MS / 1000 / NAP));
const script = [];
for (let i = 0; i < naps; i++) {
  script.push({ tool_calls: [{ name: 'sleep', args: { seconds: NAP } }] });
  script.push({ tool_calls: [{ name: 'recv', args: { timeout_seconds: 0 } }] });
  if (i % 5 === 4) script.push({ tool_calls: [{ name: 'spawn', args: { name: 'child', task: 'say hello', image: 'demo-helper' } }] });
}
script.push({ tool_calls: [{ name: 'exit', args: { code: 0 } }] });

t0 = Date.now();
const pids = [];
// Progress on stderr every 30 s, so a run that is cut short still says how far it got.
let phase = 'spawn';
const progress = setInterval(() => {
  const { rssKb, cpuS } = workerdUsage();
  console.error(JSON.stringify({ at_s: Math.round((Date.now() - t0) / 1000), phase, spawned: pids.length, messages_sent: sent, timed_out: timedOut.length, rss_kb: rssKb, workerd_cpu_s: Math.round(cpuS), load: os.loadavg()[0] }));
}, 30_000);
progress.unref();
const spawnErrors = [];
let spawnRetries = 0;
/** Spawn one process; a 503 (overloaded) is retried after its Retry-After, as a client would. */
async function spawnOne(i) {
  for (let attempt = 0; ; attempt++) {
    const r = await call('POST', '/v1/processes', { name: `soak-${i}`, task: 'soak', model: { provider: 'scripted', model: 'scripted' }, quotas: { max_steps: script.length + 10 }, script }, 'spawn');
    if (r.status !== 503 || attempt >= 5) return r;
    spawnRetries++;
    await sleep(Math.max(1, Number(r.headers.get('retry-after')) || 1) * 1000);
  }
}
// Two whole batches in a row without an answer: the runtime has stopped answering, and more
// spawns would only queue behind the rest. The run goes on (and fails) with what it has.
let silentBatches = 0;
let spawnAbandonedAt = null;
for (let i = 0; i < N; i += Number(o.concurrency)) {
  const batch = await Promise.all(Array.from({ length: Math.min(Number(o.concurrency), N - i) }, (_, j) => spawnOne(i + j)));
  for (const r of batch) (r.status === 201 ? pids.push(r.body.pid) : spawnErrors.push(r.status));
  silentBatches = batch.every((r) => r.status === 0) ? silentBatches + 1 : 0;
  if (silentBatches >= 2) {
    spawnAbandonedAt = i + batch.length;
    break;
  }
}
const spawnSeconds = (Date.now() - t0) / 1000;
phase = 'messages';

// SSE streams on a sample: each must end by itself when its process exits.
const streams = pids.slice(0, Number(o.streams)).map(async (pid) => {
  const res = await fetch(`${base}/v1/processes/${pid}/events`, { headers: { ...auth, accept: 'text/event-stream' } });
  const reader = res.body.getReader();
  for (;;) if ((await reader.read()).done) return true;
});
let streamsClosed = 0;
let streamsBroken = 0;
/** Why streams ended with an error instead of their end, and when (s into the run). */
const streamErrors = {};
for (const s of streams) {
  s.then(
    () => streamsClosed++,
    (e) => {
      streamsBroken++;
      const why = `${e?.name ?? 'Error'}: ${e?.message ?? e}${e?.cause ? ` (${e.cause.code ?? e.cause.message ?? e.cause})` : ''}`;
      (streamErrors[why] ??= []).push(Math.round((Date.now() - t0) / 1000));
    },
  );
}

const rss = [];
let approved = 0;
/** Approve every pending request, every page of them (one page held only the oldest 100). */
async function approveAll() {
  let n = 0;
  for (let cursor = null, pages = 0; pages < 100; pages++) {
    const page = await call('GET', `/v1/approvals?status=pending&limit=500${cursor ? `&cursor=${cursor}` : ''}`).catch(() => ({ body: { approvals: [], next_cursor: null } }));
    for (const a of page.body?.approvals ?? []) if ((await call('POST', `/v1/approvals/${a.id}`, { decision: 'approve' })).status < 300) n++;
    cursor = page.body?.next_cursor ?? null;
    if (!cursor) break;
  }
  return n;
}
const end = t0 + DURATION_MS;
let lastSample = 0;
while (Date.now() < end) {
  const target = pids[Math.floor(Math.random() * pids.length)];
  const r = await call('POST', `/v1/processes/${target}/messages`, { body: { n: sent } }, 'message').catch(() => ({ status: 0 }));
  if (r.status === 202) sent++;
  else sendErrors++;
  // Messages from outside are untrusted, so a later spawn asks a human: the operator approves.
  if (sent % 20 === 0) approved += await approveAll();
  if (Date.now() - lastSample > 30_000) {
    lastSample = Date.now();
    rss.push(workerdRssKb());
  }
  await sleep(1000 / Number(o['messages-per-s']));
}

// Grace: every process should finish its last nap and exit.
phase = 'grace';
const graceEnd = Date.now() + Math.max(120_000, NAP * 3000);
let live = pids.length;
let stuck = [];
let states = {};
let children = 0;
while (Date.now() < graceEnd) {
  let rows = [];
  for (let cursor = null; ; ) {
    const page = await call('GET', `/v1/processes?limit=500${cursor ? `&cursor=${cursor}` : ''}`);
    if (page.status !== 200) {
      rows = null; // a page missing: judge on the next round
      break;
    }
    rows.push(...page.body.processes);
    cursor = page.body.next_cursor;
    if (!cursor) break;
  }
  if (!rows) {
    await sleep(10_000);
    continue;
  }
  children = rows.filter((r) => r.name === 'child').length;
  const mine = rows.filter((r) => r.name.startsWith('soak-'));
  live = mine.filter((r) => r.state !== 'terminated').length;
  states = mine.reduce((m, r) => ({ ...m, [r.state]: (m[r.state] ?? 0) + 1 }), {});
  // Stuck: no change for longer than --stuck-s (a sleeper: than its nap too). The harness approves
  // every pending request each round, so a waiting process has no reason to wait that long either.
  stuck = mine.filter((r) => r.state !== 'terminated' && r.state !== 'zombie' && Date.now() - r.updated_at > (Number(o['stuck-s']) + (r.state === 'sleeping' ? NAP : 0)) * 1000);
  if (live === 0) break;
  approved += await approveAll();
  await sleep(10_000);
}
rss.push(workerdRssKb());
phase = 'summary';
const { cpuS } = workerdUsage();
// What the first unfinished process is waiting for, to say why it did not finish.
const unfinished = [];
for (const pid of pids.slice(0, 200)) {
  const r = await call('GET', `/v1/processes/${pid}`);
  if (r.status === 0) break; // no answer: the runtime is not answering, asking 200 times will not help
  const pcb = r.body;
  if (pcb && pcb.state !== 'terminated') unfinished.push({ pid, state: pcb.state, wait: pcb.wait, steps: pcb.usage?.steps, updated_s_ago: Math.round((Date.now() - pcb.updated_at) / 1000) });
  if (unfinished.length >= 3) break;
}
const verify = await call('GET', '/v1/audit/verify');
// What the kernel itself recorded: the audit log, counted by kind and action (syscalls by name).
const actions = {};
let auditRows = 0;
for (let cursor = null; ; ) {
  const page = await call('GET', `/v1/audit?limit=1000${cursor ? `&cursor=${cursor}` : ''}`);
  if (page.status !== 200) break;
  for (const r of page.body.rows) {
    const key = r.kind === 'syscall' ? `${r.action}${r.outcome === 'ok' ? '' : `:${r.outcome}`}` : `${r.kind}:${r.action}`;
    actions[key] = (actions[key] ?? 0) + 1;
    auditRows++;
  }
  cursor = page.body.next_cursor;
  if (!cursor) break;
}
const steps = actions['llm:llm_call'] ?? 0;
const third = Math.floor(rss.length / 3);
const middlePeak = Math.max(...rss.slice(third, 2 * third + 1));
const lastPeak = Math.max(...rss.slice(2 * third));
const checks = {
  'every request answered within the deadline': timedOut.length === 0,
  'no process left running': live === 0,
  'no stuck process': stuck.length === 0,
  'memory bounded (last third ≤ 1.25 × middle third)': lastPeak <= middlePeak * 1.25,
  'every SSE stream closed': streamsClosed === streams.length,
  'audit chain verifies': verify.status === 200 && verify.body?.ok === true,
};
const summary = {
  command,
  commit,
  load_at_start: loadAtStart,
  load_at_end: os.loadavg(),
  processes: pids.length,
  spawn_errors: spawnErrors.length,
  spawn_retries_after_503: spawnRetries,
  spawn_abandoned_after: spawnAbandonedAt,
  spawn_seconds: spawnSeconds,
  minutes: Number(o.minutes),
  nap_seconds: NAP,
  steps_per_process: script.length,
  offered_steps_per_s: Math.round((2 * pids.length) / NAP),
  latency: { spawn: percentiles(latency.spawn), message: percentiles(latency.message), other: percentiles(latency.other) },
  timed_out: { count: timedOut.length, deadline_s: REQUEST_TIMEOUT_MS / 1000, first: timedOut.slice(0, 5) },
  messages_sent: sent,
  message_errors: sendErrors,
  approvals_granted: approved,
  children_spawned: children,
  syscalls: { sleep: actions.sleep ?? 0, recv: actions.recv ?? 0, spawn: actions.spawn ?? 0, exit: actions.exit ?? 0, asked: Object.entries(actions).filter(([k]) => k.endsWith(':asked')).reduce((n, [, v]) => n + v, 0) },
  steps,
  audit_rows: auditRows,
  workerd_cpu_s: Math.round(cpuS),
  workerd_cpu_ms_per_step: steps ? Math.round((cpuS * 1000) / steps) : null,
  live_after_grace: live,
  states,
  unfinished,
  stuck: stuck.length,
  rss_kb: rss,
  rss_growth: { first_kb: rss[0] ?? null, middle_third_peak_kb: middlePeak, last_third_peak_kb: lastPeak, ratio_last_to_middle: middlePeak ? Math.round((lastPeak / middlePeak) * 100) / 100 : null },
  streams: { opened: streams.length, closed: streamsClosed, broken: streamsBroken, open: streams.length - streamsClosed - streamsBroken, errors: Object.fromEntries(Object.entries(streamErrors).map(([why, at]) => [why, { count: at.length, first_s: Math.min(...at), last_s: Math.max(...at) }])) },
  audit: verify.body,
};
console.log(JSON.stringify(summary, null, 2));
for (const [name, ok] of Object.entries(checks)) console.log(`${ok ? 'PASS' : 'FAIL'} ${name}`);
process.exit(Object.values(checks).every(Boolean) ? 0 : 1);
