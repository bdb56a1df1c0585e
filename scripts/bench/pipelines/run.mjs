#!/usr/bin/env node
/**
 * Pipelines benchmark: what a pipeline costs over spawning and waiting on the same processes
 * yourself, and how close a fan-out's makespan comes to the ideal, in one run.
 *
 *   node scripts/bench/pipelines/run.mjs                     # 3-stage chains × 3 rounds, 100-item fan-out
 *   node scripts/bench/pipelines/run.mjs --stages 5 --rounds 5 --items 100 --concurrency 10 --work 1
 *   node scripts/bench/pipelines/run.mjs --quick
 *
 * Starts scripts/bench/pipelines/worker.ts (the kernel Worker plus /setup and /wait) through
 * wrangler's DevEnv with fresh temp state. Arms, alternated per round, each with two kinds of
 * process (scripted model): `bare` exits at once; `work` sleeps --work seconds (an alarm) first,
 * standing in for an agent that does something.
 *   direct    the floor: POST /v1/processes, wait for it to terminate, then the next, k times
 *   pipeline  one POST /v1/pipelines of a k-stage chain (each stage needs the one before), wait for the run
 *   engine    the Workflow engine alone (worker.ts, FloorWorkflow): a run of k items one after the
 *             other with a pipeline stage's steps and event each, and no kernel; the event comes
 *             from a Durable Object at once (bare) or --work s later (work)
 * Per-stage overhead = pipeline time / direct time for the same k processes; and pipeline time /
 * (direct + engine time for bare), what is left once the engine's own cost is counted as a floor.
 * Fan-out: one stage over --items items at --concurrency, each process sleeping --work s. Ideal =
 * sum of the processes' own times (spawned → terminated, from the process table) / concurrency; the
 * engine floor runs the same fan-out shape with --work s per item and reports its makespan over its
 * own ideal (the sum of its items' own times, asked → event sent, / concurrency).
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrationsSql, pct, startBenchWorker } from '../lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const o = { stages: 3, rounds: 3, items: 100, concurrency: 10, work: 1 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--stages') o.stages = Number(argv[++i]);
  else if (a === '--rounds') o.rounds = Number(argv[++i]);
  else if (a === '--items') o.items = Number(argv[++i]);
  else if (a === '--concurrency') o.concurrency = Number(argv[++i]);
  else if (a === '--work') o.work = Number(argv[++i]);
  else if (a === '--quick') Object.assign(o, { stages: 2, rounds: 1, items: 20, concurrency: 5 });
  else throw new Error(`unknown argument ${a}`);
}
const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const token = `bench-${randomBytes(8).toString('hex')}`;
const bench = await startBenchWorker({ config: path.join(here, 'wrangler.toml'), name: 'bench-pipelines', bindings: { AGENTOS_ADMIN_TOKEN: { type: 'secret_text', value: token } } });

const script = (kind) => [...(kind === 'work' ? [{ tool_calls: [{ name: 'sleep', args: { seconds: o.work } }] }] : []), { tool_calls: [{ name: 'exit', args: { code: 0, result: 'done' } }] }];

try {
  const { base } = bench;
  const call = async (method, p, body) => {
    const r = await fetch(`${base}${p}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }) });
    const t = await r.text();
    if (!r.ok) throw new Error(`${method} ${p} → ${r.status}: ${t.slice(0, 300)}`);
    return JSON.parse(t);
  };
  await call('POST', '/setup', migrationsSql());

  const direct = async (kind, k) => {
    const t0 = performance.now();
    for (let i = 0; i < k; i++) {
      const pcb = await call('POST', '/v1/processes', { name: `direct-${i}`, task: 'work', model: { provider: 'scripted', model: 'scripted' }, script: script(kind) });
      await call('GET', `/wait?pid=${pcb.pid}`);
    }
    return performance.now() - t0;
  };
  const chain = (kind, k) => ({
    stages: Array.from({ length: k }, (_, i) => ({ name: `s${i}`, ...(i ? { needs: [`s${i - 1}`] } : {}), task: 'work', script: script(kind) })),
  });
  const pipeline = async (spec) => {
    const t0 = performance.now();
    const { id } = await call('POST', '/v1/pipelines', { spec, input: {} });
    const run = await call('GET', `/wait?id=${id}`);
    if (run.status !== 'complete') throw new Error(`pipeline ${id} ended ${run.status}`);
    return { ms: performance.now() - t0, run };
  };

  const engine = async (params) => {
    const t0 = performance.now();
    const { id } = await call('POST', '/floor', params);
    const row = await call('GET', `/wait?floor=${id}`);
    if (!row) throw new Error(`engine floor run ${id} did not end`);
    return { ms: performance.now() - t0, ownMs: row.own_ms };
  };
  const workMs = (kind) => (kind === 'work' ? o.work * 1000 : 0);

  // Warm up every object and code path once.
  await direct('bare', 1);
  await pipeline(chain('bare', 1));
  await engine({ items: 1, concurrency: 1, work_ms: 0 });

  const ARMS = ['direct', 'pipeline', 'engine'];
  const arms = { bare: { direct: [], pipeline: [], engine: [] }, work: { direct: [], pipeline: [], engine: [] } };
  // Where a chain's time goes, per stage (bare and work): spawn step start → process created, the
  // process itself, its exit → the next stage's spawn step (the critical path between two processes:
  // the exit event and the engine), its exit → its collect step's rows written (beside the next
  // stage when the result came with the event); per run: created → the first spawn step, the last
  // collect → ended.
  const timeline = { bare: [], work: [] };
  for (let r = 0; r < o.rounds; r++) {
    for (const kind of ['bare', 'work']) {
      const order = r % 2 ? [...ARMS].reverse() : ARMS;
      for (const arm of order) {
        if (arm === 'direct') arms[kind].direct.push(await direct(kind, o.stages));
        else if (arm === 'engine') arms[kind].engine.push((await engine({ items: o.stages, concurrency: 1, work_ms: workMs(kind) })).ms);
        else {
          const { ms, run } = await pipeline(chain(kind, o.stages));
          arms[kind].pipeline.push(ms);
          timeline[kind].push(run);
        }
      }
    }
    console.error(`round ${r + 1}/${o.rounds} done`);
  }

  const items = Array.from({ length: o.items }, (_, i) => i);
  const t0 = performance.now();
  const { id } = await call('POST', '/v1/pipelines', { spec: { stages: [{ name: 'fan', for_each: 'input.items', concurrency: o.concurrency, task: 'item {{item}}', script: script('work') }] }, input: { items } });
  const run = await call('GET', `/wait?id=${id}`);
  const wall = performance.now() - t0;
  // The floor's items' own times (asked → event sent, each a sleep of --work s in a Durable Object), as
  // the fan-out's are its processes' own: its ideal is their sum / concurrency.
  const { ms: floorFan, ownMs: floorOwn } = await engine({ items: o.items, concurrency: o.concurrency, work_ms: o.work * 1000 });
  const floorIdeal = floorOwn / o.concurrency;
  const procMs = run.tasks.map((t) => t.exited_at - t.spawned_at);
  const ideal = procMs.reduce((a, b) => a + b, 0) / o.concurrency;
  const makespan = run.ended_at - run.created_at;
  const fanLine = `fan-out ${o.items} items × concurrency ${o.concurrency} (each sleeps ${o.work} s): makespan ${f(makespan / 1000)} s (client ${f(wall / 1000)} s), ideal ${f(ideal / 1000)} s = ${f(procMs.reduce((a, b) => a + b, 0) / 1000)} s of process time / ${o.concurrency} → ${f(makespan / ideal)}× (process p50 ${f(pct(procMs, 50))} ms, p99 ${f(pct(procMs, 99))} ms; ${run.tasks.length} tasks, status ${run.status})`;
  // The engine's own cost over its ideal, added to the fan-out's ideal: what the engine allows here.
  const floorOver = floorFan - floorIdeal;
  const floorLine = `engine floor, the same fan-out with no kernel: ${f(floorFan / 1000)} s (client) against its ideal ${f(floorIdeal / 1000)} s → ${f(floorFan / floorIdeal)}×; fan-out / (ideal + the engine's ${f(floorOver / 1000)} s) → ${f(makespan / (ideal + floorOver))}×`;

  // Where a fan-out item's time goes besides its process: spawn step start → process created, and
  // process terminated → its collect step done (the exit event's path plus the collect step).
  const spawnMs = run.tasks.map((t) => t.spawned_at - t.started_at);
  const collectMs = run.tasks.map((t) => t.ended_at - t.exited_at);
  // A lane's handoff: the i-th spawn step (in start order, i ≥ concurrency) waited for the
  // (i - concurrency)-th exit to free its slot.
  const starts = run.tasks.map((t) => t.started_at).sort((a, b) => a - b);
  const exits = run.tasks.map((t) => t.exited_at).sort((a, b) => a - b);
  const handoffMs = starts.slice(o.concurrency).map((s, i) => s - exits[i]);
  const breakdown = `per item besides the process: spawn step → process p50 ${f(pct(spawnMs, 50), 0)} ms (p99 ${f(pct(spawnMs, 99), 0)}), an exit → the next spawn step in its slot p50 ${f(pct(handoffMs, 50), 0)} ms (p99 ${f(pct(handoffMs, 99), 0)}), exit → collected p50 ${f(pct(collectMs, 50), 0)} ms (p99 ${f(pct(collectMs, 99), 0)})`;
  const med = (xs) => pct(xs, 50);
  console.log(`pipelines bench: ${o.stages}-stage chains, ${o.rounds} rounds, ${os.cpus().length} cores, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const eBare = med(arms.bare.engine);
  for (const kind of ['bare', 'work']) {
    const d = med(arms[kind].direct);
    const p = med(arms[kind].pipeline);
    const e = med(arms[kind].engine);
    const list = (arm) => arms[kind][arm].map((x) => f(x, 0)).join(' ');
    console.log(
      `  ${kind === 'bare' ? 'bare (exit at once)' : `work (sleep ${o.work} s)`}: direct ${f(d)} ms (${f(d / o.stages)} ms/stage), pipeline ${f(p)} ms (${f(p / o.stages)} ms/stage) → ${f(p / d)}× per stage; +${f((p - d) / o.stages)} ms/stage; engine floor ${f(e)} ms (${f(e / o.stages)} ms/stage) → pipeline / (direct + engine) ${f(p / (d + eBare))}×  [direct ${list('direct')}; pipeline ${list('pipeline')}; engine ${list('engine')}]`,
    );
    const runs = timeline[kind];
    const stageOf = (t) => Number(t.stage.slice(1));
    const per = (fn) => med(runs.flatMap((run) => run.tasks.map((t) => fn(t, run)).filter((x) => Number.isFinite(x))));
    const prev = (run, t) => run.tasks.find((u) => stageOf(u) === stageOf(t) - 1);
    console.log(
      `    per stage (p50): spawn step → process ${f(per((t) => t.spawned_at - t.started_at), 0)} ms, process ${f(per((t) => t.exited_at - t.spawned_at), 0)} ms, exit → next stage's spawn step ${f(per((t, run) => (prev(run, t) ? t.started_at - prev(run, t).exited_at : Number.NaN)), 0)} ms, exit → collected ${f(per((t) => t.ended_at - t.exited_at), 0)} ms; per run: created → first spawn step ${f(med(runs.map((run) => Math.min(...run.tasks.map((t) => t.started_at)) - run.created_at)), 0)} ms, last collected → ended ${f(med(runs.map((run) => run.ended_at - Math.max(...run.tasks.map((t) => t.ended_at)))), 0)} ms`,
    );
  }
  console.log(`  ${fanLine}`);
  console.log(`    ${breakdown}`);
  console.log(`    ${floorLine}`);
} finally {
  await bench.stop();
}
