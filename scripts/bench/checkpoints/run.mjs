#!/usr/bin/env node
/**
 * Checkpoint benchmark: processes of 100 and 2,000 real steps (scripted LLM, one fs_write per step
 * over 50 files), run by the kernel under wrangler's dev server with local R2. For each size:
 *   - checkpoint time and stored bytes, against floors measured in the same run on the same state:
 *     the raw state (every copied table's rows as JSON) compressed in one piece with the codec the
 *     packs use, raw deflate (size floor), and reading that state, compressing it and putting it as
 *     one R2 object (time floor); also, after the 10 steps, how much that floor grew (what the 10
 *     steps add even to one stream that has the whole history as context);
 *   - 10 more steps, then a second checkpoint: its incremental size (new bytes) against the full one;
 *   - restore time (back to the first checkpoint).
 * Goals (issue #16): stored ≤ 1.2× the compressed raw state; incremental ≤ 10% of a full checkpoint.
 *
 *   node scripts/bench/checkpoints/run.mjs [--sizes 100,2000] [--reps 3]
 */
import { randomBytes } from 'node:crypto';
import { execSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, migrationsSql, pct, startBenchWorker } from '../lib.mjs';

const { values: opts } = parseArgs({ options: { sizes: { type: 'string', default: '100,2000' }, reps: { type: 'string', default: '3' } } });
const sizes = opts.sizes.split(',').map(Number);
const reps = Number(opts.reps);
const token = `bench-${randomBytes(8).toString('hex')}`;
const bench = await startBenchWorker({ config: path.join(ROOT, 'scripts/bench/checkpoints/wrangler.toml'), name: 'checkpoints', bindings: { AGENTOS_ADMIN_TOKEN: { type: 'secret_text', value: token } } });
const H = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
async function call(method, p, body) {
  const res = await fetch(`${bench.base}${p}`, { method, headers: H, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text);
}
const timed = async (fn) => {
  const t = performance.now();
  const value = await fn();
  return { ms: performance.now() - t, value };
};
const write = (i) => ({ tool_calls: [{ name: 'fs_write', args: { path: `notes/${i % 50}.md`, content: `Step ${i}: what was learned, checked and decided at this point of the work. `.repeat(3) } }] });
const recv = { tool_calls: [{ name: 'recv', args: {} }] };

async function until(pid, steps) {
  for (let i = 0; i < 100_000; i++) {
    const pcb = await call('GET', `/v1/processes/${pid}`);
    if (pcb.state === 'waiting' && pcb.usage.steps === steps) return pcb;
    if (pcb.state === 'terminated' || pcb.state === 'zombie') throw new Error(`process ended: ${JSON.stringify(pcb.exit)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('timed out');
}

const rows = [];
try {
  await call('POST', '/bench/setup', migrationsSql());
  for (const n of sizes) {
    const script = [...Array.from({ length: n }, (_, i) => write(i + 1)), recv, ...Array.from({ length: 10 }, (_, i) => write(n + 2 + i)), recv];
    const pcb = await call('POST', '/v1/processes', { name: `ckpt-${n}`, task: 'take notes', model: { provider: 'scripted', model: 'scripted' }, quotas: { max_steps: 10_000, max_tokens: 1_000_000_000 }, script });
    const pid = pcb.pid;
    await until(pid, n + 1);
    const raw = await call('GET', `/bench/raw/${pid}`);
    const floor = [];
    for (let r = 0; r < reps; r++) floor.push((await timed(() => call('POST', `/bench/floor/${pid}`))).ms);
    const full = await timed(() => call('POST', `/v1/processes/${pid}/checkpoints`, { label: 'full' }));
    // Further checkpoints of the same state cost only their manifests: timed to see the chunking's own cost.
    const again = [];
    for (let r = 0; r < reps; r++) again.push((await timed(() => call('POST', `/v1/processes/${pid}/checkpoints`, {}))).ms);
    await call('POST', `/v1/processes/${pid}/messages`, { body: 'go on' });
    await until(pid, n + 12);
    const raw2 = await call('GET', `/bench/raw/${pid}`);
    const incr = await timed(() => call('POST', `/v1/processes/${pid}/checkpoints`, { label: 'after 10 more steps' }));
    const restore = await timed(() => call('POST', `/v1/processes/${pid}/checkpoints/${full.value.id}/restore`));
    const row = {
      steps: n,
      raw_bytes: raw.raw_bytes,
      compressed_raw_bytes: raw.compressed_bytes,
      stored_bytes: full.value.stored_bytes,
      stored_over_compressed: full.value.stored_bytes / raw.compressed_bytes,
      checkpoint_ms: full.ms,
      floor_ms: pct(floor, 50),
      checkpoint_over_floor: full.ms / pct(floor, 50),
      unchanged_checkpoint_ms: pct(again, 50),
      incremental_new_bytes: incr.value.new_bytes,
      incremental_over_full: incr.value.new_bytes / full.value.stored_bytes,
      incremental_ms: incr.ms,
      compressed_raw_after_bytes: raw2.compressed_bytes,
      floor_growth_bytes: raw2.compressed_bytes - raw.compressed_bytes,
      floor_growth_over_floor: (raw2.compressed_bytes - raw.compressed_bytes) / raw.compressed_bytes,
      restore_ms: restore.ms,
    };
    rows.push(row);
    console.error(`${n} steps done`);
  }
} finally {
  await bench.stop();
}

const f = (x, d = 0) => (typeof x === 'number' ? x.toFixed(d) : String(x));
console.log(`commit ${execSync('git rev-parse --short HEAD', { cwd: ROOT }).toString().trim()}, ${os.cpus().length} cpus, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log('| steps | raw state | compressed (floor) | stored | stored / floor | checkpoint ms | floor ms | ratio | same state again ms | +10 steps: new bytes | incremental / full | floor growth | growth / floor | restore ms |');
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.steps} | ${r.raw_bytes} | ${r.compressed_raw_bytes} | ${r.stored_bytes} | ${f(r.stored_over_compressed, 2)}× | ${f(r.checkpoint_ms)} | ${f(r.floor_ms)} | ${f(r.checkpoint_over_floor, 1)}× | ${f(r.unchanged_checkpoint_ms)} | ${r.incremental_new_bytes} | ${f(r.incremental_over_full * 100, 1)}% | ${r.floor_growth_bytes} | ${f(r.floor_growth_over_floor * 100, 1)}% | ${f(r.restore_ms)} |`);
}
console.log(JSON.stringify(rows));
