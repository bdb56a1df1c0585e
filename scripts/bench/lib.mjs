/**
 * What the benchmarks that run a Worker share: starting it under wrangler's dev server (workerd) on
 * loopback with fresh, temporary state (scripts/lib/dev-worker.mjs, shared with the end-to-end tests),
 * the D1 schema, percentiles and medians, the commit under test, the zero-latency OpenAI-compatible LLM
 * server, reading a process's event stream to its end, and workerd CPU time from /proc.
 *
 *   const bench = await startBenchWorker({ config: path.join(here, 'wrangler.toml'), name: 'ipc' });
 *   try { await fetch(`${bench.base}/setup`, { method: 'POST', body: migrationsSql() }); … }
 *   finally { await bench.stop(); }
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { ROOT, startDevWorker } from '../lib/dev-worker.mjs';

export { ROOT };

/** Start a bench Worker: see startDevWorker (bench Workers apply the D1 schema themselves, POST /setup). */
export const startBenchWorker = ({ name = 'bench', ...options }) => startDevWorker({ name, ...options });

/** Every D1 migration, in order: what `wrangler d1 migrations apply` would run. */
export function migrationsSql() {
  const dir = path.join(ROOT, 'migrations');
  return readdirSync(dir)
    .filter((n) => n.endsWith('.sql'))
    .sort()
    .map((n) => readFileSync(path.join(dir, n), 'utf8'))
    .join(';\n');
}

/** The p-th percentile (0–100) of xs, nearest rank; NaN when empty. */
export function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}

// --- stats and provenance -------------------------------------------------------------------------
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
export const summary = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length, samples: xs });
/** The code under test: commit, and whether the kernel's sources differ from it (read-only git calls). */
export function codeVersion() {
  const git = (...a) => execFileSync('git', a, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    const modified = git('status', '--porcelain', '--', 'src', 'durable', 'migrations').split('\n').filter(Boolean).map((l) => l.slice(3));
    return { commit: git('rev-parse', '--short', 'HEAD'), kernel_sources_modified: modified.length > 0, modified };
  } catch {
    return { commit: 'unknown', kernel_sources_modified: null, modified: [] };
  }
}
// --- the zero-latency LLM over loopback HTTP ---------------------------------------------------------
/**
 * An OpenAI-compatible Chat Completions endpoint that answers like ScriptedProvider with benchScript(N):
 * turn i < N-1 → fs_list, turn N-1 → exit, where N comes from the task "bench steps=N" and the turn
 * is the number of assistant messages so far. Both the kernel and the bare loop reach it through the
 * kernel's OpenAiProvider (the `openai` SDK), so the wire format and client cost are the same.
 */
