#!/usr/bin/env node
/**
 * CPU profile of the bench Worker's isolate while it runs one workload, through the V8 inspector.
 *
 *   node_modules/.bin/node scripts/bench/profile.mjs step 200     # one 200-step kernel process
 *   node_modules/.bin/node scripts/bench/profile.mjs bare 200     # the bare loop, 200 steps
 *   node_modules/.bin/node scripts/bench/profile.mjs spawn 300    # 300 parked spawns, 32 at a time
 *   node_modules/.bin/node scripts/bench/profile.mjs spawn-alone 300   # the same without their first step (tune `nostep`)
 *   node_modules/.bin/node scripts/bench/profile.mjs spawn-floor 300   # the spawn floor: a new object that writes one row
 *
 * Starts scripts/bench/worker.ts like run.mjs (temp state, migrations, bootstrap token) with the
 * inspector on, warms up with one unprofiled run, then samples every 100 µs and prints the top
 * functions by self and by inclusive time. Native work (SQLite, RPC serialisation) is charged to
 * the JavaScript frame that called it; "(idle)" is time the isolate waited (I/O, alarms, other objects).
 * Options: --top N (rows per table, default 30), --save file.cpuprofile (open in Chrome DevTools).
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { profileTables, startProfile } from './cpu-profile.mjs';
import { migrationsSql, startBenchWorker } from './lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name, def) => (args.includes(name) ? args[args.indexOf(name) + 1] : def);
const [what = 'step', nArg = '200'] = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
const n = Number(nArg);
const top = Number(flag('--top', 30));
const token = `bench-${randomBytes(16).toString('hex')}`;
const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };

const bench = await startBenchWorker({ config: path.join(here, 'wrangler.bench.toml'), name: 'profile', bindings: { AGENTOS_ADMIN_TOKEN: { type: 'secret_text', value: token } }, inspector: true });
const { base, worker } = bench;

async function post(p, body) {
  const r = await fetch(base + p, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${p} → ${r.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

const script = (steps) => [...Array.from({ length: steps - 1 }, () => ({ tool_calls: [{ name: 'fs_list', args: { path: '/' } }] })), { tool_calls: [{ name: 'exit', args: { code: 0 } }] }];
async function kernelRun(steps) {
  const pcb = await post('/v1/processes', { name: 'bench', task: `bench steps=${steps}`, image: 'default', model: { provider: 'scripted', model: 'scripted' }, script: script(steps), quotas: { max_steps: steps + 10, max_tokens: 1e9 } });
  const r = await fetch(`${base}/v1/processes/${pcb.pid}/events`, { headers: { ...headers, accept: 'text/event-stream' } });
  let buf = '';
  for await (const chunk of r.body) {
    buf += Buffer.from(chunk).toString();
    if (buf.includes('"to":"terminated"')) return void (await r.body.cancel().catch(() => {}));
  }
}
const park = JSON.stringify({ name: 'bench', task: 'park', image: 'default', model: { provider: 'scripted', model: 'scripted' }, script: [{ tool_calls: [{ name: 'sleep', args: { seconds: 3600 } }] }] });
async function spawns(count, route = '/v1/processes', body = park) {
  let next = 0;
  await Promise.all(Array.from({ length: 32 }, async () => { while (next++ < count) await post(route, body); }));
}
// spawn-alone: the same spawns on the `tune` kernel with `nostep` (their alarms do nothing): the spawn without its first step.
const alone = park.replace('"name":"bench"', '"name":"bench:nostep"');
const workloads = { step: () => kernelRun(n), bare: () => post(`/bench/bare?steps=${n}`), spawn: () => spawns(n), 'spawn-alone': () => spawns(n, '/variant/tune/v1/processes', alone), 'spawn-floor': () => spawns(n, '/bench/bare-spawn', '') };
if (!workloads[what]) throw new Error(`workload must be one of ${Object.keys(workloads).join(', ')}`);

try {
  await post('/bench/setup', migrationsSql());
  await workloads[what](); // warm-up, not profiled

  const profiler = await startProfile(worker);
  const t0 = performance.now();
  await workloads[what]();
  const wall = performance.now() - t0;
  const profile = await profiler.stop();
  if (flag('--save')) writeFileSync(flag('--save'), JSON.stringify(profile));

  const { total_ms, text } = profileTables(profile, top);
  console.log(`${what} ${n}: wall ${wall.toFixed(0)} ms, sampled ${total_ms.toFixed(0)} ms (line numbers are in the bundled worker.js)`);
  console.log(`\n${text}`);
} finally {
  await bench.stop();
}
