/**
 * What the benchmarks that run a Worker share: starting it under wrangler's dev server (workerd) on
 * loopback with fresh, temporary state, the D1 schema, and percentiles.
 *
 *   const bench = await startBenchWorker({ config: path.join(here, 'wrangler.toml'), name: 'ipc' });
 *   try { await fetch(`${bench.base}/setup`, { method: 'POST', body: migrationsSql() }); … }
 *   finally { await bench.stop(); }
 *
 * unstable_startWorker(options) is `new DevEnv().startWorker(options)`; building the DevEnv here lets
 * us hear its events: reloadComplete carries the user Worker's own address (wrangler puts a proxy
 * Worker, in a second workerd, in front of it in dev; the benchmarks bypass that hop, as production
 * traffic does not take it), and error reports a build failure instead of a request that hangs.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// No network: wrangler must not fetch request.cf data or send metrics.
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= 'false';
process.env.WRANGLER_SEND_METRICS ??= 'false';

/**
 * Start the Worker of `config` with `bindings` added (wrangler's binding objects, e.g.
 * `{ type: 'secret_text', value }`), state in a new temp dir under `stateParent`. `inspector: true`
 * opens the V8 inspector on a loopback port (`worker.inspectorUrl`). `stop()` disposes of workerd and
 * removes the state dir; the dir is removed at exit in any case.
 */
export async function startBenchWorker({ config, name = 'bench', bindings = {}, stateParent = os.tmpdir(), inspector = false }) {
  const { unstable_DevEnv } = await import('wrangler');
  const stateDir = mkdtempSync(path.join(stateParent, `agentos-${name}-`));
  process.once('exit', () => rmSync(stateDir, { recursive: true, force: true }));
  const devEnv = new unstable_DevEnv();
  const started = new Promise((resolve, reject) => {
    devEnv.on('reloadComplete', (ev) => {
      const u = ev?.proxyData?.userWorkerUrl;
      if (u) resolve(`${u.protocol}//${u.hostname}:${u.port}`);
    });
    devEnv.on('error', (ev) => reject(new Error(`the bench Worker did not start: ${ev?.reason ?? ev?.message ?? ev}`)));
    setTimeout(() => reject(new Error('the bench Worker did not start within 120 s')), 120_000).unref();
  });
  let worker;
  const stop = async () => {
    await worker?.dispose().catch(() => {});
    rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    worker = await devEnv.startWorker({
      config,
      bindings,
      dev: { server: { hostname: '127.0.0.1', port: 0 }, inspector: inspector ? { hostname: '127.0.0.1', port: 0 } : false, watch: false, logLevel: 'warn', persist: stateDir },
    });
    return { base: await started, worker, stateDir, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

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
