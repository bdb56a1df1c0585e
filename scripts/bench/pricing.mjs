/**
 * Cloudflare list prices (Workers Paid plan, USD) and the monthly cost of a measured workload: the one
 * place the benchmarks keep prices. run.mjs turns what one step and one spawn use (requests, active
 * time, SQLite and D1 rows, stored bytes, CPU) into the cost of 1 M of each per month.
 *
 *   import { PRICES, monthlyCost, costTable } from './pricing.mjs';
 *   const c = monthlyCost({ do_requests: 0.15, do_gb_s: 0.0003, ... }, 1e6);
 *
 * Sources (stored copies of the pages, read through the docs corpus on 2026-12-02; the pages carry no
 * date of their own, the Durable Objects prices are the cloudflare-docs partial
 * src/content/partials/durable-objects/durable-objects-pricing.mdx at commit 07e200b):
 *  - https://developers.cloudflare.com/durable-objects/platform/pricing/
 *  - https://developers.cloudflare.com/workers/platform/pricing/
 *  - https://developers.cloudflare.com/d1/platform/pricing/
 * Re-check them before quoting a cost: prices change.
 */

export const PRICES = Object.freeze({
  consulted: '2026-12-02',
  sources: [
    'https://developers.cloudflare.com/durable-objects/platform/pricing/',
    'https://developers.cloudflare.com/workers/platform/pricing/',
    'https://developers.cloudflare.com/d1/platform/pricing/',
  ],
  /** The Workers Paid plan's monthly minimum, which includes the allowances below. */
  plan_usd_per_month: 5,
  /** Each item: list price in USD per `per` units, and what the plan includes per month. */
  items: {
    workers_requests: { label: 'Workers requests', usd: 0.3, per: 1e6, included: 10e6, unit: 'requests' },
    workers_cpu_ms: { label: 'Workers CPU time', usd: 0.02, per: 1e6, included: 30e6, unit: 'CPU ms' },
    // HTTP requests, RPC sessions (each RPC method call on a stub) and alarm invocations.
    do_requests: { label: 'Durable Objects requests', usd: 0.15, per: 1e6, included: 1e6, unit: 'requests' },
    // Wall-clock time while an object is active, at 128 MB whatever it uses: 0.125 GB per second.
    do_gb_s: { label: 'Durable Objects duration', usd: 12.5, per: 1e6, included: 400_000, unit: 'GB-s' },
    do_rows_read: { label: 'DO SQLite rows read', usd: 0.001, per: 1e6, included: 25e9, unit: 'rows' },
    // setAlarm() is billed as one row written; deletes count as rows written.
    do_rows_written: { label: 'DO SQLite rows written', usd: 1.0, per: 1e6, included: 50e6, unit: 'rows' },
    do_storage_gb_month: { label: 'DO SQLite stored data', usd: 0.2, per: 1, included: 5, unit: 'GB-month' },
    d1_rows_read: { label: 'D1 rows read', usd: 0.001, per: 1e6, included: 25e9, unit: 'rows' },
    // An index on a written column adds a row written (D1's meta counts it).
    d1_rows_written: { label: 'D1 rows written', usd: 1.0, per: 1e6, included: 50e6, unit: 'rows' },
    d1_storage_gb_month: { label: 'D1 stored data', usd: 0.75, per: 1, included: 5, unit: 'GB-month' },
  },
});

/** Memory billed per active Durable Object, in GB (128 MB; Cloudflare's examples count it as 0.125 GB). */
export const DO_MEMORY_GB = 0.125;

/** Bytes per GB for storage (decimal, 10^9). */
export const GB = 1e9;