export function startLlmServer() {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const request = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      const task = request.messages.find((m) => m.role === 'user')?.content ?? '';
      const steps = Number(/steps=(\d+)/.exec(task)?.[1] ?? 1);
      const turn = request.messages.filter((m) => m.role === 'assistant').length;
      const call = turn < steps - 1 ? { name: 'fs_list', args: { path: '/' } } : turn === steps - 1 ? { name: 'exit', args: { code: 0 } } : null;
      const message = call
        ? { role: 'assistant', content: null, tool_calls: [{ id: `call_${turn}_0`, type: 'function', function: { name: call.name, arguments: JSON.stringify(call.args) } }] }
        : { role: 'assistant', content: 'Script finished.' };
      const body = JSON.stringify({
        id: `chatcmpl-${turn}`,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model: request.model,
        choices: [{ index: 0, message, finish_reason: call ? 'tool_calls' : 'stop' }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/**
 * Read a process's SSE stream until its terminal event. Stops at `state → terminated` rather than
 * at end of stream, so a stream opened after the process ended cannot hang the harness.
 */
export async function awaitTermination(url, headers) {
  const r = await fetch(url, { headers: { accept: 'text/event-stream', ...headers } });
  if (!r.ok) throw new Error(`GET ${url} → ${r.status}`);
  const decoder = new TextDecoder();
  let buf = '';
  const seen = { exit: null, faults: 0, llm_calls: 0 };
  for await (const chunk of r.body) {
    buf += decoder.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const type = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (type === 'llm_call') seen.llm_calls++;
      if (type === 'fault') seen.faults++;
      if (type === 'exit') seen.exit = JSON.parse(data).data;
      if (type === 'state' && JSON.parse(data).data.to === 'terminated') {
        await r.body.cancel().catch(() => {});
        return seen;
      }
    }
  }
  return seen;
}

// --- CPU time of the workerd processes under a process -------------------------------------------
/**
 * The pids of the workerd processes descended from `root` (wrangler's startWorker runs them as
 * children of this process; the `wrangler dev` CLI as children of its own node process). Empty
 * where /proc is not available.
 */
export function workerdPidsUnder(root) {
  try {
    const parent = new Map();
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      } catch {
        // exited meanwhile
      }
    }
    const under = (pid) => {
      for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) if (p === root) return true;
      return false;
    };
    return [...parent.keys()].filter((pid) => {
      try {
        return under(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('workerd');
      } catch {
        return false;
      }
    });
  } catch {
    return [];
  }
}

/**
 * CPU time (ns) used so far by all threads of `pids`, from /proc/<pid>/task/<tid>/schedstat. Wall
 * time on a shared machine includes waiting for other tenants; CPU time mostly does not, so
 * benchmarks report both. Null where /proc is not available.
 */
export function cpuNs(pids) {
  try {
    let ns = 0;
    for (const pid of pids) for (const tid of readdirSync(`/proc/${pid}/task`)) ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    return ns;
  } catch {
    return null;
  }
}

/**
 * CPU time (ns) so far of each thread of `pids`, keyed "pid/tid". Every Durable Object and the Worker
 * of a local runtime share one workerd thread, so the busiest thread's share of wall time says whether
 * a run was bound by that thread (near 100%) or waited on something else. Empty without /proc.
 */
export function threadCpuNs(pids) {
  const out = new Map();
  for (const pid of pids) {
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) out.set(`${pid}/${tid}`, Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/**
 * Sample the workerd threads under this process every `everyMs` while a phase runs: `stop()` returns
 * the total CPU (ms), the busiest thread's CPU and its share of the wall time, and the share of the
 * samples in which that thread was ≥ 90% busy (a run bound by that thread is there most of the time),
 * and how busy the whole machine was (all cores, every process: other jobs show up here).
 */
/** Jiffies of the whole machine from /proc/stat: [busy, total]; null without /proc. */
function machineJiffies() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] ?? 0);
    const total = f.reduce((a, b) => a + b, 0);
    return [total - idle, total];
  } catch {
    return null;
  }
}

export function cpuSampler(everyMs = 1000) {
  const pids = workerdPidsUnder(process.pid);
  const m0 = machineJiffies();
  const first = threadCpuNs(pids);
  const t0 = performance.now();
  let last = first;
  let lastT = t0;
  const busy = [];
  const timer = setInterval(() => {
    const now = threadCpuNs(pids);
    const t = performance.now();
    let top = 0;
    for (const [k, v] of now) top = Math.max(top, v - (last.get(k) ?? 0));
    busy.push(top / 1e6 / (t - lastT));
    last = now;
    lastT = t;
  }, everyMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      const end = threadCpuNs(pids);
      const m1 = machineJiffies();
      const wallMs = performance.now() - t0;
      let total = 0;
      let top = { key: null, ms: 0 };
      for (const [k, v] of end) {
        const d = (v - (first.get(k) ?? 0)) / 1e6;
        total += d;
        if (d > top.ms) top = { key: k, ms: d };
      }
      return { wall_ms: wallMs, cpu_ms: total, busiest_thread_cpu_ms: top.ms, busiest_thread_share: top.ms / wallMs, samples: busy.length, samples_over_90pct: busy.filter((x) => x >= 0.9).length / Math.max(1, busy.length), workerd_pids: pids.length, machine_busy_share: m0 && m1 ? (m1[0] - m0[0]) / (m1[1] - m0[1]) : null };
    },
  };
}
