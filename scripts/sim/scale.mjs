#!/usr/bin/env node
/**
 * Capacity model for docs/scale.md: a synthetic fleet (live processes, tenants, process trees,
 * pools) and a steady workload (steps, spawns, messages, ps per second) are routed through the
 * code's own routing functions, and the rate each object receives is summed:
 *  - the scheduler shard of an LLM call: `shardsOf` and `shardOf` (src/kernel/scheduler.ts);
 *  - the object names: `processStub`, `schedulerStub` and `auditChain` (src/rpc/stubs.ts), called
 *    with namespaces that record the names they are asked for;
 *  - every D1 statement goes to the one `DB` binding.
 * Per-event costs are the code's: 2 audit records per step, each one D1 row written by the process
 * itself in its delivery batch with the process-table row (one row write per slice); the tenant's
 * AuditChain receives only anchors (one per ANCHOR_EVERY records of a process, and one at its exit),
 * and each anchor runs 2 D1 statements there (the duplicate check and the INSERT).
 *
 *   PATH=node_modules/.bin:$PATH node --experimental-transform-types scripts/sim/scale.mjs
 *   … scripts/sim/scale.mjs --processes 1000000 --steps 10000 --tenants 2000 --top-tenant 0.3 --steps-per-slice 1
 *   … scripts/sim/scale.mjs --proposed     # the sharding of docs/scale.md in place of today's routing
 *
 * Prints the busiest objects of each kind with their rate against the platform's limit.
 */
import { parseArgs } from 'node:util';
import { auditChain, processStub, schedulerStub } from '../../src/rpc/stubs.ts';
import { SHARD_RPM, shardOf, shardsOf } from '../../src/kernel/scheduler.ts';
import { ANCHOR_EVERY } from '../../src/audit/audit.ts';

const { values: o } = parseArgs({
  options: {
    processes: { type: 'string', default: '1000000' },
    steps: { type: 'string', default: '10000', short: 's' },
    spawns: { type: 'string', default: '500' },
    messages: { type: 'string', default: '2000' },
    ps: { type: 'string', default: '50' },
    tenants: { type: 'string', default: '2000' },
    'top-tenant': { type: 'string', default: '0.3' },
    'tree-size': { type: 'string', default: '5' },
    'steps-per-slice': { type: 'string', default: '1' },
    pools: { type: 'string', default: '4' },
    'queue-transport': { type: 'boolean', default: false },
    proposed: { type: 'boolean', default: false },
    'd1-shards': { type: 'string', default: '32' },
    'table-batch-ms': { type: 'string', default: '1000' },
    seed: { type: 'string', default: '1' },
  },
});
const N = Number(o.processes);
const STEPS = Number(o.steps);
const SPAWNS = Number(o.spawns);
const MESSAGES = Number(o.messages);
const PS = Number(o.ps);
const TENANTS = Number(o.tenants);
const TOP = Number(o['top-tenant']);
const PER_SLICE = Number(o['steps-per-slice']);
const D1_SHARDS = Number(o['d1-shards']);
const BATCH_S = Number(o['table-batch-ms']) / 1000;

/** Measured per-event costs (docs/BENCHMARKS.md). */
const AUDIT_RECORDS_PER_STEP = 2;
const D1_PER_APPEND = 2;
/** Platform limits (docs/scale.md cites them). */
const LIMIT = { object: 1000, d1: 1000, queue: 5000 };

// --- a deterministic fleet --------------------------------------------------------------------------
let seed = Number(o.seed) >>> 0 || 1;
const random = () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
};
const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';
const pid = () => {
  let s = 'p';
  for (let i = 0; i < 20; i++) s += ALPHABET[Math.floor(random() * 36)];
  return s;
};
/** The largest tenant holds `TOP` of the processes; the rest follow a Zipf law. */
const tenantWeights = (() => {
  const w = Array.from({ length: TENANTS - 1 }, (_, i) => 1 / (i + 1));
  const sum = w.reduce((a, b) => a + b, 0);
  return [TOP, ...w.map((x) => (x / sum) * (1 - TOP))];
})();
const cumulative = tenantWeights.reduce((acc, w) => [...acc, (acc.at(-1) ?? 0) + w], []);
const pickTenant = () => {
  const r = random();
  let lo = 0;
  let hi = cumulative.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cumulative[mid] < r) lo = mid + 1;
    else hi = mid;
  }
  return `t${lo}`;
};

// Processes come in trees (a root and its descendants share a scheduler shard); each tree has one
// tenant and one pool. Each process's step rate is equal: STEPS / N.
const pools = Array.from({ length: Number(o.pools) }, (_, i) => ({ id: `openai|gpt-${i}`, share: i === 0 ? 0.55 : 0.45 / (Number(o.pools) - 1) }));
for (const p of pools) p.config = { rpm: Math.ceil(STEPS * 60 * p.share * 1.2), shards: undefined };
for (const p of pools) p.shards = shardsOf(p.config);
const procs = [];
while (procs.length < N) {
  const size = Math.max(1, Math.round(-Math.log(1 - random()) * Number(o['tree-size'])));
  const root = pid();
  const tenant = pickTenant();
  const r = random();
  let acc = 0;
  const pool = pools.find((p) => (acc += p.share) >= r) ?? pools[0];
  for (let i = 0; i < size && procs.length < N; i++) procs.push({ pid: i === 0 ? root : pid(), root, tenant, pool });
}