/** The assumptions behind the figures, printed with them. */
export const ASSUMPTIONS = [
  'list prices of the Workers Paid plan; "list" = usage × price with no included allowance (the marginal cost on an account that already uses its allowances); "on its own" = the $5 plan with its monthly inclusions applied, nothing else on the account',
  'Durable Objects duration = the object\'s active wall time × 0.125 GB (128 MB, whatever it uses); a step\'s active time is its measured wall time with a zero-latency model: a real model\'s latency is billed too, since an object awaiting a fetch cannot hibernate (0.125 GB-s = $1.5625 per 1 M steps per second of model latency)',
  'Workers CPU ms is an upper bound: all workerd CPU (the Worker\'s routes and the objects together; locally they share one process and cannot be told apart). Objects are billed by duration, not CPU',
  'storage: the bytes a step or a spawn leaves in SQLite (the object\'s databaseSize) and in D1 (size_after), kept for the whole month',
  'rows: what SQLite (cursor.rowsRead/rowsWritten) and D1 (meta.rows_read/rows_written) count locally; each setAlarm() adds one row written',
  'the counted step calls the in-process model: a model behind the LLM scheduler adds its RPCs per call (acquire, release, a wake when the call waited) and the scheduler object\'s own rows, not counted here; nor is the tenant audit chain\'s own storage (an anchor every 256 records and at exit, counted as a request)',
];

/**
 * The monthly cost of `units` of a workload whose one unit uses `usage` (keys of PRICES.items, per
 * unit). Returns one line per item (quantity a month, list cost, cost after the plan's inclusion)
 * and the totals.
 */
export function monthlyCost(usage, units = 1e6) {
  const lines = [];
  let list = 0;
  let afterInclusions = 0;
  for (const [key, item] of Object.entries(PRICES.items)) {
    const perUnit = usage[key];
    if (perUnit === undefined || perUnit === null || !Number.isFinite(perUnit)) continue;
    const quantity = perUnit * units;
    const usd = (quantity / item.per) * item.usd;
    const usdAfter = (Math.max(0, quantity - item.included) / item.per) * item.usd;
    list += usd;
    afterInclusions += usdAfter;
    lines.push({ key, label: item.label, unit: item.unit, per_unit: perUnit, quantity, price: `$${item.usd} / ${item.per === 1 ? '' : `${item.per / 1e6} M `}${item.unit}`, usd, usd_after_inclusions: usdAfter });
  }
  return { units, lines, total_usd: list, total_after_inclusions_usd: afterInclusions, on_its_own_usd: PRICES.plan_usd_per_month + afterInclusions };
}

const money = (x) => (x >= 0.01 || x === 0 ? `$${x.toFixed(2)}` : `$${x.toPrecision(2)}`);
const num = (x) => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(3));

/** A markdown table of several workloads' monthly costs side by side (`costs`: name → monthlyCost result). */
export function costTable(costs) {
  const names = Object.keys(costs);
  const keys = Object.keys(PRICES.items).filter((k) => names.some((n) => costs[n].lines.some((l) => l.key === k)));
  const out = [`| item (list price) | ${names.map((n) => `per ${n.replace(/^1 M /, '').replace(/s$/, '')} | ${n}, list`).join(' | ')} |`, `|---|${names.map(() => '---:|---:').join('|')}|`];
  for (const k of keys) {
    const item = PRICES.items[k];
    const cells = names.map((n) => {
      const l = costs[n].lines.find((x) => x.key === k);
      if (!l) return '– | –';
      // Storage is shown as the bytes one unit leaves behind, kept for the month.
      return `${item.unit === 'GB-month' ? `${num(l.per_unit * GB)} B` : `${num(l.per_unit)} ${item.unit}`} | ${money(l.usd)}`;
    });
    out.push(`| ${item.label} ($${item.usd} per ${item.per === 1 ? '' : `${item.per / 1e6} M `}${item.unit}; ${item.included.toLocaleString('en-US')} included) | ${cells.join(' | ')} |`);
  }
  out.push(`| **total, list** | ${names.map((n) => ` | **${money(costs[n].total_usd)}**`).join(' | ')} |`);
  out.push(`| on its own: $${PRICES.plan_usd_per_month} plan + usage beyond its inclusions | ${names.map((n) => ` | ${money(costs[n].on_its_own_usd)}`).join(' | ')} |`);
  return out.join('\n');
}
