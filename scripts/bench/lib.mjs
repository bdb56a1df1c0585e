/**
 * What the benchmarks that run a Worker share: starting it under wrangler's dev server (workerd) on
 * loopback with fresh, temporary state (scripts/lib/dev-worker.mjs, shared with the end-to-end tests),
 * the D1 schema, and percentiles.
 *
 *   const bench = await startBenchWorker({ config: path.join(here, 'wrangler.toml'), name: 'ipc' });
 *   try { await fetch(`${bench.base}/setup`, { method: 'POST', body: migrationsSql() }); … }
 *   finally { await bench.stop(); }
 */
import { readFileSync, readdirSync } from 'node:fs';
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