// --- routing through the code ---------------------------------------------------------------------
const rates = new Map();
const add = (kind, name, perSecond) => {
  const key = `${kind}\u0000${name}`;
  rates.set(key, (rates.get(key) ?? 0) + perSecond);
};
/** A namespace that records which object names the real stub functions ask for. */
const recording = (kind, perSecond) => ({
  idFromName: (name) => {
    add(kind, name, perSecond.value);
    return name;
  },
  get: () => ({}),
});
const auditRate = { value: 0 };
const processRate = { value: 0 };
const schedulerRate = { value: 0 };
const env = { AUDIT_CHAIN: recording('AuditChain', auditRate), AGENT_PROCESS: recording('AgentProcess', processRate), SCHEDULER: recording('LlmScheduler', schedulerRate) };
/** Where one process's anchors go: the code's own `auditChain` (the tenant's chain). */
function appendTo(p, perSecond) {
  auditRate.value = perSecond;
  auditChain(env, p.tenant);
}
function d1(p, perSecond) {
  add('D1', o.proposed ? `DB-${shardOf(p.tenant + '/' + p.pid, D1_SHARDS)}` : 'DB', perSecond);
}

const stepRate = STEPS / N;
const sliceRate = stepRate / PER_SLICE;
const spawnRate = SPAWNS / N;
const messageRate = MESSAGES / N;
for (const p of procs) {
  // A step: the process's own alarm, a scheduler slice (acquire + release), audit and table writes.
  processRate.value = sliceRate + stepRate + messageRate;
  processStub(env, p.pid);
  schedulerRate.value = 2 * stepRate;
  schedulerStub(env, p.pool.id, shardOf(p.root, p.pool.shards));
  // A spawn audits 'spawned' and writes the new row once; a message's send is a syscall (in the step).
  // Audit: each process chains its own records (src/audit/audit.ts) and anchors its head in the
  // tenant's chain every ANCHOR_EVERY records and at its exit (in steady state, exits = spawns).
  const records = AUDIT_RECORDS_PER_STEP * stepRate + spawnRate;
  const anchors = records / ANCHOR_EVERY + spawnRate;
  appendTo(p, anchors);
  if (o.proposed) {
    // Audit rows go to the D1 of the process's shard; table rows are coalesced per shard every BATCH_S.
    d1(p, records + anchors * D1_PER_APPEND);
  } else {
    d1(p, records + anchors * D1_PER_APPEND + sliceRate + spawnRate);
  }
  if (o['queue-transport']) add('Queue', 'agentos-ipc', messageRate);
}
if (o.proposed) for (let s = 0; s < D1_SHARDS; s++) add('D1', `DB-${s}`, 1 / BATCH_S);
// ps reads the process table: one query per call; proposed, the table is sharded by pid, so a ps
// asks every shard (a tenant's rows are spread, so no shard holds a big tenant alone).
if (o.proposed) for (let i = 0; i < D1_SHARDS; i++) add('D1', `DB-${i}`, PS);
else add('D1', 'DB', PS);

// --- report -----------------------------------------------------------------------------------------
const byKind = new Map();
for (const [key, rate] of rates) {
  const [kind, name] = key.split('\u0000');
  if (!byKind.has(kind)) byKind.set(kind, []);
  byKind.get(kind).push({ name, rate });
}
const limitOf = (kind) => (kind === 'D1' ? LIMIT.d1 : kind === 'Queue' ? LIMIT.queue : LIMIT.object);
console.log(`${o.proposed ? 'proposed sharding' : 'routing as the code does it today'}: ${N.toLocaleString('en')} live processes, ${STEPS.toLocaleString('en')} steps/s, ${SPAWNS} spawns/s, ${MESSAGES} messages/s, ${PS} ps/s; ${TENANTS} tenants (largest ${TOP * 100}%), ${PER_SLICE} step(s) per slice; pools ${pools.map((p) => `${p.id}×${p.shards}`).join(', ')} (SHARD_RPM ${SHARD_RPM})\n`);
console.log('| object kind | objects | busiest object | its rate (/s) | limit (/s) | × limit |\n|---|---:|---|---:|---:|---:|');
for (const [kind, list] of [...byKind].sort()) {
  list.sort((a, b) => b.rate - a.rate);
  const top = list[0];
  const limit = limitOf(kind);
  console.log(`| ${kind} | ${list.length.toLocaleString('en')} | ${top.name.slice(0, 40)} | ${top.rate.toFixed(top.rate < 1 ? 3 : 0)} | ${limit.toLocaleString('en')} | ${(top.rate / limit).toFixed(2)} |`);
}
