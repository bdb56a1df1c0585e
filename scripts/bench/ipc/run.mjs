#!/usr/bin/env node
/**
 * IPC benchmark: message latency (p50/p99) and aggregate throughput between many process pairs,
 * side by side with a plain Durable Object RPC between the same objects, in one run.
 *
 *   node scripts/bench/ipc/run.mjs                 # 16 pairs, 200 messages each, 3 rounds
 *   node scripts/bench/ipc/run.mjs --pairs 32 --msgs 300 --rounds 3 --quick
 *
 * Starts scripts/bench/ipc/worker.ts through wrangler's DevEnv (fresh temp state, removed after).
 * Arms, alternated per round: `rpc` (a no-op RPC sender → recipient), `floor` (the fair durable floor:
 * the sender commits one row, RPCs the recipient, which commits one row before it answers), `send` (the kernel's
 * fast path: commit + direct RPC + recipient apply, one message per commit), `send×50` (a step that
 * sends 50 messages: one commit, one RPC carrying all 50), and once `queue` (every message through
 * the local Queue; latency = recipient arrival − send, as the recipient records them).
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { codeVersion, migrationsSql, pct, startBenchWorker } from '../lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const o = { pairs: 16, msgs: 200, rounds: 3, queueMsgs: 50 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--pairs') o.pairs = Number(argv[++i]);
  else if (a === '--msgs') o.msgs = Number(argv[++i]);
  else if (a === '--rounds') o.rounds = Number(argv[++i]);
  else if (a === '--queue-msgs') o.queueMsgs = Number(argv[++i]);
  else if (a === '--quick') Object.assign(o, { pairs: 4, msgs: 50, rounds: 1, queueMsgs: 10 });
  else throw new Error(`unknown argument ${a}`);
}

const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

const bench = await startBenchWorker({
  config: path.join(here, 'wrangler.toml'),
  name: 'bench-ipc',
  bindings: { AGENTOS_ADMIN_TOKEN: { type: 'secret_text', value: `bench-${randomBytes(8).toString('hex')}` } },
});
try {
  const { base } = bench;
  const post = async (p, body) => {
    const r = await fetch(`${base}${p}`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });
    const t = await r.text();
    if (!r.ok) throw new Error(`${p} → ${r.status}: ${t.slice(0, 300)}`);
    return JSON.parse(t);
  };
  await post('/setup', migrationsSql());
  const { pairs } = await post(`/pairs?n=${o.pairs}`, '');
  console.error(`worker ${base}; ${pairs.length} pairs`);
  // Warm up every object and code path.
  await post('/run', { pairs, kind: 'ping', n: 5 });
  await post('/run', { pairs, kind: 'floor', n: 5 });
  await post('/run', { pairs, kind: 'send', n: 5 });

  const arms = { rpc: { lat: [], msgs: 0, ms: 0 }, floor: { lat: [], msgs: 0, ms: 0 }, send: { lat: [], msgs: 0, ms: 0 }, send50: { lat: [], msgs: 0, ms: 0 } };
  const order = [
    ['rpc', { kind: 'ping', n: o.msgs }],
    ['floor', { kind: 'floor', n: o.msgs }],
    ['send', { kind: 'send', n: o.msgs, batch: 1 }],
    ['send50', { kind: 'send', n: o.msgs * 5, batch: 50 }],
  ];
  const load0 = os.loadavg();
  for (let r = 0; r < o.rounds; r++) {
    // Rotated each round, so drift in the machine's load falls on every arm alike.
    for (const [arm, body] of order.map((_, i) => order[(i + r) % order.length])) {
      const res = await post('/run', { pairs, ...body });
      arms[arm].lat.push(...res.latencies);
      arms[arm].msgs += pairs.length * body.n;
      arms[arm].ms += res.wall_ms;
      console.error(`round ${r + 1} ${arm}: ${res.wall_ms} ms`);
    }
  }
  // The Queue path: every message through the local Queue; latency from the recipient's records.
  const before = await Promise.all(pairs.map((p) => fetch(`${base}/mailbox?pid=${p.recipient}`).then((x) => x.json())));
  const tq = Date.now();
  await post('/run', { pairs, kind: 'send', n: o.queueMsgs, batch: 1, mode: 'queue' });
  let after;
  for (;;) {
    after = await Promise.all(pairs.map((p) => fetch(`${base}/mailbox?pid=${p.recipient}`).then((x) => x.json())));
    if (after.every((a, i) => a.count >= before[i].count + o.queueMsgs) || Date.now() - tq > 120_000) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  const queueMs = Date.now() - tq;
  const queueDelays = after.flatMap((a) => a.delays.slice(0, o.queueMsgs));

  const rpcP50 = pct(arms.rpc.lat, 50);
  const floorP50 = pct(arms.floor.lat, 50);
  const load1 = os.loadavg();
  console.log(`\n### IPC: ${pairs.length} pairs, ${o.msgs} messages per pair and round, ${o.rounds} rounds (${os.cpus().length} CPUs, load ${load0.map((x) => x.toFixed(2)).join(' ')} → ${load1.map((x) => x.toFixed(2)).join(' ')})\n`);
  console.log('| path | p50 ms | p99 ms | p50 vs no-op RPC | p50 vs durable floor (goal ≤ 2× for the fast path) | aggregate msgs/s |');
  console.log('|---|---|---|---|---|---|');
  const row = (name, a) => console.log(`| ${name} | ${f(pct(a.lat, 50))} | ${f(pct(a.lat, 99))} | ${f(pct(a.lat, 50) / rpcP50)}× | ${f(pct(a.lat, 50) / floorP50)}× | ${f((a.msgs / a.ms) * 1000, 0)} |`);
  row('direct DO RPC (no-op)', arms.rpc);
  row('durable floor: RPC + one committed row at each end', arms.floor);
  row('send, fast path (1 message per commit)', arms.send);
  row('send, 50 messages per commit (latency per commit)', arms.send50);
  console.log(`| send through the Queue (arrival − send) | ${f(pct(queueDelays, 50), 0)} | ${f(pct(queueDelays, 99), 0)} | ${f(pct(queueDelays, 50) / rpcP50, 0)}× | ${f(pct(queueDelays, 50) / floorP50, 0)}× | ${f((pairs.length * o.queueMsgs / queueMs) * 1000, 0)} |`);
  const ratio = pct(arms.send.lat, 50) / floorP50;
  const code = codeVersion();
  console.log(`\nFast path p50 / durable floor p50: **${f(ratio)}×** (goal ≤ 2×: ${ratio <= 2 ? 'met' : 'missed'}).`);
  console.log(`\n_node scripts/bench/ipc/run.mjs ${argv.join(' ')} · commit ${code.commit}${code.kernel_sources_modified ? ' + uncommitted kernel changes' : ''} · X_LOCAL_OBSERVABILITY=${process.env.X_LOCAL_OBSERVABILITY ?? '(unset: on)'} · ${new Date().toISOString()}_`);
} finally {
  await bench.stop();
}
