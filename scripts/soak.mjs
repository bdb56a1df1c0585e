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
 *   PATH=node_modules/.bin:$PATH node scripts/soak.mjs                       # 1,000 processes, 10 min
 *   PATH=node_modules/.bin:$PATH node scripts/soak.mjs --processes 50 --minutes 2   # a smoke run
 *
 * Fresh state in a temp dir, a random loopback port and admin token; the dev server is stopped (by
 * its pid) at the end. Prints a summary (stdout) and exits non-zero if a check fails.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    processes: { type: 'string', default: '1000' },
    minutes: { type: 'string', default: '10' },
    sleep: { type: 'string', default: '20', description: 'seconds per nap' },
    'messages-per-s': { type: 'string', default: '5' },
    streams: { type: 'string', default: '50' },
    'stuck-s': { type: 'string', default: '120' },
    concurrency: { type: 'string', default: '16' },
  },
});
const N = Number(o.processes);
const DURATION_MS = Number(o.minutes) * 60_000;
const NAP = Number(o.sleep);
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= 'false';
process.env.WRANGLER_SEND_METRICS ??= 'false';

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const state = mkdtempSync(path.join(os.tmpdir(), 'agentos-soak-'));
const token = `soak-${randomBytes(12).toString('hex')}`;
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
const migrate = spawnSync('wrangler', ['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', state], { stdio: 'ignore', env: { ...process.env, CI: 'true' } });
if (migrate.status !== 0) throw new Error('D1 migrations failed');
const dev = spawn('wrangler', ['dev', '--ip', '127.0.0.1', '--port', String(port), '--persist-to', state, '--var', `AGENTOS_ADMIN_TOKEN:${token}`], { stdio: 'ignore', detached: true });
const stopDev = () => {
  try {
    process.kill(-dev.pid, 'SIGTERM');
  } catch {
    // already gone
  }
  rmSync(state, { recursive: true, force: true });
};
process.on('exit', stopDev);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

const call = async (method, p, body) => {
  const res = await fetch(`${base}${p}`, { method, headers: auth, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
};
for (let i = 0; ; i++) {
  try {
    if ((await fetch(`${base}/healthz`)).ok) break;
  } catch {
    // not up yet
  }
  if (i > 240) throw new Error('wrangler dev did not answer /healthz within 120 s');
  await sleep(500);
}

/** workerd's resident set (kB), summed over the dev server's workerd processes. */
function workerdRssKb() {
  let total = 0;
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      if (pgid !== dev.pid || !readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('workerd')) continue;
      total += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${d}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

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

const t0 = Date.now();
const pids = [];
const spawnErrors = [];
for (let i = 0; i < N; i += Number(o.concurrency)) {
  const batch = await Promise.all(
    Array.from({ length: Math.min(Number(o.concurrency), N - i) }, (_, j) =>
      call('POST', '/v1/processes', { name: `soak-${i + j}`, task: 'soak', model: { provider: 'scripted', model: 'scripted' }, quotas: { max_steps: script.length + 10 }, script }),
    ),
  );
  for (const r of batch) (r.status === 201 ? pids.push(r.body.pid) : spawnErrors.push(r.status));
}
const spawnSeconds = (Date.now() - t0) / 1000;

// SSE streams on a sample: each must end by itself when its process exits.
const streams = pids.slice(0, Number(o.streams)).map(async (pid) => {
  const res = await fetch(`${base}/v1/processes/${pid}/events`, { headers: { ...auth, accept: 'text/event-stream' } });
  const reader = res.body.getReader();
  for (;;) if ((await reader.read()).done) return true;
});
let streamsClosed = 0;
for (const s of streams) s.then(() => streamsClosed++, () => {});

const rss = [];
let sent = 0;
let sendErrors = 0;
let approved = 0;
const end = t0 + DURATION_MS;
let lastSample = 0;
while (Date.now() < end) {
  const target = pids[Math.floor(Math.random() * pids.length)];
  const r = await call('POST', `/v1/processes/${target}/messages`, { body: { n: sent } }).catch(() => ({ status: 0 }));
  if (r.status === 202) sent++;
  else sendErrors++;
  // Messages from outside are untrusted, so a later spawn asks a human: the operator approves.
  if (sent % 20 === 0) {
    const pending = await call('GET', '/v1/approvals?status=pending').catch(() => ({ body: { approvals: [] } }));
    for (const a of pending.body?.approvals ?? []) if ((await call('POST', `/v1/approvals/${a.id}`, { decision: 'approve' })).status < 300) approved++;
  }
  if (Date.now() - lastSample > 30_000) {
    lastSample = Date.now();
    rss.push(workerdRssKb());
  }
  await sleep(1000 / Number(o['messages-per-s']));
}

// Grace: every process should finish its last nap and exit.
const graceEnd = Date.now() + Math.max(120_000, NAP * 3000);
let live = pids.length;
let stuck = [];
let states = {};
while (Date.now() < graceEnd) {
  const rows = [];
  for (let cursor = null; ; ) {
    const page = await call('GET', `/v1/processes?limit=500${cursor ? `&cursor=${cursor}` : ''}`);
    rows.push(...page.body.processes);
    cursor = page.body.next_cursor;
    if (!cursor) break;
  }
  const mine = rows.filter((r) => r.name.startsWith('soak-'));
  live = mine.filter((r) => r.state !== 'terminated').length;
  states = mine.reduce((m, r) => ({ ...m, [r.state]: (m[r.state] ?? 0) + 1 }), {});
  stuck = mine.filter((r) => (r.state === 'ready' || r.state === 'running') && Date.now() - r.updated_at > Number(o['stuck-s']) * 1000);
  if (live === 0) break;
  const pending = await call('GET', '/v1/approvals?status=pending');
  for (const a of pending.body?.approvals ?? []) if ((await call('POST', `/v1/approvals/${a.id}`, { decision: 'approve' })).status < 300) approved++;
  await sleep(10_000);
}
rss.push(workerdRssKb());
// What the first unfinished process is waiting for, to say why it did not finish.
const unfinished = [];
for (const pid of pids.slice(0, 200)) {
  const pcb = (await call('GET', `/v1/processes/${pid}`)).body;
  if (pcb.state !== 'terminated') unfinished.push({ pid, state: pcb.state, wait: pcb.wait, steps: pcb.usage?.steps });
  if (unfinished.length >= 3) break;
}
const verify = await call('GET', '/v1/audit/verify');
const third = Math.floor(rss.length / 3);
const middlePeak = Math.max(...rss.slice(third, 2 * third + 1));
const lastPeak = Math.max(...rss.slice(2 * third));
const checks = {
  'no process left running': live === 0,
  'no stuck process': stuck.length === 0,
  'memory bounded (last third ≤ 1.25 × middle third)': lastPeak <= middlePeak * 1.25,
  'every SSE stream closed': streamsClosed === streams.length,
  'audit chain verifies': verify.status === 200 && verify.body?.ok === true,
};
console.log(JSON.stringify({ processes: pids.length, spawn_errors: spawnErrors.length, spawn_seconds: spawnSeconds, minutes: Number(o.minutes), steps_per_process: script.length, messages_sent: sent, message_errors: sendErrors, approvals_granted: approved, live_after_grace: live, states, unfinished, stuck: stuck.length, rss_kb: rss, streams_closed: `${streamsClosed}/${streams.length}`, audit: verify.body, load: os.loadavg() }, null, 2));
for (const [name, ok] of Object.entries(checks)) console.log(`${ok ? 'PASS' : 'FAIL'} ${name}`);
process.exit(Object.values(checks).every(Boolean) ? 0 : 1);
